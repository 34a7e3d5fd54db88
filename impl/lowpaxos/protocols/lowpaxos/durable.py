"""What a LowPaxos replica keeps across a crash, rebuilt from persist records.

The simulator keeps one ``DurableState`` per replica as its disk; the runtime
keeps the same records in SQLite (runtime/storage.py), with the KVS rows on disk
behind a bounded cache. A restarted core is built from either: it reads the
scalar fields and opens its stores with ``open_store()`` and ``open_staging()``.

``DurableFold.apply`` is the meaning of every record, written once. Both places
that fold records inherit it and supply only primitives that decide nothing
(write these log entries, delete the log through a slot, empty the staging rows,
make the staging rows the store): ``DurableState`` below in memory, and the
runtime's storage (``storage.mirror_class(DurableFold)``, the registry names the
fold) in SQL. tests/test_storage_crash.py checks that
what SQLite reads back after a restart equals the in-memory fold of the same
records, so the SQL primitives are checked against the memory ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lowpaxos.kvs import MemoryRowStore
from lowpaxos.protocols.lowpaxos.messages import (
    BALLOT_ZERO,
    Ballot,
    Entry,
    SaveCommit,
    SaveEntries,
    SaveInstall,
    SavePromise,
    SaveRows,
    SaveStaged,
    SaveTruncate,
    Transfer,
)


class DurableFold:
    """The meaning of every LowPaxos durable record (``apply``), over primitives.

    A subclass has the fields ``promised``, ``commit_index``, ``log_start`` and
    ``transfer``, and ``store`` and ``staging``: row sets with ``index``, ``digest``
    and ``tombstone_horizon`` and the methods ``apply_changes(rows)`` and
    ``drop_tombstones_below(version)`` (a MemoryRowStore, or the SQL tables of one
    row pair). It supplies the primitives below, which carry out a decision made
    here and make none of their own.
    """

    # What the runtime's storage keeps for this fold (runtime/storage.py): one meta row
    # per scalar field; log entries keyed by slot with the ballot's two integers beside
    # the batch; the commit point whose slots the stored log must hold.
    SCALARS = ("promised", "commit_index", "log_start", "transfer")
    ENTRY_COLUMNS = ("ballot_round", "ballot_replica")
    COMMIT_FIELD = "commit_index"

    promised: Ballot
    commit_index: int
    log_start: int
    transfer: Transfer | None

    def put_entries(self, entries: list[Entry]) -> None:
        """Hold each of ``entries`` in its slot, replacing what the slot held."""
        raise NotImplementedError

    def drop_entries_through(self, slot: int) -> None:
        """Forget every log entry at or below ``slot``."""
        raise NotImplementedError

    def empty_staging(self) -> None:
        """The staging rows become an empty row set."""
        raise NotImplementedError

    def install_staging(self) -> None:
        """The staging rows become the store; the old store, emptied, the staging."""
        raise NotImplementedError

    def apply(self, record) -> None:
        match record:
            case SavePromise(ballot=ballot):
                assert ballot >= self.promised, "a promise never goes back"
                self.promised = ballot
            case SaveEntries(entries=entries):
                # A slot written again (a re-accept under a higher ballot, or a
                # committed value from catch-up) holds the newest record's entry.
                self.put_entries([entry for entry in entries if entry.slot > self.log_start])
            case SaveCommit(commit_index=commit_index):
                self.commit_index = max(self.commit_index, commit_index)
            case SaveRows(index=index, digest=digest, tombstone_horizon=horizon, rows=rows):
                assert index >= self.store.index, "the stored rows only move forward"
                self.store.apply_changes(rows)
                self.store.index = index
                self.store.digest = digest
                self.store.drop_tombstones_below(horizon)
                self.commit_index = max(self.commit_index, index)
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
                self.commit_index = max(self.commit_index, index)
                self._cut(index)
            case _:
                raise TypeError(f"not a LowPaxos durable record: {record!r}")

    def _cut(self, log_start: int) -> None:
        if log_start > self.log_start:
            self.log_start = log_start
            self.drop_entries_through(log_start)

    # Encodings for the runtime's storage (msgpack values; no meaning decided here).

    @staticmethod
    def scalar_to_stored(name: str, value: Any) -> Any:
        if name == "promised":
            return list(value)
        if name == "transfer" and value is not None:
            return [value.source, value.image_index, value.digest.to_bytes(16, "big"),
                    value.base, _lists(value.split), _lists(value.cursor)]
        return value

    @staticmethod
    def scalar_from_stored(name: str, value: Any) -> Any:
        """The field from its stored value; ValueError or TypeError for a wrong shape."""
        if name == "promised":
            return Ballot(*value)
        if name == "transfer":
            return decode_transfer(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} is not an integer")
        return value

    @staticmethod
    def entry_to_stored(entry: Entry) -> tuple[int, tuple[int, ...], Any]:
        """(slot, the ENTRY_COLUMNS values, the batch)."""
        return entry.slot, (entry.ballot.round, entry.ballot.replica), entry.batch

    @staticmethod
    def entry_from_stored(slot: int, columns: tuple[int, ...], batch: Any) -> Entry:
        return Entry(slot, Ballot(*columns), batch)


def decode_transfer(value) -> Transfer | None:
    """A stored transfer (DurableFold.scalar_to_stored's form) back as a Transfer."""
    if value is None:
        return None
    source, image_index, digest, base, split, cursor = value
    if not isinstance(digest, bytes) or len(digest) != 16:
        raise ValueError("transfer digest is not 16 bytes")
    return Transfer(source, image_index, int.from_bytes(digest, "big"), base, _tuples(split),
                    _tuples(cursor))


def _lists(value):
    return [_lists(item) for item in value] if isinstance(value, tuple) else value


def _tuples(value):
    return tuple(_tuples(item) for item in value) if isinstance(value, list) else value


@dataclass
class DurableState(DurableFold):
    promised: Ballot = BALLOT_ZERO
    entries: dict[int, Entry] = field(default_factory=dict)
    commit_index: int = 0
    log_start: int = 0  # entries at or below this slot were dropped (the rows cover them)
    # The KVS rows as of slot store.index, and the rows of a state transfer in progress.
    store: MemoryRowStore = field(default_factory=MemoryRowStore)
    staging: MemoryRowStore = field(default_factory=MemoryRowStore)
    transfer: Transfer | None = None

    @property
    def store_index(self) -> int:
        return self.store.index

    def open_store(self) -> MemoryRowStore:
        return self.store.copy()

    def open_staging(self) -> MemoryRowStore:
        return self.staging.copy()

    # The primitives of DurableFold, in memory.

    def put_entries(self, entries: list[Entry]) -> None:
        for entry in entries:
            self.entries[entry.slot] = entry

    def drop_entries_through(self, slot: int) -> None:
        for held in [s for s in self.entries if s <= slot]:
            del self.entries[held]

    def empty_staging(self) -> None:
        self.staging = MemoryRowStore()

    def install_staging(self) -> None:
        self.store = self.staging
        self.staging = MemoryRowStore()

    def copy(self) -> "DurableState":
        return DurableState(
            promised=self.promised,
            entries=dict(self.entries),
            commit_index=self.commit_index,
            log_start=self.log_start,
            store=self.store.copy(),
            staging=self.staging.copy(),
            transfer=self.transfer,
        )
