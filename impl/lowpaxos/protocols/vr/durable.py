"""What a VR replica keeps across a crash, folded from its persist records.

With ``disk = "sync"`` that is the view, status and last-normal view, the log, a
commit hint, the KVS rows and a row transfer in progress; with ``disk = "none"``
only that the replica has started (SaveStarted), so a restart recovers (§4.3).

``VRDurableFold.apply`` is the meaning of every record, written once, over
primitives that decide nothing (write these entries, drop the log above or
through an op, empty the staging rows, make them the store). ``VRDurableState``
supplies them in memory (the simulator's disk); the runtime's SQLite storage
(runtime/storage.py) supplies them in SQL from the same fold, which the registry
names, and keeps the scalars below as meta rows with the encodings given here.
tests/test_storage_crash.py checks that both read back the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lowpaxos.kvs import MemoryRowStore
from lowpaxos.protocols.vr.messages import (
    Entry,
    SaveCommit,
    SaveEntries,
    SaveInstall,
    SaveRows,
    SaveStaged,
    SaveStarted,
    SaveTruncate,
    SaveView,
    Transfer,
)


STATUSES = ("normal", "view-change", "recovering")


class VRDurableFold:
    """The meaning of every VR durable record (``apply``), over primitives.

    A subclass has the fields named in ``SCALARS`` and ``store`` and ``staging``: row
    sets with ``index``, ``digest`` and ``tombstone_horizon`` and the methods
    ``apply_changes(rows)`` and ``drop_tombstones_below(version)``. It supplies the
    primitives below, which carry out a decision made here and make none of their own.
    """

    # What the runtime's storage keeps for this fold (runtime/storage.py): one meta row
    # per scalar field; log entries keyed by op with no column beside the batch; the
    # commit hint whose ops the stored log must hold.
    SCALARS = ("started", "view", "last_normal_view", "status", "commit", "log_start",
               "transfer")
    ENTRY_COLUMNS: tuple[str, ...] = ()
    COMMIT_FIELD = "commit"

    started: bool
    view: int
    last_normal_view: int
    status: str
    commit: int
    log_start: int
    transfer: Transfer | None

    def put_entries(self, entries: list[Entry]) -> None:
        """Hold each of ``entries`` at its op, replacing what the op held."""
        raise NotImplementedError

    def drop_entries_above(self, op: int) -> None:
        """Forget every log entry above ``op``."""
        raise NotImplementedError

    def drop_entries_through(self, op: int) -> None:
        """Forget every log entry at or below ``op``."""
        raise NotImplementedError

    def empty_staging(self) -> None:
        """The staging rows become an empty row set."""
        raise NotImplementedError

    def install_staging(self) -> None:
        """The staging rows become the store; the old store, emptied, the staging."""
        raise NotImplementedError

    def apply(self, record) -> None:
        match record:
            case SaveStarted():
                self.started = True
            case SaveView(view=view, last_normal_view=last_normal_view, status=status):
                assert view >= self.view, "the view never goes back"
                assert last_normal_view <= view, "the last normal view is not ahead"
                self.view, self.last_normal_view, self.status = view, last_normal_view, status
            case SaveEntries(drop_above=drop_above, entries=entries):
                # A new log (StartView, NewState, RecoveryResponse) replaces the old
                # suffix; an append drops nothing. Entries below the cut are covered
                # by the stored rows and ignored.
                if drop_above is not None:
                    self.drop_entries_above(drop_above)
                self.put_entries([entry for entry in entries if entry.op > self.log_start])
            case SaveCommit(commit=commit):
                self.commit = max(self.commit, commit)
            case SaveRows(index=index, digest=digest, tombstone_horizon=horizon, rows=rows):
                assert index >= self.store.index, "the stored rows only move forward"
                self.store.apply_changes(rows)
                self.store.index = index
                self.store.digest = digest
                self.store.drop_tombstones_below(horizon)
                self.commit = max(self.commit, index)
            case SaveTruncate(log_start=log_start):
                assert log_start <= self.store.index, "the log is cut only below the stored rows"
                self._cut(log_start)
            case SaveStaged(transfer=transfer, reset=reset, digest=digest, rows=rows):
                if reset:
                    self.empty_staging()
                self.staging.apply_changes(rows)
                self.staging.digest = digest
                self.transfer = transfer
            case SaveInstall(index=index, digest=digest):
                assert self.staging.digest == digest, "only verified state is installed"
                assert index > self.store.index, "an install moves the state forward"
                self.install_staging()
                self.store.index = index
                self.store.tombstone_horizon = index
                self.transfer = None
                self.commit = max(self.commit, index)
                self._cut(index)
            case _:
                raise TypeError(f"not a VR durable record: {record!r}")

    def _cut(self, log_start: int) -> None:
        if log_start > self.log_start:
            self.log_start = log_start
            self.drop_entries_through(log_start)

    # Encodings for the runtime's storage (msgpack values; no meaning decided here).

    @staticmethod
    def scalar_to_stored(name: str, value: Any) -> Any:
        if name == "transfer" and value is not None:
            return [value.source, value.image_index, value.digest.to_bytes(16, "big"),
                    _lists(value.cursor)]
        return value

    @staticmethod
    def scalar_from_stored(name: str, value: Any) -> Any:
        """The field from its stored value; ValueError or TypeError for a wrong shape."""
        if name == "transfer":
            if value is None:
                return None
            source, image_index, digest, cursor = value
            if not isinstance(digest, bytes) or len(digest) != 16:
                raise ValueError("transfer digest is not 16 bytes")
            return Transfer(int(source), int(image_index), int.from_bytes(digest, "big"),
                            _tuples(cursor))
        if name == "started":
            if not isinstance(value, bool):
                raise TypeError("started is not a boolean")
            return value
        if name == "status":
            if value not in STATUSES:
                raise ValueError(f"status {value!r}")
            return value
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} is not an integer")
        return value

    @staticmethod
    def entry_to_stored(entry: Entry) -> tuple[int, tuple[int, ...], Any]:
        """(op, the ENTRY_COLUMNS values, the batch)."""
        return entry.op, (), entry.batch

    @staticmethod
    def entry_from_stored(op: int, columns: tuple[int, ...], batch: Any) -> Entry:
        return Entry(op, batch)


def _lists(value):
    return [_lists(item) for item in value] if isinstance(value, tuple) else value


def _tuples(value):
    return tuple(_tuples(item) for item in value) if isinstance(value, list) else value


@dataclass
class VRDurableState(VRDurableFold):
    started: bool = False
    view: int = 0
    last_normal_view: int = 0
    status: str = "normal"
    entries: dict[int, Entry] = field(default_factory=dict)
    commit: int = 0
    log_start: int = 0
    store: MemoryRowStore = field(default_factory=MemoryRowStore)
    staging: MemoryRowStore = field(default_factory=MemoryRowStore)
    transfer: Transfer | None = None

    # The primitives of VRDurableFold, in memory.

    def put_entries(self, entries: list[Entry]) -> None:
        for entry in entries:
            self.entries[entry.op] = entry

    def drop_entries_above(self, op: int) -> None:
        for held in [held for held in self.entries if held > op]:
            del self.entries[held]

    def drop_entries_through(self, op: int) -> None:
        for held in [held for held in self.entries if held <= op]:
            del self.entries[held]

    def empty_staging(self) -> None:
        self.staging = MemoryRowStore()

    def install_staging(self) -> None:
        self.store, self.staging = self.staging, MemoryRowStore()

    @property
    def store_index(self) -> int:
        return self.store.index

    def open_store(self) -> MemoryRowStore:
        return self.store.copy()

    def open_staging(self) -> MemoryRowStore:
        return self.staging.copy()

    def copy(self) -> "VRDurableState":
        return VRDurableState(self.started, self.view, self.last_normal_view, self.status,
                              dict(self.entries), self.commit, self.log_start,
                              self.store.copy(), self.staging.copy(), self.transfer)
