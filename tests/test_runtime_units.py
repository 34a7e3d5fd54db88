"""Unit tests of the runtime's pieces that need no process: RESP bounds, datagram
authentication, SQLite storage (round trip and corruption), the cluster file."""

from __future__ import annotations

import random
import sqlite3

import pytest

from lowpaxos.core.api import Command
from lowpaxos.protocols.lowpaxos.durable import DurableState
from lowpaxos.protocols.lowpaxos.messages import (
    Ballot,
    Entry,
    SaveCommit,
    SaveEntries,
    SavePromise,
    SaveSnapshot,
)
from lowpaxos.runtime import resp
from lowpaxos.runtime.cluster import ClusterFileError, load_cluster, load_key, write_cluster_file
from lowpaxos.runtime.framing import MESSAGE, FrameError, open_frame, peek_sender, seal
from lowpaxos.runtime.storage import SqliteStorage, StorageCorrupt

KEY = bytes(range(32))


def parser(arguments_max=8, bulk_bytes_max=100, line_bytes_max=64):
    return resp.RespParser(arguments_max, bulk_bytes_max, line_bytes_max)


# ---------------------------------------------------------------- RESP


def test_resp_parses_multibulk_fed_one_byte_at_a_time():
    """A pipelined pair of commands arrives byte by byte and parses only when complete."""
    p = parser()
    data = resp.encode_command(["SET", "k", b"v\r\nx"]) + resp.encode_command(["GET", "k"])
    commands = []
    for byte in data:
        p.feed(bytes([byte]))
        while (command := p.next_command()) is not None:
            commands.append(command)
    assert commands == [[b"SET", b"k", b"v\r\nx"], [b"GET", b"k"]]


def test_resp_parses_inline_commands():
    """Inline commands (telnet style) split on whitespace."""
    p = parser()
    p.feed(b"PING\r\nSET a  b\n")
    assert p.next_command() == [b"PING"]
    assert p.next_command() == [b"SET", b"a", b"b"]
    assert p.next_command() is None


@pytest.mark.parametrize("data, message", [
    (b"*9\r\n", "9 arguments"),
    (b"*1\r\n$101\r\n", "bulk of 101 bytes"),
    (b"*1\r\n$-5\r\n", "invalid bulk length"),
    (b"*x\r\n", "invalid multibulk length"),
    (b"*1\r\n+PING\r\n", "expected '[$]'"),
    (b"*1\r\n$2\r\nabcd\r\n", "not followed by CRLF"),
    (b"*1\r\n$1" + b"1" * 70, "too big line"),
    (b"P" * 70, "too big inline"),
])
def test_resp_refuses_input_beyond_bounds(data, message):
    """Each bound and each malformed header raises a protocol error naming the problem."""
    p = parser()
    p.feed(data)
    with pytest.raises(resp.RespProtocolError, match=message):
        p.next_command()


def test_resp_reply_parser_reads_every_kind():
    """The client's reply parser reads what the server's encoder writes."""
    p = resp.ReplyParser()
    p.feed(resp.OK + resp.error("ERR x") + resp.integer(7) + resp.bulk(b"v") + resp.NIL
           + resp.array([b"a", None]))
    replies = [p.next_reply() for _ in range(6)]
    assert replies == [("+", "OK"), ("-", "ERR x"), (":", 7), ("$", b"v"), ("$", None),
                       ("*", [b"a", None])]
    assert p.next_reply() is None


# ---------------------------------------------------------------- framing


def test_frame_round_trip_and_sender_peek():
    """A sealed datagram opens to its kind, sender, counter and payload."""
    datagram = seal(KEY, 2, 99, b"payload")
    assert peek_sender(datagram) == 2
    assert open_frame(KEY, datagram, 3, 65507) == (MESSAGE, 2, 99, b"payload")


@pytest.mark.parametrize("mutate, reason", [
    (lambda d: d[:-1] + bytes([d[-1] ^ 1]), "bad_tag"),
    (lambda d: d[:20] + b"X" + d[21:], "bad_tag"),
    (lambda d: b"XX" + d[2:], "bad_header"),
    (lambda d: d[:10], "truncated"),
    (lambda d: d + b"\0" * 70000, "oversized"),
])
def test_frame_drops_tampered_datagrams_with_a_reason(mutate, reason):
    """Any change to a sealed datagram is detected and named."""
    with pytest.raises(FrameError) as caught:
        open_frame(KEY, mutate(seal(KEY, 1, 5, b"payload" * 3)), 3, 65507)
    assert caught.value.reason == reason


def test_frame_drops_wrong_key_and_unknown_sender():
    """A datagram under another key fails authentication; an authentic one from id 7
    in a 3-replica cluster is from an unknown replica."""
    with pytest.raises(FrameError, match="bad_tag"):
        open_frame(KEY, seal(b"k" * 32, 1, 5, b"p"), 3, 65507)
    with pytest.raises(FrameError, match="unknown_sender"):
        open_frame(KEY, seal(KEY, 7, 5, b"p"), 3, 65507)


# ---------------------------------------------------------------- storage


def random_records(rng: random.Random, count: int) -> list:
    """Records as a LowPaxos core emits them: promises rise, snapshots cover commits."""
    records = []
    promised = Ballot(0, -1)
    commit = snapshot = log_start = 0
    top = 0
    for _ in range(count):
        kind = rng.random()
        if kind < 0.15:
            promised = Ballot(promised.round + rng.randint(0, 2), rng.randrange(3))
            promised = max(promised, Ballot(promised.round, promised.replica))
            records.append(SavePromise(promised))
            promised = records[-1].ballot
        elif kind < 0.6:
            entries = []
            for _ in range(rng.randint(1, 3)):
                top += 1
                command = Command(rng.randrange(5), rng.randrange(100), "put", f"k{top}",
                                  bytes([rng.randrange(256)]) * rng.randrange(4))
                entries.append(Entry(top, Ballot(rng.randint(1, 4), rng.randrange(3)),
                                     (command,) if rng.random() < 0.8 else ()))
            records.append(SaveEntries(tuple(entries)))
        elif kind < 0.85:
            commit = max(commit, rng.randint(commit, top))
            records.append(SaveCommit(commit))
        elif commit > snapshot:
            snapshot = rng.randint(snapshot + 1, commit)
            log_start = rng.randint(log_start, snapshot)
            records.append(SaveSnapshot(snapshot, b"state%d" % snapshot, log_start))
    # The core only ever promises upward.
    fixed, high = [], Ballot(0, -1)
    for record in records:
        if isinstance(record, SavePromise):
            high = max(high, record.ballot)
            record = SavePromise(high)
        fixed.append(record)
    return fixed


@pytest.mark.parametrize("seed", range(5))
def test_storage_round_trip_matches_durable_state(tmp_path, seed):
    """Records written in random transactions, reopened, load exactly the DurableState
    that folding the same records gives (durable.py is the reference)."""
    rng = random.Random(seed)
    records = random_records(rng, 200)
    expected = DurableState()
    storage = SqliteStorage(tmp_path / "r.sqlite", 1)
    storage.load()
    index = 0
    while index < len(records):
        size = rng.randint(1, 6)
        storage.write(records[index:index + size])
        index += size
    for record in records:
        expected.apply(record)
    storage.close()
    reopened = SqliteStorage(tmp_path / "r.sqlite", 1)
    assert reopened.load() == expected
    reopened.close()


def test_storage_uses_wal_and_full_sync(tmp_path):
    """The database is in WAL mode with synchronous=FULL (2)."""
    storage = SqliteStorage(tmp_path / "r.sqlite", 0)
    storage.load()
    assert storage.connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert storage.connection.execute("PRAGMA synchronous").fetchone()[0] == 2
    storage.close()


def filled_storage(path):
    storage = SqliteStorage(path, 0)
    storage.load()
    command = Command(1, 1, "put", "key", b"value" * 50)
    storage.write([SavePromise(Ballot(3, 1))])
    storage.write([SaveEntries(tuple(Entry(slot, Ballot(3, 1), (command,)) for slot in range(1, 40)))])
    storage.write([SaveCommit(30)])
    storage.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    storage.close()


def test_storage_detects_a_row_changed_behind_its_back(tmp_path):
    """A log row whose bytes changed without its checksum is refused at start."""
    path = tmp_path / "r.sqlite"
    filled_storage(path)
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE entries SET ballot_round = 9 WHERE slot = 5")
    with pytest.raises(StorageCorrupt, match="checksum mismatch in log slot 5"):
        SqliteStorage(path, 0).load()


def test_storage_detects_a_missing_committed_slot(tmp_path):
    """A committed slot deleted from the log is refused at start."""
    path = tmp_path / "r.sqlite"
    filled_storage(path)
    with sqlite3.connect(path) as connection:
        connection.execute("DELETE FROM entries WHERE slot = 7")
    with pytest.raises(StorageCorrupt, match="committed slot 7 is missing"):
        SqliteStorage(path, 0).load()


def test_storage_detects_damaged_pages_and_foreign_files(tmp_path):
    """Overwritten pages, a file that is not a database, and another replica's database
    all stop the start with a message that says what to do."""
    path = tmp_path / "r.sqlite"
    filled_storage(path)
    data = bytearray(path.read_bytes())
    for offset in range(4096 + 100, len(data), 997):
        data[offset] ^= 0x5A
    path.write_bytes(bytes(data))
    with pytest.raises(StorageCorrupt, match="refuses to start"):
        SqliteStorage(path, 0).load()
    path.write_bytes(b"this is not a database" * 200)
    with pytest.raises(StorageCorrupt, match="not a readable SQLite database"):
        SqliteStorage(path, 0).load()
    other = tmp_path / "other.sqlite"
    filled_storage(other)
    with pytest.raises(StorageCorrupt, match="belongs to replica 0, not 2"):
        SqliteStorage(other, 2).load()


# ---------------------------------------------------------------- cluster file


def test_cluster_file_round_trip_and_key(tmp_path, monkeypatch):
    """A written cluster file loads back with its replicas, limits and protocol settings;
    the key comes from the environment when set, else from the key file."""
    path = tmp_path / "cluster.toml"
    write_cluster_file(path, [7000, 7001, 7002], [6380, 6381, 6382], tick_ms=5,
                       bind_ports=[7100, 7101, 7102], limits={"value_bytes_max": 64},
                       protocol={"window_slots": 4, "thrifty": False})
    (tmp_path / "cluster.key").write_text("ab" * 32)
    spec = load_cluster(path)
    assert [r.address for r in spec.replicas] == [("127.0.0.1", p) for p in (7000, 7001, 7002)]
    assert spec.replica(1).bind == ("127.0.0.1", 7101)
    assert spec.limits.value_bytes_max == 64
    assert spec.protocol.window_slots == 4 and spec.protocol.thrifty is False
    assert spec.protocol.replicas == 3
    assert load_key(spec, {}) == bytes([0xAB]) * 32
    assert load_key(spec, {"LOWPAXOS_CLUSTER_KEY": "cd" * 16}) == bytes([0xCD]) * 16
    with pytest.raises(ClusterFileError, match="at least 16"):
        load_key(spec, {"LOWPAXOS_CLUSTER_KEY": "cd" * 4})


@pytest.mark.parametrize("text, message", [
    ("tick_ms = 10\n", "needs at least one"),
    ("[[replica]]\nid = 1\naddress='127.0.0.1:1'\nresp='127.0.0.1:2'\n", "ids must be 0..0"),
    ("[[replica]]\nid = 0\naddress='nope'\nresp='127.0.0.1:2'\n", "host:port"),
    ("[protocol]\nq1 = 1\nq2 = 1\n[[replica]]\nid = 0\naddress='h:1'\nresp='h:2'\n"
     "[[replica]]\nid = 1\naddress='h:3'\nresp='h:4'\n", "must exceed N"),
    ("[limits]\nbogus = 1\n[[replica]]\nid = 0\naddress='h:1'\nresp='h:2'\n", "unknown setting"),
    ("[limits]\nfragment_payload_bytes = 1500\ndatagram_bytes_max = 1500\n"
     "[[replica]]\nid = 0\naddress='h:1'\nresp='h:2'\n", "must fit datagram_bytes_max"),
    ("this is = = not toml", "not valid TOML"),
])
def test_cluster_file_errors_name_the_problem(tmp_path, text, message):
    """A cluster file that cannot run safely is refused with a message that says why."""
    path = tmp_path / "cluster.toml"
    path.write_text(text)
    with pytest.raises(ClusterFileError, match=message):
        load_cluster(path)
