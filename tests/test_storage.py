"""SqliteStorage on its own: its SQLite settings, what it refuses to load (damaged rows
and pages, another replica's file, a file of the old format, rows that do not add up
to their digest), the explicit verify command, and a file that grows with the data,
not with the number of writes. The record-by-record meaning is tested in
test_storage_crash.py."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import zlib

import msgpack
import pytest

from lowpaxos.core.api import Command
from lowpaxos.kvs import DATA, SESSION, write_row
from lowpaxos.protocols.lowpaxos.messages import (
    Ballot,
    Entry,
    SaveCommit,
    SaveEntries,
    SavePromise,
    SaveRows,
    SaveTruncate,
)
from lowpaxos.runtime import storage as storage_module
from lowpaxos.runtime.rowstore import encode_key
from lowpaxos.runtime.storage import SqliteStorage, StorageCorrupt


def test_storage_uses_wal_and_full_sync(tmp_path):
    """The database is in WAL mode with synchronous=FULL (2), a bounded WAL, and the
    row store reads on a connection of its own that cannot write."""
    storage = SqliteStorage(tmp_path / "r.sqlite", 0)
    storage.load()
    connection = storage.connection
    assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert connection.execute("PRAGMA synchronous").fetchone()[0] == 2
    assert connection.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == \
        storage_module.WAL_AUTOCHECKPOINT_PAGES
    assert connection.execute("PRAGMA journal_size_limit").fetchone()[0] == \
        storage_module.JOURNAL_SIZE_LIMIT_BYTES
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        storage.reader.execute("DELETE FROM meta")
    storage.close()


def filled_storage(path, rows: int = 20):
    """A file with a promise, 39 log slots, 30 committed, and ``rows`` KVS rows at 10."""
    storage = SqliteStorage(path, 0)
    store = storage.load().open_store()
    command = Command(1, 1, "put", "key", b"value" * 50)
    storage.write([SavePromise(Ballot(3, 1))])
    storage.write([SaveEntries(tuple(Entry(slot, Ballot(3, 1), (command,)) for slot in range(1, 40)))])
    storage.write([SaveCommit(30)])
    for number in range(rows):
        write_row(store, DATA, f"key{number}", b"v%d" % number, 10)
    write_row(store, SESSION, "1", b"session", 10)
    storage.write([SaveRows(10, store.digest, 0, store.take_changes()), SaveTruncate(5)])
    storage.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    storage.close()


def test_storage_loads_what_was_written(tmp_path):
    """The filled file loads with its scalars, log and rows."""
    path = tmp_path / "r.sqlite"
    filled_storage(path)
    storage = SqliteStorage(path, 0)
    state = storage.load()
    assert (state.promised, state.commit_index, state.log_start, state.store_index) == \
        (Ballot(3, 1), 30, 5, 10)
    assert sorted(state.entries) == list(range(6, 40))
    store = state.open_store()
    assert store.live_count(DATA) == 20 and store.live_count(SESSION) == 1
    assert store.get(DATA, "key7") == (b"v7", 10)
    storage.close()


def test_storage_detects_a_row_changed_behind_its_back(tmp_path):
    """A log row whose bytes changed without its checksum is refused at start."""
    path = tmp_path / "r.sqlite"
    filled_storage(path)
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE entries SET ballot_round = 9 WHERE slot = 8")
    with pytest.raises(StorageCorrupt, match="checksum mismatch in log slot 8"):
        SqliteStorage(path, 0).load()


def test_storage_detects_a_changed_meta_row(tmp_path):
    """A meta row whose bytes changed without its checksum is refused at start."""
    path = tmp_path / "r.sqlite"
    filled_storage(path)
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE meta SET value = ? WHERE name = 'commit_index'",
                           (msgpack.packb(31),))
    with pytest.raises(StorageCorrupt, match="checksum mismatch in meta row 'commit_index'"):
        SqliteStorage(path, 0).load()


def test_storage_detects_a_missing_committed_slot(tmp_path):
    """A committed slot above the stored rows deleted from the log is refused at start."""
    path = tmp_path / "r.sqlite"
    filled_storage(path)
    with sqlite3.connect(path) as connection:
        connection.execute("DELETE FROM entries WHERE slot = 17")
    with pytest.raises(StorageCorrupt, match="committed slot 17 is missing"):
        SqliteStorage(path, 0).load()


def test_storage_detects_kvs_rows_that_do_not_match_their_digest(tmp_path, monkeypatch):
    """A KVS row changed, added or removed behind the storage's back disagrees with the
    digest or counts in meta: refused at load for a small store; a large store (here:
    the threshold set to 0) loads unchecked, and verify_rows=True, or the verify command,
    catches it."""
    for change, message in [
        ("UPDATE kv_a SET value = x'00' WHERE key = ?", "do not add up to the digest"),
        ("DELETE FROM kv_a WHERE key = ?", "do not add up to the digest"),
        ("INSERT INTO tomb_a VALUES (0, ?, 3)", "also tombstones"),
    ]:
        path = tmp_path / f"r{len(message)}{change[:6]}.sqlite"
        filled_storage(path)
        with sqlite3.connect(path) as connection:
            connection.execute(change, (encode_key("key3"),))
        with pytest.raises(StorageCorrupt, match=message):
            SqliteStorage(path, 0).load()
        with monkeypatch.context() as patch:
            patch.setattr(storage_module, "VERIFY_ROWS_AT_LOAD_MAX", 0)
            unchecked = SqliteStorage(path, 0)
            unchecked.load()
            unchecked.close()
            with pytest.raises(StorageCorrupt, match=message):
                SqliteStorage(path, 0).load(verify_rows=True)
        result = subprocess.run([sys.executable, "-m", "lowpaxos.runtime.storage", "verify",
                                 str(path), "0"], capture_output=True, text=True)
        assert result.returncode == 2 and message in result.stderr


def test_verify_command_reports_a_sound_file(tmp_path):
    """``python -m lowpaxos.runtime.storage verify FILE ID`` checks every row and says ok."""
    path = tmp_path / "r.sqlite"
    filled_storage(path)
    result = subprocess.run([sys.executable, "-m", "lowpaxos.runtime.storage", "verify",
                             str(path), "0"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "ok; store index 10, 20 keys, 1 sessions, 34 log entries, commit 30" in result.stdout


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


def test_storage_refuses_a_file_of_the_old_format(tmp_path):
    """A format-1 file (the KVS as one snapshot row) is refused with a message that
    names both formats and tells the operator to move the file aside."""
    path = tmp_path / "r.sqlite"
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("CREATE TABLE meta(name TEXT PRIMARY KEY, value BLOB NOT NULL,"
                       " checksum INTEGER NOT NULL)")
    connection.execute("CREATE TABLE entries(slot INTEGER PRIMARY KEY, ballot_round INTEGER"
                       " NOT NULL, ballot_replica INTEGER NOT NULL, batch BLOB NOT NULL,"
                       " checksum INTEGER NOT NULL)")
    for name, value in [("format", 1), ("replica_id", 0), ("promised", [0, -1]),
                        ("commit_index", 0), ("log_start", 0), ("snapshot", [0, None])]:
        data = msgpack.packb(value, use_bin_type=True)
        connection.execute("INSERT INTO meta VALUES (?, ?, ?)",
                           (name, data, zlib.crc32(name.encode() + b"\0" + data)))
    connection.close()
    with pytest.raises(StorageCorrupt) as caught:
        SqliteStorage(path, 0).load()
    message = str(caught.value)
    assert "storage format 1" in message and f"format {storage_module.FORMAT}" in message
    assert "refuses to start" in message and "Move the file aside" in message


def test_file_grows_with_the_data_not_with_the_writes(tmp_path):
    """Rewriting the same 200 keys while the log is cut behind: after five times as many
    writes the checkpointed database file is no larger, and the WAL stays within its
    checkpoint interval (pages are reused, entries and tombstones deleted)."""
    path = tmp_path / "r.sqlite"
    storage = SqliteStorage(path, 0)
    store = storage.load().open_store()
    slot = 0

    def round_of_writes() -> None:
        nonlocal slot
        commands = []
        for _ in range(10):
            slot += 1
            key = f"key{slot % 200}"
            commands.append(Entry(slot, Ballot(1, 0), (Command(1, slot, "put", key, bytes(100)),)))
            if slot % 7 == 0:
                write_row(store, DATA, key, None, slot)
            else:
                write_row(store, DATA, key, bytes(100), slot)
        store.index = slot
        store.drop_tombstones_below(slot - 50)
        records = [SaveEntries(tuple(commands)),
                   SaveRows(slot, store.digest, store.tombstone_horizon, store.take_changes()),
                   SaveTruncate(slot - 20)]
        marks = storage.row_marks()
        storage.write(records)
        storage.rows_committed(marks)

    def checkpointed_size() -> int:
        storage.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return path.stat().st_size

    for _ in range(100):
        round_of_writes()
    size_early = checkpointed_size()
    wal_bytes_max = 0
    for _ in range(500):
        round_of_writes()
        wal_bytes_max = max(wal_bytes_max, path.with_name(path.name + "-wal").stat().st_size)
    size_late = checkpointed_size()
    storage.close()
    assert size_late <= size_early + 8 * 4096, (size_early, size_late)
    assert wal_bytes_max <= (storage_module.WAL_AUTOCHECKPOINT_PAGES + 64) * 4200, wal_bytes_max
