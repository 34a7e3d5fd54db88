"""The replicated state machine: operations, the client table and snapshots."""

from hypothesis import given, strategies as st

from lowpaxos.core.api import Command
from lowpaxos.kvs import KeyValueStore, valid_command


def test_operations():
    """get, put, delete and cas do what the KVS promises."""
    kvs = KeyValueStore()
    assert kvs.apply(Command(1, 1, "get", "a")) is None
    assert kvs.apply(Command(1, 2, "put", "a", b"1")) is None
    assert kvs.apply(Command(1, 3, "get", "a")) == b"1"
    assert kvs.apply(Command(1, 4, "cas", "a", b"2", b"0")) is False
    assert kvs.apply(Command(1, 5, "cas", "a", b"2", b"1")) is True
    assert kvs.apply(Command(1, 6, "delete", "a")) is True
    assert kvs.apply(Command(1, 7, "delete", "a")) is False
    assert kvs.apply(Command(1, 8, "cas", "a", b"3", None)) is True
    assert kvs.data == {"a": b"3"}


def test_duplicate_request_executes_once():
    """A command committed twice (a client retry) runs once and answers the same result
    (VR Revisited §4, the client table)."""
    kvs = KeyValueStore()
    command = Command(9, 1, "cas", "k", b"new", None)
    assert kvs.apply(command) is True
    assert kvs.apply(command) is True  # same answer, from the table
    assert kvs.executed == 1
    assert kvs.data["k"] == b"new"
    # An older request of the same client is not run either.
    assert kvs.apply(Command(9, 0, "put", "k", b"old")) is None
    assert kvs.data["k"] == b"new"


@given(st.lists(st.tuples(st.sampled_from(["get", "put", "delete", "cas"]),
                          st.sampled_from(["a", "b"]),
                          st.binary(max_size=3)), max_size=30))
def test_snapshot_round_trip(ops):
    """restore(snapshot()) gives an equal store, digest included."""
    kvs = KeyValueStore()
    for i, (op, key, value) in enumerate(ops):
        kvs.apply(Command(1, i + 1, op, key, value if op in ("put", "cas") else None,
                          value[:1] if op == "cas" else None))
    copy = KeyValueStore.restore(kvs.snapshot())
    assert copy.data == kvs.data
    assert copy.sessions == kvs.sessions
    assert copy.digest() == kvs.digest()


def test_command_validation():
    """Malformed commands are named, not executed."""
    assert valid_command(Command(1, 1, "get", "a")) is None
    assert valid_command(Command(1, 1, "nope", "a")) == "unknown_op"
    assert valid_command(Command(1, 1, "put", "a", None)) == "bad_value"
    assert valid_command(Command(-1, 1, "get", "a")) == "bad_session"
    assert valid_command("get a") == "not_a_command"
