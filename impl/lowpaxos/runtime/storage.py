"""Durable protocol records in SQLite, one database per replica, for every protocol.

A core's persist records (LowPaxos: SavePromise, SaveEntries, SaveCommit,
SaveRows, SaveTruncate, SaveStaged, SaveInstall; VR: SaveStarted, SaveView, ...)
are folded into tables by the one definition of their meaning, the protocol's
fold (``DurableFold.apply`` in lowpaxos/durable.py, ``VRDurableFold.apply`` in
vr/durable.py; the registry names it), which the protocol's in-memory durable
state (the simulator's disk) also inherits. ``mirror_class(fold)`` here inherits
it too and supplies the primitives in SQL (write these entries, delete the log
above or through a slot, empty the staging pair, flip the live pair). A restarted
replica thus loads what the simulator would keep, except that the KVS rows stay
on disk. Nothing here knows what a record means; the fold names its scalar fields
(``SCALARS``), the integer columns an entry has beside its batch
(``ENTRY_COLUMNS``), the commit point whose slots the log must hold
(``COMMIT_FIELD``), and the encodings of both.

* ``meta(name, value, checksum)``: format, replica_id, protocol, one row per
  scalar of the fold (LowPaxos: promised, commit_index, log_start, transfer; VR:
  started, view, last_normal_view, status, commit, log_start, transfer), live
  (which row pair holds the KVS: "a" or "b"), rows_a and rows_b (each pair's index,
  digest, tombstone horizon and row counts);
* ``entries(slot, <ENTRY_COLUMNS>, batch, checksum)`` (LowPaxos: ballot_round and
  ballot_replica; VR: none, slot is the op-number);
* ``kv_a``/``tomb_a`` and ``kv_b``/``tomb_b``: the rows and tombstones of the KVS
  and of the staging area (runtime/rowstore.py owns these tables).

A file written before the ``protocol`` meta row existed is LowPaxos's; a file of
another protocol than the cluster file names is refused.

``write(records)`` puts one batch's records in one transaction. The database is
in WAL mode with ``synchronous=FULL``, so the commit returns only after the WAL
is fsynced: the runtime sends nothing of a batch before ``write`` returns. SaveInstall
flips ``live`` and empties the old KVS pair in the same transaction, so a crash
leaves either the old KVS or the installed one, never a mixture.

``load()`` returns a ``StoredState``: the fold's scalar fields and log entries the
core reads, and ``open_store()``/``open_staging()``, which give SqliteRowStores
over the tables; no row is read into memory. A protocol configured not to persist
its rows (VR's disk = "none", ``rows_durable`` False) gets in-memory row stores.

Every meta and entries row carries a CRC-32 of its contents. ``load`` runs ``PRAGMA
integrity_check``, verifies every checksum, decodes every value, and checks the
cross-row rules (entries above log_start, the committed prefix held, the replica
id). The KVS rows carry no per-row checksum: they are checked against the digest
and counts in meta, which means hashing every row, so ``load`` does it only for
stores of at most ``VERIFY_ROWS_AT_LOAD_MAX`` rows; larger ones are checked on
request (``load(verify_rows=True)``, or ``python -m lowpaxos.runtime.storage verify
FILE ID`` on a stopped replica's file). Any failure raises ``StorageCorrupt`` and
the replica refuses to start rather than serve wrong data.

Space: entries are deleted when the log is cut and tombstones below the horizon
on every SaveRows, so the file grows with the data, not with the number of
operations; pages freed are reused (no VACUUM). The WAL is checkpointed every
``WAL_AUTOCHECKPOINT_PAGES`` pages and cut back to ``JOURNAL_SIZE_LIMIT_BYTES``
after a checkpoint, except while an image's read transaction is open: a checkpoint
cannot pass a reader, so the WAL grows with the writes made during a long transfer.
"""

from __future__ import annotations

import argparse
import sqlite3
import struct
import sys
import time
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import msgpack

from lowpaxos import codec
from lowpaxos.kvs import MemoryRowStore
from lowpaxos.protocols.registry import PROTOCOLS
from lowpaxos.runtime import rowstore
from lowpaxos.runtime.rowstore import PAIRS, PairMeta, SqliteRowStore, meta_name, other_pair

# Format 1 kept the KVS as one snapshot blob in meta; format 2 keeps rows in tables.
FORMAT = 2
VERIFY_ROWS_AT_LOAD_MAX = 100_000
WAL_AUTOCHECKPOINT_PAGES = 1000  # SQLite's default, stated here so it is a decision
JOURNAL_SIZE_LIMIT_BYTES = 8 << 20
TABLES = {"meta", "entries"} | {f"{table}_{pair}" for table in ("kv", "tomb") for pair in PAIRS}
# The meta rows of every protocol; the fold's SCALARS come on top.
COMMON_META_NAMES = {"format", "replica_id", "protocol", "live", *(meta_name(pair) for pair in PAIRS)}
PROTOCOL_BEFORE_META_ROW = "lowpaxos"  # files written before the protocol row existed


class StorageCorrupt(RuntimeError):
    """The database cannot be trusted; the message says where and what to do."""


def _meta_checksum(name: str, value: bytes) -> int:
    return zlib.crc32(name.encode() + b"\0" + value)


def _entry_checksum(slot: int, columns: tuple[int, ...], batch: bytes) -> int:
    # For LowPaxos (slot, ballot round, ballot replica) as three big-endian int64s.
    return zlib.crc32(struct.pack(f">{1 + len(columns)}q", slot, *columns) + batch)


def _pack(value) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def encode_batch(batch) -> bytes:
    return _pack(codec.BATCH.to_wire(batch))


def decode_batch(data: bytes):
    return codec.BATCH.from_wire(msgpack.unpackb(data, raw=False))


class SqlRows:
    """One row pair's tables as the row set DurableFold.apply writes to: the rows go to
    SQL in the open transaction, index, digest and horizon to the pair's meta mirror."""

    def __init__(self, connection: sqlite3.Connection, pair: str, meta: PairMeta) -> None:
        self.connection = connection
        self.pair = pair
        self.meta = meta

    @property
    def index(self) -> int:
        return self.meta.index

    @index.setter
    def index(self, value: int) -> None:
        self.meta.index = value

    @property
    def digest(self) -> int:
        return self.meta.digest

    @digest.setter
    def digest(self, value: int) -> None:
        self.meta.digest = value

    @property
    def tombstone_horizon(self) -> int:
        return self.meta.tombstone_horizon

    @tombstone_horizon.setter
    def tombstone_horizon(self, value: int) -> None:
        self.meta.tombstone_horizon = value

    def apply_changes(self, rows) -> None:
        rowstore.write_changes(self.connection, self.pair, rows, self.meta)

    def drop_tombstones_below(self, version: int) -> None:
        rowstore.drop_tombstones_below(self.connection, self.pair, version)
        self.meta.tombstone_horizon = max(self.meta.tombstone_horizon, version)


class SqlPrimitives:
    """The primitives of a protocol's fold in SQL, and the scalars as last committed,
    so writes need no reads.

    ``mirror_class(fold)`` puts this before the fold: a copy folds one transaction's
    records (``apply``, inherited from the fold: the meaning of each record is written
    there once), and the primitives below carry them out in SQL on ``connection``,
    inside the transaction ``write`` opened. The scalar fields are attributes named by
    the fold's ``SCALARS``."""

    SCALARS: tuple[str, ...]
    ENTRY_COLUMNS: tuple[str, ...]
    COMMIT_FIELD: str

    def __init__(self, scalars: dict, live: str = "a",
                 pairs: dict[str, PairMeta] | None = None) -> None:
        assert set(scalars) == set(self.SCALARS), "every scalar of the fold, no other"
        for name, value in scalars.items():
            setattr(self, name, value)
        self.live = live
        self.pairs = pairs if pairs is not None else {pair: PairMeta() for pair in PAIRS}
        self.connection: sqlite3.Connection | None = None
        marks = ", ".join("?" * (len(self.ENTRY_COLUMNS) + 3))
        self.entry_marks = marks

    def scalars(self) -> dict:
        return {name: getattr(self, name) for name in self.SCALARS}

    def copy(self):
        return type(self)(self.scalars(), self.live,
                          {pair: meta.copy() for pair, meta in self.pairs.items()})

    def meta_values(self) -> dict:
        values = {name: self.scalar_to_stored(name, getattr(self, name)) for name in self.SCALARS}
        values["live"] = self.live
        for pair, meta in self.pairs.items():
            values[meta_name(pair)] = meta.to_value()
        return values

    # The primitives of the fold, in SQL.

    @property
    def store(self) -> SqlRows:
        return SqlRows(self.connection, self.live, self.pairs[self.live])

    @property
    def staging(self) -> SqlRows:
        staging = other_pair(self.live)
        return SqlRows(self.connection, staging, self.pairs[staging])

    def put_entries(self, entries: list) -> None:
        rows = []
        for entry in entries:
            slot, columns, batch = self.entry_to_stored(entry)
            data = encode_batch(batch)
            rows.append((slot, *columns, data, _entry_checksum(slot, columns, data)))
        # REPLACE: a slot written again (a re-accept under a higher ballot) takes the new row.
        self.connection.executemany(f"INSERT OR REPLACE INTO entries VALUES ({self.entry_marks})", rows)

    def drop_entries_through(self, slot: int) -> None:
        self.connection.execute("DELETE FROM entries WHERE slot <= ?", (slot,))

    def drop_entries_above(self, slot: int) -> None:
        self.connection.execute("DELETE FROM entries WHERE slot > ?", (slot,))

    def drop_entries_between(self, low: int, high: int) -> None:
        """Entries with low < slot <= high (EPaxos collects one replica's key range)."""
        self.connection.execute("DELETE FROM entries WHERE slot > ? AND slot <= ?", (low, high))

    def empty_staging(self) -> None:
        staging = other_pair(self.live)
        rowstore.empty_pair(self.connection, staging)
        self.pairs[staging] = PairMeta()

    def install_staging(self) -> None:
        old = self.live
        self.live = other_pair(old)
        rowstore.empty_pair(self.connection, old)
        self.pairs[old] = PairMeta()


_MIRROR_CLASSES: dict[type, type] = {}


def mirror_class(fold: type) -> type:
    """The SQL mirror of ``fold``: its ``apply`` over SqlPrimitives (one class per fold)."""
    if fold not in _MIRROR_CLASSES:
        _MIRROR_CLASSES[fold] = type(f"Sql{fold.__name__}", (SqlPrimitives, fold), {})
    return _MIRROR_CLASSES[fold]


def fresh_scalars(protocol: str) -> dict:
    """The scalars of an empty durable state of ``protocol`` (its new_durable's defaults)."""
    spec = PROTOCOLS[protocol]
    empty = spec.new_durable()
    return {name: getattr(empty, name) for name in spec.durable_fold.SCALARS}


class StoredState:
    """What ``load`` returns: the protocol's durable fields as its core reads them
    (attributes named by the fold's SCALARS, ``entries`` by slot, ``store_index``),
    with the rows left on disk (``open_store``/``open_staging`` give row stores)."""

    def __init__(self, scalars: dict, entries: dict, store_index: int,
                 storage: "SqliteStorage") -> None:
        for name, value in scalars.items():
            setattr(self, name, value)
        self.entries = entries
        self.store_index = store_index
        self.storage = storage

    def open_store(self):
        if not self.storage.rows_durable:
            return MemoryRowStore()
        return self.storage.open_rows(self.storage.mirror.live)

    def open_staging(self):
        if not self.storage.rows_durable:
            return MemoryRowStore()
        return self.storage.open_rows(other_pair(self.storage.mirror.live))


class SqliteStorage:
    """One replica's durable state; ``load`` first, then ``write`` per batch.

    ``write`` runs in the storage thread on ``connection``; the row stores read on
    ``reader`` in the event-loop thread (WAL lets both run at once)."""

    def __init__(self, path: str | Path, replica_id: int,
                 cache_rows_max: int = rowstore.CACHE_ROWS_MAX,
                 cache_bytes_max: int = rowstore.CACHE_BYTES_MAX,
                 images_max: int = rowstore.IMAGES_MAX, *, protocol: str = "lowpaxos",
                 rows_durable: bool = True) -> None:
        """``protocol``: a registry name, whose fold gives the records their meaning.
        ``rows_durable`` False: the core keeps its rows in memory (load's row stores)."""
        self.path = Path(path)
        self.replica_id = replica_id
        self.cache_rows_max = cache_rows_max
        self.cache_bytes_max = cache_bytes_max
        self.images_max = images_max
        self.protocol = protocol
        self.rows_durable = rows_durable
        self.fold = PROTOCOLS[protocol].durable_fold
        self.mirror_class = mirror_class(self.fold)
        self.connection: sqlite3.Connection | None = None
        self.reader: sqlite3.Connection | None = None
        self.mirror = self.mirror_class(fresh_scalars(protocol))
        self.row_stores: list[SqliteRowStore] = []
        self.transactions = 0
        self.records_written = 0
        self.write_seconds = 0.0  # time spent in write(), fsync included

    # ---------------------------------------------------------------- opening

    def load(self, verify_rows: bool | None = None) -> StoredState:
        """Open (creating if absent), verify, and return the durable state. The rows are
        checked against meta when ``verify_rows``, or when None and the store is small."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not self.path.exists()
        try:
            # The runtime writes from one worker thread at a time (the group-commit flusher).
            connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self.connection = connection
            mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            connection.execute("PRAGMA synchronous=FULL")
            connection.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
            connection.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT_BYTES}")
            if mode.lower() != "wal":
                raise StorageCorrupt(f"{self.path}: cannot enter WAL mode (got {mode})")
            if fresh:
                self._create()
            state = self._verify_and_read(verify_rows)
            self.reader = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self.reader.execute("PRAGMA query_only=1")
            return state
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
        columns = "".join(f" {name} INTEGER NOT NULL," for name in self.fold.ENTRY_COLUMNS)
        c.execute(f"CREATE TABLE entries(slot INTEGER PRIMARY KEY,{columns}"
                  " batch BLOB NOT NULL, checksum INTEGER NOT NULL)")
        for pair in PAIRS:
            rowstore.create_pair(c, pair)
        self._put_meta("format", FORMAT)
        self._put_meta("replica_id", self.replica_id)
        self._put_meta("protocol", self.protocol)
        for name, value in self.mirror_class(fresh_scalars(self.protocol)).meta_values().items():
            self._put_meta(name, value)
        c.execute("COMMIT")

    def _corrupt(self, what: str) -> StorageCorrupt:
        return StorageCorrupt(
            f"{self.path} is corrupt: {what}; the replica refuses to start. "
            f"Move the file aside to rejoin empty and catch up from the others."
        )

    def _verify_and_read(self, verify_rows: bool | None) -> StoredState:
        c = self.connection
        problems = [row[0] for row in c.execute("PRAGMA integrity_check(16)")]
        if problems != ["ok"]:
            raise self._corrupt("integrity_check: " + "; ".join(problems))
        tables = {row[0] for row in c.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "meta" not in tables:
            raise self._corrupt(f"no meta table (tables {sorted(tables)})")
        meta = {}
        for name, value, checksum in c.execute("SELECT name, value, checksum FROM meta"):
            if not isinstance(value, bytes) or _meta_checksum(name, value) != checksum:
                raise self._corrupt(f"checksum mismatch in meta row {name!r}")
            try:
                meta[name] = msgpack.unpackb(value, raw=False)
            except Exception:  # noqa: BLE001 - any decoding failure means the same: corrupt
                raise self._corrupt(f"meta row {name!r} does not decode") from None
        if meta.get("format") != FORMAT:
            raise StorageCorrupt(
                f"{self.path} is in storage format {meta.get('format')!r}; this build reads "
                f"format {FORMAT} only (format 1 kept the KVS as one snapshot; format 2 keeps "
                f"its rows in tables) and does not convert. The replica refuses to start. "
                f"Move the file aside to rejoin empty and catch up from the others."
            )
        if tables != TABLES:
            raise self._corrupt(f"tables {sorted(tables)}, expected {sorted(TABLES)}")
        protocol = meta.pop("protocol", PROTOCOL_BEFORE_META_ROW)
        if protocol != self.protocol:
            raise StorageCorrupt(
                f"{self.path} holds the state of protocol {protocol!r}, not {self.protocol!r} "
                f"as the cluster file says; the replica refuses to start. Use a data_dir of "
                f"the protocol's own (or move the file aside to rejoin empty)."
            )
        fold = self.fold
        expected = (COMMON_META_NAMES - {"protocol"}) | set(fold.SCALARS)
        if set(meta) != expected:
            raise self._corrupt(f"meta rows {sorted(meta)}, expected {sorted(expected)}")
        if meta["replica_id"] != self.replica_id:
            raise StorageCorrupt(
                f"{self.path} belongs to replica {meta['replica_id']}, not {self.replica_id}; "
                f"the replica refuses to start"
            )
        try:
            mirror = self.mirror_class(
                {name: fold.scalar_from_stored(name, meta[name]) for name in fold.SCALARS},
                live=meta["live"],
                pairs={pair: PairMeta.from_value(meta[meta_name(pair)]) for pair in PAIRS},
            )
        except (TypeError, ValueError):
            raise self._corrupt("meta rows have the wrong shape") from None
        if mirror.live not in PAIRS:
            raise self._corrupt(f"live pair {mirror.live!r}")
        store_index = mirror.pairs[mirror.live].index
        commit = getattr(mirror, fold.COMMIT_FIELD)
        if not mirror.log_start <= store_index <= commit:
            raise self._corrupt(f"log_start {mirror.log_start} <= store index {store_index}"
                                f" <= commit {commit} fails")
        entries: dict = {}
        width = len(fold.ENTRY_COLUMNS)
        for row in c.execute("SELECT * FROM entries"):
            slot, columns, batch, checksum = row[0], row[1:1 + width], row[-2], row[-1]
            if not isinstance(batch, bytes) or _entry_checksum(slot, columns, batch) != checksum:
                raise self._corrupt(f"checksum mismatch in log slot {slot}")
            if slot <= mirror.log_start:
                raise self._corrupt(f"log slot {slot} at or below log_start {mirror.log_start}")
            try:
                entries[slot] = fold.entry_from_stored(slot, columns, decode_batch(batch))
            except Exception:  # noqa: BLE001
                raise self._corrupt(f"log slot {slot} does not decode") from None
        for slot in range(store_index + 1, commit + 1):
            if slot not in entries:
                raise self._corrupt(f"committed slot {slot} is missing")
        rows = sum(meta.data_rows + meta.session_rows for meta in mirror.pairs.values())
        if verify_rows or (verify_rows is None and rows <= VERIFY_ROWS_AT_LOAD_MAX):
            for pair in PAIRS:
                problem = rowstore.verify_pair(c, pair, mirror.pairs[pair])
                if problem is not None:
                    raise self._corrupt(problem)
        self.mirror = mirror
        return StoredState(mirror.scalars(), entries, store_index, self)

    def open_rows(self, pair: str) -> SqliteRowStore:
        """A row store over ``pair`` as last committed (StoredState.open_store/open_staging)."""
        assert self.reader is not None, "load() before opening row stores"
        store = SqliteRowStore(self.path, self.reader, pair, self.mirror.pairs[pair],
                               self.cache_rows_max, self.cache_bytes_max, self.images_max)
        self.row_stores.append(store)
        return store

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
        state = self.mirror.copy()  # becomes the mirror only once the transaction commits
        state.connection = c
        c.execute("BEGIN IMMEDIATE")
        try:
            for record in records:
                state.apply(record)
            before = self.mirror.meta_values()
            for name, value in state.meta_values().items():
                if value != before[name]:
                    self._put_meta(name, value)
            c.execute("COMMIT")
        except BaseException:
            if c.in_transaction:
                c.execute("ROLLBACK")
            raise
        finally:
            state.connection = None
        self.mirror = state
        self.transactions += 1
        self.records_written += len(records)
        self.write_seconds += time.perf_counter() - started

    # ------------------------------------------------- the row stores' overlays

    def row_marks(self) -> list[tuple[SqliteRowStore, int]]:
        """Call when taking the batches to write (no await in between): which changes
        taken from each row store those batches carry."""
        return [(store, store.mark()) for store in self.row_stores]

    def rows_committed(self, marks: list[tuple[SqliteRowStore, int]]) -> None:
        """Call once ``write`` of those batches returned: the row stores let go of the
        changes now on disk."""
        for store, mark in marks:
            store.committed(mark)

    def row_stats(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for store in self.row_stores:
            for name, value in store.stats().items():
                totals[name] = totals.get(name, 0) + value
        return totals

    def close(self) -> None:
        for name in ("reader", "connection"):
            connection = getattr(self, name)
            if connection is not None:
                connection.close()
                setattr(self, name, None)


def stored_protocol(path: str | Path) -> str:
    """The protocol whose state a replica's file holds (files without the row: LowPaxos's)."""
    connection = sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True)
    try:
        row = connection.execute("SELECT value FROM meta WHERE name = 'protocol'").fetchone()
    finally:
        connection.close()
    return PROTOCOL_BEFORE_META_ROW if row is None else msgpack.unpackb(row[0], raw=False)


def main(argv: list[str] | None = None) -> int:
    """``python -m lowpaxos.runtime.storage verify FILE ID``: every check of load, the
    rows against their digests included; run it on a stopped replica's file or a copy.
    The protocol is the one the file records."""
    parser = argparse.ArgumentParser(prog="python -m lowpaxos.runtime.storage")
    parser.add_argument("action", choices=["verify"])
    parser.add_argument("file")
    parser.add_argument("replica_id", type=int)
    arguments = parser.parse_args(argv)
    if not Path(arguments.file).exists():
        print(f"{arguments.file}: no such file", file=sys.stderr)
        return 2
    try:
        protocol = stored_protocol(arguments.file)
    except (sqlite3.DatabaseError, ValueError) as error:
        print(f"{arguments.file}: cannot read its protocol: {error}", file=sys.stderr)
        return 2
    if protocol not in PROTOCOLS:
        print(f"{arguments.file}: unknown protocol {protocol!r}", file=sys.stderr)
        return 2
    storage = SqliteStorage(arguments.file, arguments.replica_id, protocol=protocol)
    try:
        state = storage.load(verify_rows=True)
    except StorageCorrupt as error:
        print(error, file=sys.stderr)
        return 2
    live = storage.mirror.pairs[storage.mirror.live]
    commit = getattr(state, storage.fold.COMMIT_FIELD)
    print(f"{arguments.file}: ok; store index {state.store_index}, {live.data_rows} keys, "
          f"{live.session_rows} sessions, {len(state.entries)} log entries, "
          f"commit {commit}; protocol {protocol}")
    storage.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
