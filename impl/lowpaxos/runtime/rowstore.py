"""The KVS rows of a replica in its SQLite database, behind a bounded cache.

Theory of operation
-------------------
``SqliteRowStore`` is the runtime's ``RowStore`` (kvs.py; ``MemoryRowStore`` is the
reference). The rows live in a pair of tables of the replica's database:
``kv_P(kind, key, value, version)`` for live rows and ``tomb_P(kind, key, version)``
for tombstones, with P "a" or "b". One pair holds the KVS, the other the staging
area of a state transfer; the meta row ``live`` names the KVS pair and meta
``rows_P`` holds each pair's index, digest, tombstone horizon and row counts.

An install copies and renames nothing: the staging pair becomes the KVS (meta
``live`` flips) and the old KVS pair is emptied to serve as the next staging area.
A store object stays bound to its pair for life, so at an install the core swaps
its two store objects and ``clear()``s the old one, just as it does with
MemoryRowStores, and each object still names the right tables.

Nothing here writes to the database. The core changes rows in memory;
``take_changes()`` hands them over for a persist record (SaveRows, SaveStaged), and
the storage thread folds that record into the tables inside its transaction
(``write_changes`` below, called by storage.py). Until then the rows exist only in
memory, so a read looks, newest first, at:

1. the pending layer: changes since the last ``take_changes()``;
2. the taken layers: changes handed over whose transaction has not committed yet
   (the driver calls ``mark()`` when it takes batches to write and
   ``committed(mark)`` once the transaction is durable);
3. the cache: a bounded LRU of rows, and of absences, as they are on disk;
4. the table, through the read connection of the event-loop thread. In WAL mode it
   sees the last committed transaction, and every change not in that transaction is
   still in a layer above, so a row read from disk is never stale.

A layer made by ``clear()`` hides everything below it until it is committed.

The contract this relies on (the core and replica.py keep it):

* the rows a ``take_changes()`` returns go into a persist record of the same
  Effects batch, so ``mark()`` taken with the batch covers exactly the layers
  that batch writes (the core may also throw changes away, as install_snapshot
  does with the old KVS, if it ``clear()``s the store right after);
* after ``clear()``, the record that empties the pair on disk (SaveStaged with
  ``reset``, or SaveInstall for the old KVS pair) is in the batch of the store's
  next ``take_changes()`` or in an earlier one.

``image()`` opens its own connection and a read transaction, so it keeps seeing the
last committed state of the pair while writes go on. Its index, digest and horizon
are the pair's meta in that state: the index of the last committed SaveRows or
SaveInstall, which may lag the core's in-memory rows, or 0 when the pair is still
the staging area on disk (an install not yet committed), which the core treats as
no image.

Keys are stored as BLOBs of ``key.encode("utf-8", "surrogatepass")``. UTF-8 with
surrogates encoded in their three-byte form orders bytes exactly as Python orders
str (by code point), so SQLite's memcmp order on the BLOBs is the (kind, key)
order of kvs.py for every str, not only the runtime's latin-1 keys
(tests/test_rowstore.py checks this, surrogates and astral characters included).

Bounds: the cache holds at most ``cache_rows_max`` rows and about
``cache_bytes_max`` bytes (Python's per-row overhead counted); layers hold what
the core changed during one fsync (the core bounds its batches); at most
``images_max`` images are open per store (the core's own bound, asserted here).
"""

from __future__ import annotations

import sqlite3
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import msgpack

from lowpaxos.kvs import DATA, DIGEST_MODULUS, KINDS, REMOVED, SESSION, row_hash

PAIRS = ("a", "b")
IMAGES_MAX = 2  # per store, unless the driver passes the core's images_max
CACHE_ROWS_MAX = 65536
CACHE_BYTES_MAX = 16 << 20
# What a cached row costs beyond its key and value: the key tuple, the row tuple, the
# OrderedDict link and the object headers: 331 bytes measured with tracemalloc for
# 16-character keys and 100-byte values, rounded up.
CACHE_ROW_OVERHEAD_BYTES = 340
IMAGE_CACHE_KIB = 1024  # page cache of an image's own connection


def encode_key(key: str) -> bytes:
    return key.encode("utf-8", "surrogatepass")


def decode_key(blob: bytes) -> str:
    return blob.decode("utf-8", "surrogatepass")


def other_pair(pair: str) -> str:
    return "b" if pair == "a" else "a"


def create_pair(connection: sqlite3.Connection, pair: str) -> None:
    """The two tables of a pair (inside the caller's transaction)."""
    assert pair in PAIRS, pair
    connection.execute(f"CREATE TABLE kv_{pair}(kind INTEGER NOT NULL, key BLOB NOT NULL,"
                       f" value BLOB NOT NULL, version INTEGER NOT NULL,"
                       f" PRIMARY KEY(kind, key)) WITHOUT ROWID")
    connection.execute(f"CREATE TABLE tomb_{pair}(kind INTEGER NOT NULL, key BLOB NOT NULL,"
                       f" version INTEGER NOT NULL, PRIMARY KEY(kind, key)) WITHOUT ROWID")
    # SaveRows drops tombstones below a horizon on every write; the index makes that a seek.
    connection.execute(f"CREATE INDEX tomb_{pair}_version ON tomb_{pair}(version)")


# ------------------------------------------------------------ pair metadata


@dataclass
class PairMeta:
    """What meta row ``rows_P`` says of a pair. Kept by storage.py as a mirror of the
    row, updated inside the write transaction."""

    index: int = 0
    digest: int = 0
    tombstone_horizon: int = 0
    data_rows: int = 0
    session_rows: int = 0

    def to_value(self) -> list:
        # msgpack integers stop at 64 bits; the digest has 128.
        return [self.index, self.digest.to_bytes(16, "big"), self.tombstone_horizon,
                self.data_rows, self.session_rows]

    @classmethod
    def from_value(cls, value) -> "PairMeta":
        index, digest, horizon, data_rows, session_rows = value
        if not isinstance(digest, bytes) or len(digest) != 16:
            raise ValueError("digest is not 16 bytes")
        for number in (index, horizon, data_rows, session_rows):
            if type(number) is not int or number < 0:
                raise ValueError("a count or slot is not a non-negative integer")
        return cls(index, int.from_bytes(digest, "big"), horizon, data_rows, session_rows)

    def count(self, kind: int) -> int:
        return self.data_rows if kind == DATA else self.session_rows

    def add(self, kind: int, delta: int) -> None:
        if kind == DATA:
            self.data_rows += delta
        else:
            self.session_rows += delta

    def copy(self) -> "PairMeta":
        return PairMeta(self.index, self.digest, self.tombstone_horizon, self.data_rows,
                        self.session_rows)


def meta_name(pair: str) -> str:
    return f"rows_{pair}"


# ------------------------------------------------------- writes (storage thread)


def write_changes(connection: sqlite3.Connection, pair: str, rows, meta: PairMeta) -> None:
    """Fold change rows into ``pair`` with MemoryRowStore.apply_changes' meaning, keeping
    ``meta``'s row counts; the caller holds the transaction."""
    kv, tomb = f"kv_{pair}", f"tomb_{pair}"
    execute = connection.execute
    for kind, key, value, version in rows:
        assert kind in KINDS, f"row kind {kind!r}"
        blob = encode_key(key)
        if value is not None:
            # Insert first: most rows of a transfer are new; an existing row is updated.
            if execute(f"INSERT OR IGNORE INTO {kv} VALUES (?, ?, ?, ?)",
                       (kind, blob, value, version)).rowcount == 1:
                meta.add(kind, 1)
            else:
                execute(f"UPDATE {kv} SET value = ?, version = ? WHERE kind = ? AND key = ?",
                        (value, version, kind, blob))
            execute(f"DELETE FROM {tomb} WHERE kind = ? AND key = ?", (kind, blob))
            continue
        if execute(f"DELETE FROM {kv} WHERE kind = ? AND key = ?", (kind, blob)).rowcount == 1:
            meta.add(kind, -1)
        if version == REMOVED:
            execute(f"DELETE FROM {tomb} WHERE kind = ? AND key = ?", (kind, blob))
        else:
            assert version >= 0, f"tombstone version {version}"
            execute(f"INSERT OR REPLACE INTO {tomb} VALUES (?, ?, ?)", (kind, blob, version))


def drop_tombstones_below(connection: sqlite3.Connection, pair: str, version: int) -> None:
    connection.execute(f"DELETE FROM tomb_{pair} WHERE version < ?", (version,))


def empty_pair(connection: sqlite3.Connection, pair: str) -> None:
    connection.execute(f"DELETE FROM kv_{pair}")
    connection.execute(f"DELETE FROM tomb_{pair}")


def verify_pair(connection: sqlite3.Connection, pair: str, meta: PairMeta) -> str | None:
    """Why the rows of ``pair`` disagree with ``meta`` (digest, counts, a row both live
    and tombstoned, a key that does not decode), or None. Reads every row once."""
    digest = 0
    counts = {kind: 0 for kind in KINDS}
    for kind, blob, value, version in connection.execute(
            f"SELECT kind, key, value, version FROM kv_{pair}"):
        if kind not in KINDS or not isinstance(blob, bytes) or not isinstance(value, bytes):
            return f"a row of kv_{pair} has the wrong types"
        try:
            key = decode_key(blob)
        except UnicodeDecodeError:
            return f"a key of kv_{pair} does not decode"
        digest += row_hash(kind, key, value, version)
        counts[kind] += 1
    if digest % DIGEST_MODULUS != meta.digest:
        return f"the rows of kv_{pair} do not add up to the digest in meta"
    if (counts[DATA], counts[SESSION]) != (meta.data_rows, meta.session_rows):
        return (f"kv_{pair} holds {counts[DATA]} data and {counts[SESSION]} session rows,"
                f" meta says {meta.data_rows} and {meta.session_rows}")
    both = connection.execute(
        f"SELECT count(*) FROM kv_{pair} JOIN tomb_{pair} USING (kind, key)").fetchall()[0][0]
    if both:
        return f"{both} rows of kv_{pair} are also tombstones"
    return None


# ------------------------------------------------------------ reads (event loop)


class Layer:
    """Changes not yet on disk: (kind, key) -> (value or None, version); ``reset`` hides
    every layer and row below it."""

    __slots__ = ("changes", "reset", "mark")

    def __init__(self, reset: bool = False) -> None:
        self.changes: dict[tuple[int, str], tuple[bytes | None, int]] = {}
        self.reset = reset
        self.mark = 0


class SqliteImage:
    """A point-in-time view of one pair: a read transaction on its own connection."""

    def __init__(self, path: Path, pair: str, owner: "SqliteRowStore") -> None:
        self.pair = pair
        self.owner = owner
        self.connection: sqlite3.Connection | None = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False)
        try:
            self.connection.execute("PRAGMA query_only=1")
            self.connection.execute(f"PRAGMA cache_size=-{IMAGE_CACHE_KIB}")
            self.connection.execute("BEGIN")
            # The first read starts the snapshot; every later read of this image sees it.
            (value,), = self.connection.execute(
                "SELECT value FROM meta WHERE name = ?", (meta_name(pair),)).fetchall()
            meta = PairMeta.from_value(msgpack.unpackb(value, raw=False))
        except BaseException:
            self.connection.close()
            raise
        self.index = meta.index
        self.digest = meta.digest
        self.tombstone_horizon = meta.tombstone_horizon

    def _after(self, table: str, columns: str, kind: int, key: str | None, limit: int) -> list:
        assert self.connection is not None, "read of a closed image"
        if key is None:
            query = (f"SELECT {columns} FROM {table}_{self.pair} WHERE kind >= ?"
                     f" ORDER BY kind, key LIMIT ?")
            arguments: tuple = (kind, limit)
        else:
            query = (f"SELECT {columns} FROM {table}_{self.pair} WHERE (kind, key) > (?, ?)"
                     f" ORDER BY kind, key LIMIT ?")
            arguments = (kind, encode_key(key), limit)
        return self.connection.execute(query, arguments).fetchall()

    def rows_after(self, kind, key, limit):
        return [(k, decode_key(blob), value, version) for k, blob, value, version
                in self._after("kv", "kind, key, value, version", kind, key, limit)]

    def tombstones_after(self, kind, key, limit):
        return [(k, decode_key(blob), version) for k, blob, version
                in self._after("tomb", "kind, key, version", kind, key, limit)]

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()  # ends the read transaction: the WAL can be checkpointed
            self.connection = None
            self.owner.images_open -= 1


_NOT_CACHED = object()


class SqliteRowStore:
    """A RowStore over pair ``pair`` of the database at ``path``; reads through
    ``reader`` (a connection owned by the event-loop thread)."""

    def __init__(self, path: Path, reader: sqlite3.Connection, pair: str, meta: PairMeta,
                 cache_rows_max: int = CACHE_ROWS_MAX, cache_bytes_max: int = CACHE_BYTES_MAX,
                 images_max: int = IMAGES_MAX) -> None:
        assert pair in PAIRS, pair
        self.path = Path(path)
        self.reader = reader
        self.pair = pair
        self.index = meta.index
        self.digest = meta.digest
        self.tombstone_horizon = meta.tombstone_horizon
        self.counts = {DATA: meta.data_rows, SESSION: meta.session_rows}
        self.pending = Layer()
        self.taken: list[Layer] = []  # oldest first
        self.marks = 0  # layers taken so far; a layer's mark is its number
        self.cache: OrderedDict[tuple[int, str], tuple[bytes, int] | None] = OrderedDict()
        self.cache_bytes = 0
        self.cache_rows_max = cache_rows_max
        self.cache_bytes_max = cache_bytes_max
        self.cache_hits = 0
        self.cache_misses = 0
        self.images_max = images_max
        self.images_open = 0
        kv = f"kv_{pair}"
        self._get_sql = f"SELECT value, version FROM {kv} WHERE kind = ? AND key = ?"
        self._scan_sql = f"SELECT key, value FROM {kv} WHERE kind = ? AND key > ? ORDER BY key LIMIT ?"
        self._scan_first_sql = f"SELECT key, value FROM {kv} WHERE kind = ? ORDER BY key LIMIT ?"

    # ---- the layers ----

    def _layers(self):
        """Layers newest first, down to and including the newest reset layer."""
        yield self.pending
        if self.pending.reset:
            return
        for layer in reversed(self.taken):
            yield layer
            if layer.reset:
                return

    def _base_hidden(self) -> bool:
        return self.pending.reset or any(layer.reset for layer in self.taken)

    def _overlay(self) -> dict[tuple[int, str], tuple[bytes | None, int]]:
        """Every name a layer decides, with its newest change."""
        merged: dict = {}
        for layer in self._layers():
            for name, change in layer.changes.items():
                merged.setdefault(name, change)
        return merged

    @property
    def overlay_rows(self) -> int:
        return len(self.pending.changes) + sum(len(layer.changes) for layer in self.taken)

    # ---- the cache ----

    def _cache_size(self, name, row) -> int:
        return len(name[1]) + (0 if row is None else len(row[0])) + CACHE_ROW_OVERHEAD_BYTES

    def _cache_put(self, name, row) -> None:
        cache = self.cache
        old = cache.pop(name, _NOT_CACHED)
        if old is not _NOT_CACHED:
            self.cache_bytes -= self._cache_size(name, old)
        cache[name] = row
        self.cache_bytes += self._cache_size(name, row)
        while len(cache) > self.cache_rows_max or self.cache_bytes > self.cache_bytes_max:
            evicted, evicted_row = cache.popitem(last=False)
            self.cache_bytes -= self._cache_size(evicted, evicted_row)

    def _cache_clear(self) -> None:
        self.cache.clear()
        self.cache_bytes = 0

    # ---- RowStore reads ----

    def get(self, kind, key):
        name = (kind, key)
        for layer in self._layers():
            change = layer.changes.get(name)
            if change is not None:
                return None if change[0] is None else change
            if layer.reset:
                return None
        row = self.cache.get(name, _NOT_CACHED)
        if row is not _NOT_CACHED:
            self.cache.move_to_end(name)
            self.cache_hits += 1
            return row
        self.cache_misses += 1
        found = self.reader.execute(self._get_sql, (kind, encode_key(key))).fetchall()
        row = (found[0][0], found[0][1]) if found else None
        self._cache_put(name, row)
        return row

    def live_count(self, kind):
        return self.counts[kind]

    def scan(self, kind, after, limit):
        if limit <= 0:
            return []
        overlay = self._overlay()
        decided = {name[1]: change for name, change in overlay.items()
                   if name[0] == kind and (after is None or name[1] > after)}
        merged = [(key, change[0]) for key, change in decided.items() if change[0] is not None]
        if not self._base_hidden():
            # At most len(decided) rows from disk are overridden, so this many always leave
            # ``limit`` rows (or all there are) after the layers have had their say.
            fetch = limit + len(decided)
            if after is None:
                found = self.reader.execute(self._scan_first_sql, (kind, fetch)).fetchall()
            else:
                found = self.reader.execute(self._scan_sql, (kind, encode_key(after), fetch)
                                            ).fetchall()
            for blob, value in found:
                key = decode_key(blob)
                if key not in decided:
                    merged.append((key, value))
        merged.sort(key=lambda row: row[0])
        return merged[:limit]

    def rows_between(self, low, high):
        def inside(name) -> bool:
            return (low is None or name > low) and (high is None or name <= high)

        overlay = self._overlay()
        names = [name for name, change in overlay.items() if change[0] is not None and inside(name)]
        if not self._base_hidden():
            clauses, arguments = [], []
            if low is not None:
                clauses.append("(kind, key) > (?, ?)")
                arguments += [low[0], encode_key(low[1])]
            if high is not None:
                clauses.append("(kind, key) <= (?, ?)")
                arguments += [high[0], encode_key(high[1])]
            where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
            for kind, blob in self.reader.execute(
                    f"SELECT kind, key FROM kv_{self.pair}{where} ORDER BY kind, key", arguments):
                name = (kind, decode_key(blob))
                if name not in overlay:
                    names.append(name)
        names.sort()
        return names

    # ---- RowStore writes (memory only; the storage thread writes the disk) ----

    def put(self, kind, key, value, version):
        assert value is not None, "a put carries a value"
        if self.get(kind, key) is None:
            self.counts[kind] += 1
        self.pending.changes[(kind, key)] = (value, version)

    def delete(self, kind, key, version):
        assert version >= 0, f"a tombstone's version is a slot, not {version}"
        if self.get(kind, key) is not None:
            self.counts[kind] -= 1
        self.pending.changes[(kind, key)] = (None, version)

    def remove(self, kind, key):
        if self.get(kind, key) is not None:
            self.counts[kind] -= 1
        self.pending.changes[(kind, key)] = (None, REMOVED)

    def clear(self):
        """Drop every row and tombstone (MemoryRowStore.clear). Changes since the last
        take_changes are superseded; the layer hides the disk until it commits."""
        self.pending = Layer(reset=True)
        self.counts = {kind: 0 for kind in KINDS}
        self.digest = 0
        self.index = 0
        self.tombstone_horizon = 0
        self._cache_clear()

    def drop_tombstones_below(self, version):
        # Tombstones are read only through images, which read the disk; the SaveRows
        # that carries this horizon drops them there (storage.py).
        self.tombstone_horizon = max(self.tombstone_horizon, version)

    def take_changes(self):
        layer = self.pending
        changes = tuple((kind, key, value, version)
                        for (kind, key), (value, version) in layer.changes.items())
        if layer.changes or layer.reset:
            self.marks += 1
            layer.mark = self.marks
            self.taken.append(layer)
            self.pending = Layer()
        return changes

    # ---- the driver's side ----

    def mark(self) -> int:
        """The newest layer taken so far: the driver passes it to ``committed`` once the
        batches it is about to write are durable."""
        return self.marks

    def committed(self, mark: int) -> None:
        """Layers up to ``mark`` are on disk: fold them into the cache and let them go."""
        while self.taken and self.taken[0].mark <= mark:
            layer = self.taken.pop(0)
            if layer.reset:
                self._cache_clear()
            for name, (value, version) in layer.changes.items():
                self._cache_put(name, None if value is None else (value, version))

    def image(self) -> SqliteImage:
        assert self.images_open < self.images_max, f"more than {self.images_max} images open"
        image = SqliteImage(self.path, self.pair, self)
        self.images_open += 1
        return image

    def stats(self) -> dict[str, int]:
        return {"cached_rows": len(self.cache), "cache_bytes": self.cache_bytes,
                "cache_hits": self.cache_hits, "cache_misses": self.cache_misses,
                "overlay_rows": self.overlay_rows, "images_open": self.images_open}
