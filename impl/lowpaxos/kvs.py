"""The replicated state machine: a key-value store with client sessions, on a row store.

It knows nothing of consensus. Every replica applies the same commands in the
same order and so reaches the same state. The client table (VR Revisited §4:
the latest request number of each client and its result) makes a retried
request execute at most once: a command whose request number is not newer
than the client's latest is not executed again.

Theory of operation
-------------------
The state is a set of rows ``(kind, key) -> (value, version)``: kind DATA holds
the user's keys, kind SESSION the client table (key = the client id in
decimal, value = msgpack ``[request_id, result]``). ``version`` is the log slot
that last wrote the row, the same on every replica. A deleted DATA key leaves
a tombstone ``(kind, key) -> version`` for ``tombstone_slots`` slots, so that a
state transfer interrupted at one point-in-time image can resume from a newer
image by fetching only the rows that changed since (see ``read_chunk``).

``KeyValueStore`` runs the operations and keeps ``digest``: the sum modulo
2**128 of a hash of every live row (an incremental multiset hash, Bellare and
Micciancio's AdHash), so each write updates it in O(1) and two replicas with the
same rows have the same digest whatever order they wrote them in.

Where the rows live is the ``RowStore``'s business. ``MemoryRowStore`` keeps
them in dicts (the simulator, tests); the runtime keeps them in its SQLite
database with a bounded cache (runtime/rowstore.py). Both record every change
since the last ``take_changes()``, which the core persists with its log records,
and both give a point-in-time ``image()`` that a state transfer reads in chunks.
"""

from __future__ import annotations

import bisect
import fnmatch
import hashlib
import re
from typing import Iterable, Protocol

import msgpack

from lowpaxos.core.api import OPS, Command

Result = bytes | bool | int | list | None

DATA = 0
SESSION = 1
KINDS = (DATA, SESSION)
DIGEST_MODULUS = 1 << 128
# A change row: (kind, key, value, version). value None with version >= 0 is a tombstone
# (a delete at that slot); version REMOVED drops the row and any tombstone outright.
REMOVED = -1
# A cursor names a position in the transfer stream: (phase, kind, key); the rows at or
# before it are done (key None: before every key of that kind). Phase 0 walks
# tombstones (resumed transfers only), phase 1 rows. Order is (kind, key) throughout.
Cursor = tuple[int, int, "str | None"]

MSET_PAIRS_MAX = 1024
MGET_KEYS_MAX = 1024
SCAN_COUNT_MAX = 1000


def row_hash(kind: int, key: str, value: bytes, version: int) -> int:
    data = msgpack.packb([kind, key, value, version], use_bin_type=True)
    return int.from_bytes(hashlib.blake2b(data, digest_size=16).digest(), "big")


class StateImage(Protocol):
    """A point-in-time, read-only view of a store's rows at ``index``."""

    index: int
    digest: int
    tombstone_horizon: int  # tombstones of deletes at or after this slot are all here

    def rows_after(self, kind: int, key: str | None, limit: int) -> list[tuple[int, str, bytes, int]]:
        """Live rows in (kind, key) order strictly after (kind, key) (None: from the start)."""
        ...

    def tombstones_after(self, kind: int, key: str | None, limit: int) -> list[tuple[int, str, int]]:
        """Tombstones in (kind, key) order strictly after (kind, key)."""
        ...

    def close(self) -> None: ...


class RowStore(Protocol):
    index: int
    digest: int
    tombstone_horizon: int

    def get(self, kind: int, key: str) -> tuple[bytes, int] | None: ...

    def put(self, kind: int, key: str, value: bytes, version: int) -> None: ...

    def delete(self, kind: int, key: str, version: int) -> None:
        """Remove a live row, leaving a tombstone at ``version``."""
        ...

    def remove(self, kind: int, key: str) -> None:
        """Remove a row and its tombstone without a trace (staging only)."""
        ...

    def clear(self) -> None:
        """Drop every row and tombstone (staging starting over; see MemoryRowStore.clear)."""
        ...

    def live_count(self, kind: int) -> int: ...

    def scan(self, kind: int, after: str | None, limit: int) -> list[tuple[str, bytes]]: ...

    def rows_between(self, low: tuple[int, str] | None, high: tuple[int, str] | None
                     ) -> list[tuple[int, str]]:
        """Live row names with low < (kind, key) <= high (None: unbounded)."""
        ...

    def drop_tombstones_below(self, version: int) -> None: ...

    def take_changes(self) -> tuple[tuple[int, str, bytes | None, int], ...]: ...

    def image(self) -> StateImage: ...


# ---------------------------------------------------------------- memory store


class MemoryImage:
    def __init__(self, rows: list, tombstones: list, index: int, digest: int,
                 tombstone_horizon: int) -> None:
        self.rows = rows  # sorted [(kind, key, value, version)]
        self.row_names = [(kind, key) for kind, key, _, _ in rows]
        self.tombstones = tombstones  # sorted [(kind, key, version)]
        self.tombstone_names = [(kind, key) for kind, key, _ in tombstones]
        self.index = index
        self.digest = digest
        self.tombstone_horizon = tombstone_horizon

    @staticmethod
    def _start(names: list, kind: int, key: str | None) -> int:
        if key is None:
            return bisect.bisect_left(names, (kind, ""))
        return bisect.bisect_right(names, (kind, key))

    def rows_after(self, kind, key, limit):
        start = self._start(self.row_names, kind, key)
        return self.rows[start:start + limit]

    def tombstones_after(self, kind, key, limit):
        start = self._start(self.tombstone_names, kind, key)
        return self.tombstones[start:start + limit]

    def close(self) -> None:
        pass


class MemoryRowStore:
    """Rows in dicts. The simulator's disk is one of these (in DurableState) and each
    simulated core works on a copy."""

    def __init__(self, rows: dict | None = None, tombstones: dict | None = None,
                 index: int = 0, digest: int = 0, tombstone_horizon: int = 0) -> None:
        self.rows: dict[tuple[int, str], tuple[bytes, int]] = dict(rows or {})
        self.tombstones: dict[tuple[int, str], int] = dict(tombstones or {})
        self.index = index
        self.digest = digest
        self.tombstone_horizon = tombstone_horizon
        self.counts = {kind: 0 for kind in KINDS}
        for kind, _ in self.rows:
            self.counts[kind] += 1
        self.changes: dict[tuple[int, str], tuple[bytes | None, int]] = {}

    def copy(self) -> "MemoryRowStore":
        return MemoryRowStore(self.rows, self.tombstones, self.index, self.digest,
                              self.tombstone_horizon)

    def get(self, kind, key):
        return self.rows.get((kind, key))

    def put(self, kind, key, value, version):
        name = (kind, key)
        if name not in self.rows:
            self.counts[kind] += 1
        self.rows[name] = (value, version)
        self.tombstones.pop(name, None)
        self.changes[name] = (value, version)

    def delete(self, kind, key, version):
        name = (kind, key)
        if self.rows.pop(name, None) is not None:
            self.counts[kind] -= 1
        self.tombstones[name] = version
        self.changes[name] = (None, version)

    def remove(self, kind, key):
        name = (kind, key)
        if self.rows.pop(name, None) is not None:
            self.counts[kind] -= 1
        self.tombstones.pop(name, None)
        self.changes[name] = (None, REMOVED)

    def live_count(self, kind):
        return self.counts[kind]

    def clear(self):
        """Drop every row and tombstone (a staging area starting over). The persist
        record that says so is SaveStaged(reset=True) or SaveInstall, not a change row."""
        self.rows = {}
        self.tombstones = {}
        self.counts = {kind: 0 for kind in KINDS}
        self.changes = {}
        self.digest = 0
        self.index = 0
        self.tombstone_horizon = 0

    def scan(self, kind, after, limit):
        keys = sorted(key for k, key in self.rows if k == kind and (after is None or key > after))
        return [(key, self.rows[(kind, key)][0]) for key in keys[:limit]]

    def rows_between(self, low, high):
        return sorted(name for name in self.rows
                      if (low is None or name > low) and (high is None or name <= high))

    def drop_tombstones_below(self, version):
        self.tombstone_horizon = max(self.tombstone_horizon, version)
        for name in [n for n, v in self.tombstones.items() if v < version]:
            del self.tombstones[name]

    def take_changes(self):
        changes = tuple((kind, key, value, version)
                        for (kind, key), (value, version) in self.changes.items())
        self.changes = {}
        return changes

    def apply_changes(self, changes: Iterable[tuple[int, str, bytes | None, int]]) -> None:
        """Fold change rows in (what a disk does with a persisted record)."""
        for kind, key, value, version in changes:
            if value is not None:
                self.put(kind, key, value, version)
            elif version == REMOVED:
                self.remove(kind, key)
            else:
                self.delete(kind, key, version)
        self.changes = {}

    def image(self) -> MemoryImage:
        rows = sorted((kind, key, value, version)
                      for (kind, key), (value, version) in self.rows.items())
        tombstones = sorted((kind, key, version) for (kind, key), version in self.tombstones.items())
        return MemoryImage(rows, tombstones, self.index, self.digest, self.tombstone_horizon)


# ----------------------------------------------------------- the state machine


def session_key(client_id: int) -> str:
    return str(client_id)


def write_row(rows: RowStore, kind: int, key: str, value: bytes | None, version: int,
              tombstone: bool = True) -> None:
    """Put or delete one row, keeping ``rows.digest`` the sum of the live rows' hashes.
    A delete leaves a tombstone unless ``tombstone`` is False (staging rows)."""
    old = rows.get(kind, key)
    digest = rows.digest
    if old is not None:
        digest -= row_hash(kind, key, old[0], old[1])
    if value is not None:
        digest += row_hash(kind, key, value, version)
        rows.digest = digest % DIGEST_MODULUS
        rows.put(kind, key, value, version)
    elif old is not None:
        rows.digest = digest % DIGEST_MODULUS
        if tombstone:
            rows.delete(kind, key, version)
        else:
            rows.remove(kind, key)


class KeyValueStore:
    """The KVS operations over a RowStore, with the client table and the digest."""

    __slots__ = ("rows", "executed")

    def __init__(self, rows: RowStore | None = None) -> None:
        self.rows = rows if rows is not None else MemoryRowStore()
        self.executed = 0  # commands executed by this incarnation (not replicated state)

    # ---- rows with the digest kept up to date ----

    def _write(self, kind: int, key: str, value: bytes | None, version: int) -> None:
        write_row(self.rows, kind, key, value, version)

    def get_value(self, key: str) -> bytes | None:
        row = self.rows.get(DATA, key)
        return None if row is None else row[0]

    def _session(self, client_id: int) -> tuple[int, Result] | None:
        row = self.rows.get(SESSION, session_key(client_id))
        if row is None:
            return None
        request_id, result = msgpack.unpackb(row[0], raw=False)
        return request_id, result

    # ---- the client table ----

    def session_result(self, client_id: int, request_id: int) -> tuple[bool, Result]:
        """(True, result) when this exact request already executed; (False, None) otherwise."""
        latest = self._session(client_id)
        if latest is not None and latest[0] == request_id:
            return True, latest[1]
        return False, None

    def is_stale(self, client_id: int, request_id: int) -> bool:
        """True when the client has already moved past this request id."""
        latest = self._session(client_id)
        return latest is not None and request_id < latest[0]

    def apply(self, command: Command, index: int = 0) -> Result:
        """Execute ``command`` (committed at slot ``index``) unless its session shows it
        already ran; return its result."""
        latest = self._session(command.client_id)
        if latest is not None and command.request_id <= latest[0]:
            # A duplicate of an executed request: report the recorded result if it is the
            # latest one, and execute nothing (at-most-once).
            return latest[1] if command.request_id == latest[0] else None
        result = self.execute(command, index)
        self._write(SESSION, session_key(command.client_id),
                    msgpack.packb([command.request_id, result], use_bin_type=True), index)
        self.executed += 1
        self.rows.index = max(self.rows.index, index)
        return result

    def execute(self, command: Command, index: int = 0) -> Result:
        op = command.op
        key = command.key
        if op == "get":
            return self.get_value(key)
        if op == "put":
            assert command.value is not None, "put carries a value"
            self._write(DATA, key, command.value, index)
            return None
        if op == "delete":
            existed = self.get_value(key) is not None
            self._write(DATA, key, None, index)
            return existed
        if op == "cas":
            if self.get_value(key) != command.expected:
                return False
            self._write(DATA, key, command.value, index)
            return True
        if op == "getdel":
            value = self.get_value(key)
            self._write(DATA, key, None, index)
            return value
        if op == "append":
            assert command.value is not None, "append carries a value"
            value = (self.get_value(key) or b"") + command.value
            self._write(DATA, key, value, index)
            return len(value)
        if op == "strlen":
            return len(self.get_value(key) or b"")
        if op == "mset":
            # Redis MSET: every pair in one command, so all or none are visible.
            for pair_key, pair_value in command.pairs:
                self._write(DATA, pair_key, pair_value, index)
            return None
        if op == "mget":
            return [self.get_value(k) for k in command.keys]
        if op == "dbsize":
            return self.rows.live_count(DATA)
        if op == "scan":
            return self._scan(command)
        raise ValueError(f"unknown operation {op!r}; expected one of {OPS}")

    def _scan(self, command: Command) -> list:
        """SCAN: [key to continue after (bytes), or None when done, [keys]]. ``keys`` holds
        at most one key, the one to continue after; ``count`` rows are examined and
        those matching ``value`` (a glob, or None) returned."""
        after = command.keys[0] if command.keys else None
        count = max(1, min(command.count or 10, SCAN_COUNT_MAX))
        rows = self.rows.scan(DATA, after, count)
        pattern = None if command.value is None else glob_regex(command.value)
        keys = [key for key, _ in rows
                if pattern is None or pattern.fullmatch(key.encode("latin-1", "replace"))]
        next_after = rows[-1][0].encode("latin-1", "replace") if len(rows) == count else None
        return [next_after, [key.encode("latin-1", "replace") for key in keys]]

    def digest(self) -> str:
        return f"{self.rows.digest:032x}"[:16]


def glob_regex(pattern: bytes) -> "re.Pattern[bytes]":
    """Redis' MATCH glob (*, ?, [...], backslash escapes) as a bytes regex."""
    text = pattern.decode("latin-1")
    return re.compile(fnmatch.translate(text).encode("latin-1"), re.DOTALL)


# ------------------------------------------------------------- state transfer


def read_chunk(image: StateImage, cursor: Cursor | None, base: int,
               split: tuple[int, str] | None, bytes_max: int, scan_max: int
               ) -> tuple[tuple[tuple[int, str, bytes | None, int], ...], Cursor | None]:
    """One chunk of the transfer stream of ``image``: (rows, next cursor or None at the end).

    A full stream (``split`` None) is every live row in (kind, key) order. A resumed
    stream serves a receiver that already holds the rows below ``split`` as they were
    at slot ``base``: phase 0 sends the tombstones below ``split`` newer than ``base``,
    phase 1 the rows below ``split`` newer than ``base`` and every row from ``split``
    on. A chunk holds rows of at most about ``bytes_max`` bytes (at least one row) and
    examines at most ``scan_max`` rows, so a sparse delta still returns promptly."""
    phase, kind, key = cursor if cursor is not None else ((0 if split is not None else 1), DATA, None)
    out: list = []
    size = 0
    examined = 0
    while examined < scan_max:
        if phase == 0:
            batch = image.tombstones_after(kind, key, min(64, scan_max - examined))
            if not batch:
                phase, kind, key = 1, DATA, None
                continue
            for t_kind, t_key, version in batch:
                examined += 1
                kind, key = t_kind, t_key
                if (t_kind, t_key) < split and version > base:
                    out.append((t_kind, t_key, None, version))
                    size += 16 + len(t_key)
                if size >= bytes_max:
                    return tuple(out), (0, kind, key)
            continue
        batch = image.rows_after(kind, key, min(64, scan_max - examined))
        if not batch:
            return tuple(out), None
        for r_kind, r_key, value, version in batch:
            row_size = 16 + len(r_key) + len(value)
            if out and size + row_size > bytes_max:
                return tuple(out), (1, kind, key)
            examined += 1
            kind, key = r_kind, r_key
            if split is None or (r_kind, r_key) >= split or version > base:
                out.append((r_kind, r_key, value, version))
                size += row_size
        if size >= bytes_max:
            return tuple(out), (1, kind, key)
    return tuple(out), (phase, kind, key)


def valid_command(command: object) -> str | None:
    """Why ``command`` is not a well-formed KVS command, or None when it is."""
    if not isinstance(command, Command):
        return "not_a_command"
    if not isinstance(command.client_id, int) or not isinstance(command.request_id, int):
        return "bad_session"
    if command.client_id < 0 or command.request_id < 0:
        return "bad_session"
    if command.op not in OPS:
        return "unknown_op"
    if not isinstance(command.key, str):
        return "bad_key"
    if command.op in ("put", "append") and not isinstance(command.value, bytes):
        return "bad_value"
    if command.op == "cas":
        if command.value is not None and not isinstance(command.value, bytes):
            return "bad_value"
        if command.expected is not None and not isinstance(command.expected, bytes):
            return "bad_value"
    if not isinstance(command.pairs, tuple) or not isinstance(command.keys, tuple):
        return "bad_arguments"
    if command.op == "mset":
        if not 1 <= len(command.pairs) <= MSET_PAIRS_MAX:
            return "bad_arguments"
        for pair in command.pairs:
            if not (isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[0], str)
                    and isinstance(pair[1], bytes)):
                return "bad_arguments"
    elif command.pairs:
        return "bad_arguments"
    if command.op == "mget":
        if not 1 <= len(command.keys) <= MGET_KEYS_MAX:
            return "bad_arguments"
    elif command.op == "scan":
        if len(command.keys) > 1:
            return "bad_arguments"
    elif command.keys:
        return "bad_arguments"
    if not all(isinstance(key, str) for key in command.keys):
        return "bad_key"
    if not isinstance(command.count, int) or not 0 <= command.count <= SCAN_COUNT_MAX:
        return "bad_arguments"
    if command.op == "scan" and command.value is not None and not isinstance(command.value, bytes):
        return "bad_value"
    return None


__all__ = [
    "DATA", "SESSION", "REMOVED", "KeyValueStore", "MemoryRowStore", "MemoryImage", "RowStore",
    "StateImage", "read_chunk", "row_hash", "valid_command", "glob_regex",
]
