"""Durable LowPaxos records in SQLite, one database per replica.

The core's persist records (SavePromise, SaveEntries, SaveCommit, SaveSnapshot)
are folded into two tables with exactly the meaning of
``DurableState.apply`` (durable.py), so a restarted replica loads the same
DurableState the simulator would keep:

* ``meta(name, value, checksum)``: format, replica_id, promised, commit_index,
  snapshot (index and KVS state), log_start;
* ``entries(slot, ballot_round, ballot_replica, batch, checksum)``.

``write(records)`` puts one batch's records in one transaction. The database is
in WAL mode with ``synchronous=FULL``, so the commit returns only after the WAL
is fsynced: the runtime sends nothing of a batch before ``write`` returns.

Every row carries a CRC-32 of its contents. ``load`` runs ``PRAGMA
integrity_check`` and verifies every checksum, decodes every value, and checks
the cross-row rules (entries above log_start, replica id). Any failure raises
``StorageCorrupt`` and the replica refuses to start rather than serve wrong data.
"""

from __future__ import annotations

import sqlite3
import struct
import time
import zlib
from pathlib import Path

import msgpack

from lowpaxos import codec
from lowpaxos.protocols.lowpaxos.durable import DurableState
from lowpaxos.protocols.lowpaxos.messages import (
    BALLOT_ZERO,
    Ballot,
    Entry,
    SaveCommit,
    SaveEntries,
    SavePromise,
    SaveSnapshot,
)

FORMAT = 1
ENTRY_KEY = struct.Struct(">qqq")


class StorageCorrupt(RuntimeError):
    """The database cannot be trusted; the message says where and what to do."""


def _meta_checksum(name: str, value: bytes) -> int:
    return zlib.crc32(name.encode() + b"\0" + value)


def _entry_checksum(slot: int, ballot: Ballot, batch: bytes) -> int:
    return zlib.crc32(ENTRY_KEY.pack(slot, ballot.round, ballot.replica) + batch)


def _pack(value) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def encode_batch(batch) -> bytes:
    return _pack(codec.BATCH.to_wire(batch))


def decode_batch(data: bytes):
    return codec.BATCH.from_wire(msgpack.unpackb(data, raw=False))


class SqliteStorage:
    """One replica's durable state; ``load`` first, then ``write`` per batch."""

    def __init__(self, path: str | Path, replica_id: int) -> None:
        self.path = Path(path)
        self.replica_id = replica_id
        self.connection: sqlite3.Connection | None = None
        # Mirrors of the scalar rows, so writes need no reads.
        self.promised = BALLOT_ZERO
        self.commit_index = 0
        self.snapshot_index = 0
        self.log_start = 0
        self.transactions = 0
        self.records_written = 0
        self.write_seconds = 0.0  # time spent in write(), fsync included

    # ---------------------------------------------------------------- opening

    def load(self) -> DurableState:
        """Open (creating if absent), verify, and return the durable state."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not self.path.exists()
        try:
            # The runtime writes from one worker thread at a time (the group-commit flusher).
            connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self.connection = connection
            mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            connection.execute("PRAGMA synchronous=FULL")
            if mode.lower() != "wal":
                raise StorageCorrupt(f"{self.path}: cannot enter WAL mode (got {mode})")
            if fresh:
                self._create()
            return self._verify_and_read()
        except sqlite3.DatabaseError as error:
            self.close()
            raise StorageCorrupt(
                f"{self.path} is not a readable SQLite database ({error}); the replica "
                f"refuses to start. Move the file aside to rejoin empty and catch up."
            ) from None
        except StorageCorrupt:
            self.close()
            raise

    def _create(self) -> None:
        c = self.connection
        c.execute("BEGIN IMMEDIATE")
        c.execute("CREATE TABLE meta(name TEXT PRIMARY KEY, value BLOB NOT NULL,"
                  " checksum INTEGER NOT NULL)")
        c.execute("CREATE TABLE entries(slot INTEGER PRIMARY KEY, ballot_round INTEGER NOT NULL,"
                  " ballot_replica INTEGER NOT NULL, batch BLOB NOT NULL,"
                  " checksum INTEGER NOT NULL)")
        self._put_meta("format", FORMAT)
        self._put_meta("replica_id", self.replica_id)
        self._put_meta("promised", list(BALLOT_ZERO))
        self._put_meta("commit_index", 0)
        self._put_meta("log_start", 0)
        self._put_meta("snapshot", [0, None])
        c.execute("COMMIT")

    def _corrupt(self, what: str) -> StorageCorrupt:
        return StorageCorrupt(
            f"{self.path} is corrupt: {what}; the replica refuses to start. "
            f"Move the file aside to rejoin empty and catch up from the others."
        )

    def _verify_and_read(self) -> DurableState:
        c = self.connection
        problems = [row[0] for row in c.execute("PRAGMA integrity_check(16)")]
        if problems != ["ok"]:
            raise self._corrupt("integrity_check: " + "; ".join(problems))
        tables = {row[0] for row in c.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if tables != {"meta", "entries"}:
            raise self._corrupt(f"unexpected tables {sorted(tables)}")
        meta = {}
        for name, value, checksum in c.execute("SELECT name, value, checksum FROM meta"):
            if not isinstance(value, bytes) or _meta_checksum(name, value) != checksum:
                raise self._corrupt(f"checksum mismatch in meta row {name!r}")
            try:
                meta[name] = msgpack.unpackb(value, raw=False)
            except Exception:  # noqa: BLE001 - any decoding failure means the same: corrupt
                raise self._corrupt(f"meta row {name!r} does not decode") from None
        expected = {"format", "replica_id", "promised", "commit_index", "log_start", "snapshot"}
        if set(meta) != expected:
            raise self._corrupt(f"meta rows {sorted(meta)}, expected {sorted(expected)}")
        if meta["format"] != FORMAT:
            raise self._corrupt(f"format {meta['format']!r}, this build reads {FORMAT}")
        if meta["replica_id"] != self.replica_id:
            raise StorageCorrupt(
                f"{self.path} belongs to replica {meta['replica_id']}, not {self.replica_id}; "
                f"the replica refuses to start"
            )
        try:
            promised = Ballot(*meta["promised"])
            commit_index = int(meta["commit_index"])
            log_start = int(meta["log_start"])
            snapshot_index, snapshot_state = meta["snapshot"]
        except (TypeError, ValueError):
            raise self._corrupt("meta rows have the wrong shape") from None
        if snapshot_state is not None and not isinstance(snapshot_state, bytes):
            raise self._corrupt("snapshot state is not bytes")
        if log_start > snapshot_index or snapshot_index > commit_index:
            raise self._corrupt(
                f"log_start {log_start} <= snapshot {snapshot_index} <= commit {commit_index} fails"
            )
        entries: dict[int, Entry] = {}
        for slot, ballot_round, ballot_replica, batch, checksum in c.execute(
            "SELECT slot, ballot_round, ballot_replica, batch, checksum FROM entries"
        ):
            ballot = Ballot(ballot_round, ballot_replica)
            if not isinstance(batch, bytes) or _entry_checksum(slot, ballot, batch) != checksum:
                raise self._corrupt(f"checksum mismatch in log slot {slot}")
            if slot <= log_start:
                raise self._corrupt(f"log slot {slot} at or below log_start {log_start}")
            try:
                entries[slot] = Entry(slot, ballot, decode_batch(batch))
            except Exception:  # noqa: BLE001
                raise self._corrupt(f"log slot {slot} does not decode") from None
        for slot in range(snapshot_index + 1, commit_index + 1):
            if slot not in entries:
                raise self._corrupt(f"committed slot {slot} is missing")
        self.promised = promised
        self.commit_index = commit_index
        self.snapshot_index = snapshot_index
        self.log_start = log_start
        return DurableState(
            promised=promised,
            entries=entries,
            commit_index=commit_index,
            snapshot_index=snapshot_index,
            snapshot_state=snapshot_state,
            log_start=log_start,
        )

    # ---------------------------------------------------------------- writing

    def _put_meta(self, name: str, value) -> None:
        data = _pack(value)
        self.connection.execute(
            "INSERT OR REPLACE INTO meta(name, value, checksum) VALUES (?, ?, ?)",
            (name, data, _meta_checksum(name, data)),
        )

    def write(self, records: list) -> None:
        """Fold ``records`` in order (DurableState.apply semantics), one synced transaction."""
        assert self.connection is not None, "load() before write()"
        if not records:
            return
        c = self.connection
        started = time.perf_counter()
        c.execute("BEGIN IMMEDIATE")
        try:
            promised_changed = commit_changed = False
            for record in records:
                match record:
                    case SavePromise(ballot=ballot):
                        assert ballot >= self.promised, "a promise never goes back"
                        self.promised = ballot
                        promised_changed = True
                    case SaveEntries(entries=entries):
                        rows = []
                        for entry in entries:
                            if entry.slot > self.log_start:
                                batch = encode_batch(entry.batch)
                                rows.append((entry.slot, entry.ballot.round, entry.ballot.replica,
                                             batch, _entry_checksum(entry.slot, entry.ballot, batch)))
                        c.executemany(
                            "INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?, ?)", rows
                        )
                    case SaveCommit(commit_index=commit_index):
                        if commit_index > self.commit_index:
                            self.commit_index = commit_index
                            commit_changed = True
                    case SaveSnapshot(index=index, state=state, log_start=log_start):
                        assert log_start <= index, "the log is only dropped below the snapshot"
                        if index >= self.snapshot_index:
                            self.snapshot_index = index
                            self._put_meta("snapshot", [index, state])
                            if index > self.commit_index:
                                self.commit_index = index
                                commit_changed = True
                        if log_start > self.log_start:
                            self.log_start = log_start
                            self._put_meta("log_start", log_start)
                            c.execute("DELETE FROM entries WHERE slot <= ?", (log_start,))
                    case _:
                        raise TypeError(f"not a LowPaxos durable record: {record!r}")
            if promised_changed:
                self._put_meta("promised", list(self.promised))
            if commit_changed:
                self._put_meta("commit_index", self.commit_index)
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        self.transactions += 1
        self.records_written += len(records)
        self.write_seconds += time.perf_counter() - started

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None
