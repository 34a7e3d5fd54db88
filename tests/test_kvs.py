"""The replicated state machine: operations, the client table, the digest and the
transfer stream (full and resumed) that carries the rows to a replica behind the cut."""

import random

from hypothesis import given, settings, strategies as st

from lowpaxos.core.api import Command
from lowpaxos.kvs import (
    DATA,
    KeyValueStore,
    MemoryRowStore,
    read_chunk,
    valid_command,
    write_row,
)


def test_operations():
    """get, put, delete, cas and the Redis-style operations do what the KVS promises."""
    kvs = KeyValueStore()
    assert kvs.apply(Command(1, 1, "get", "a")) is None
    assert kvs.apply(Command(1, 2, "put", "a", b"1")) is None
    assert kvs.apply(Command(1, 3, "get", "a")) == b"1"
    assert kvs.apply(Command(1, 4, "cas", "a", b"2", b"0")) is False
    assert kvs.apply(Command(1, 5, "cas", "a", b"2", b"1")) is True
    assert kvs.apply(Command(1, 6, "delete", "a")) is True
    assert kvs.apply(Command(1, 7, "delete", "a")) is False
    assert kvs.apply(Command(1, 8, "cas", "a", b"3", None)) is True
    assert kvs.get_value("a") == b"3"
    assert kvs.apply(Command(1, 9, "append", "a", b"45")) == 3
    assert kvs.apply(Command(1, 10, "strlen", "a")) == 3
    assert kvs.apply(Command(1, 11, "mset", "", pairs=(("b", b"x"), ("c", b"y")))) is None
    assert kvs.apply(Command(1, 12, "mget", "", keys=("a", "b", "z"))) == [b"345", b"x", None]
    assert kvs.apply(Command(1, 13, "dbsize", "")) == 3
    assert kvs.apply(Command(1, 14, "getdel", "b")) == b"x"
    assert kvs.apply(Command(1, 15, "getdel", "b")) is None
    assert kvs.apply(Command(1, 16, "dbsize", "")) == 2


def test_scan_walks_every_key_once_with_match():
    """SCAN with COUNT returns each matching key exactly once across its pages."""
    kvs = KeyValueStore()
    names = [f"user:{i}" for i in range(50)] + [f"item:{i}" for i in range(30)]
    kvs.apply(Command(1, 1, "mset", "", pairs=tuple((n, b"v") for n in names)))
    seen, after, request = [], (), 2
    while True:
        next_after, keys = kvs.apply(Command(1, request, "scan", "", value=b"user:*",
                                             keys=after, count=7))
        request += 1
        seen += keys
        if next_after is None:
            break
        after = (next_after.decode("latin-1"),)
    assert sorted(seen) == sorted(n.encode() for n in names if n.startswith("user:"))


def test_duplicate_request_executes_once():
    """A command committed twice (a client retry) runs once and answers the same result
    (VR Revisited §4, the client table)."""
    kvs = KeyValueStore()
    command = Command(9, 1, "cas", "k", b"new", None)
    assert kvs.apply(command) is True
    assert kvs.apply(command) is True  # same answer, from the table
    assert kvs.executed == 1
    assert kvs.get_value("k") == b"new"
    # An older request of the same client is not run either.
    assert kvs.apply(Command(9, 0, "put", "k", b"old")) is None
    assert kvs.get_value("k") == b"new"


operations = st.lists(st.tuples(st.sampled_from(["get", "put", "delete", "cas", "append"]),
                                st.sampled_from(["a", "b", "c", "d\x00", ""]),
                                st.binary(min_size=1, max_size=3)), max_size=40)


def run(ops, kvs=None, first_slot=1):
    kvs = kvs if kvs is not None else KeyValueStore()
    for i, (op, key, value) in enumerate(ops):
        kvs.apply(Command(1 + i % 3, first_slot + i, op, key,
                          value if op in ("put", "cas", "append") else None,
                          value[:1] if op == "cas" else None), first_slot + i)
    return kvs


@given(operations)
def test_digest_is_the_sum_over_live_rows(ops):
    """The incremental digest equals a digest recomputed from the rows alone, so two
    stores with the same rows agree whatever order they were written in."""
    kvs = run(ops)
    fresh = MemoryRowStore()
    items = list(kvs.rows.rows.items())
    random.Random(len(ops)).shuffle(items)
    for (kind, key), (value, version) in items:
        write_row(fresh, kind, key, value, version)
    assert fresh.digest == kvs.rows.digest


def transfer(image, staging, base=0, split=None, bytes_max=40, scan_max=3):
    """Run one stream of ``image`` into ``staging`` the way the receiving core does."""
    cursor = None
    while True:
        rows, next_cursor = read_chunk(image, cursor, base, split, bytes_max, scan_max)
        low = cursor[1:] if cursor is not None and cursor[0] == 1 and cursor[2] is not None \
            else None
        high = None if next_cursor is None else (
            next_cursor[1:] if next_cursor[0] == 1 and next_cursor[2] is not None else ())
        if high != ():
            present = {(k, key) for k, key, _, _ in rows}
            for name in staging.rows_between(low, high):
                if (split is None or name >= split) and name not in present:
                    write_row(staging, name[0], name[1], None, 0, tombstone=False)
        for kind, key, value, version in rows:
            write_row(staging, kind, key, value, version, tombstone=False)
        if next_cursor is None:
            return
        cursor = next_cursor


@settings(max_examples=200)
@given(operations, operations, st.integers(0, 60), st.integers(20, 200))
def test_resumed_transfer_reaches_the_newer_image(first, second, stop_after, bytes_max):
    """A receiver that staged part of image X (rows below a split) and then takes the
    resumed stream of a newer image Y (only rows changed since X below the split, all
    rows from the split on) ends with exactly Y's rows and digest."""
    kvs = run(first)
    old = kvs.rows.image()
    staging = MemoryRowStore()
    # Stage old's rows up to some point, as an interrupted full stream would.
    names = [(kind, key) for kind, key, _, _ in old.rows]
    split_at = min(stop_after, len(names))
    for kind, key, value, version in old.rows[:split_at]:
        write_row(staging, kind, key, value, version, tombstone=False)
    split = (DATA, "") if split_at == 0 else (names[split_at - 1][0], names[split_at - 1][1] + "\0")
    run(second, kvs, first_slot=len(first) + 1)
    new = kvs.rows.image()
    transfer(new, staging, base=old.index, split=split, bytes_max=bytes_max)
    assert staging.rows == kvs.rows.rows
    assert staging.digest == new.digest


@given(operations)
def test_full_transfer_over_garbage_staging(ops):
    """A full stream makes the staging area equal to the image even when it held
    unrelated rows before (the chunks' ranges clear what the image does not have)."""
    kvs = run(ops)
    staging = MemoryRowStore()
    for i in range(5):
        write_row(staging, DATA, f"junk{i}", b"x", 1, tombstone=False)
    transfer(kvs.rows.image(), staging)
    assert staging.rows == kvs.rows.rows
    assert staging.digest == kvs.rows.digest


def test_command_validation():
    """Malformed commands are named, not executed."""
    assert valid_command(Command(1, 1, "get", "a")) is None
    assert valid_command(Command(1, 1, "nope", "a")) == "unknown_op"
    assert valid_command(Command(1, 1, "put", "a", None)) == "bad_value"
    assert valid_command(Command(-1, 1, "get", "a")) == "bad_session"
    assert valid_command("get a") == "not_a_command"
    assert valid_command(Command(1, 1, "mset", "")) == "bad_arguments"
    assert valid_command(Command(1, 1, "get", "a", keys=("b",))) == "bad_arguments"
