"""What a LowPaxos replica keeps across a crash, rebuilt from persist records.

The simulator keeps one ``DurableState`` per replica as its disk; the runtime
keeps the same records in SQLite (runtime/storage.py), with the KVS rows on disk
behind a bounded cache. A restarted core is built from either: it reads the
scalar fields and opens its stores with ``open_store()`` and ``open_staging()``.

``apply`` is the meaning of every record; the runtime's storage must agree with
it (tests/test_storage_crash.py folds random records through both).
"""

from __future__ import annotations

from dataclasses import dataclass, field

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


@dataclass
class DurableState:
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

    def apply(self, record) -> None:
        match record:
            case SavePromise(ballot=ballot):
                assert ballot >= self.promised, "a promise never goes back"
                self.promised = ballot
            case SaveEntries(entries=entries):
                for entry in entries:
                    if entry.slot > self.log_start:
                        self.entries[entry.slot] = entry
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
                    self.staging = MemoryRowStore()
                self.staging.apply_changes(rows)
                self.staging.digest = digest
                self.transfer = transfer
            case SaveInstall(index=index, digest=digest):
                assert self.staging.digest == digest, "only verified state is installed"
                assert index > self.store.index, "an install moves the state forward"
                self.store = self.staging
                self.store.index = index
                self.store.tombstone_horizon = index
                self.staging = MemoryRowStore()
                self.transfer = None
                self.commit_index = max(self.commit_index, index)
                self._cut(index)
            case _:
                raise TypeError(f"not a LowPaxos durable record: {record!r}")

    def _cut(self, log_start: int) -> None:
        if log_start > self.log_start:
            self.log_start = log_start
            for slot in [s for s in self.entries if s <= log_start]:
                del self.entries[slot]

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
