"""What a VR replica keeps across a crash, folded from its persist records.

With ``disk = "sync"`` that is the view, status and last-normal view, the log, a
commit hint, the KVS rows and a row transfer in progress; with ``disk = "none"``
only that the replica has started (SaveStarted), so a restart recovers (§4.3).
"""

from __future__ import annotations

from dataclasses import dataclass, field

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


@dataclass
class VRDurableState:
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

    def apply(self, record) -> None:
        match record:
            case SaveStarted():
                self.started = True
            case SaveView(view=view, last_normal_view=last_normal_view, status=status):
                assert view >= self.view, "the view never goes back"
                assert last_normal_view <= view, "the last normal view is not ahead"
                self.view, self.last_normal_view, self.status = view, last_normal_view, status
            case SaveEntries(drop_above=drop_above, entries=entries):
                if drop_above is not None:
                    for op in [op for op in self.entries if op > drop_above]:
                        del self.entries[op]
                for entry in entries:
                    if entry.op > self.log_start:
                        self.entries[entry.op] = entry
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
                    self.staging = MemoryRowStore()
                self.staging.apply_changes(rows)
                self.staging.digest = digest
                self.transfer = transfer
            case SaveInstall(index=index, digest=digest):
                assert self.staging.digest == digest, "only verified state is installed"
                assert index > self.store.index, "an install moves the state forward"
                self.store, self.staging = self.staging, MemoryRowStore()
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
            for op in [op for op in self.entries if op <= log_start]:
                del self.entries[op]

    def open_store(self) -> MemoryRowStore:
        return self.store.copy()

    def open_staging(self) -> MemoryRowStore:
        return self.staging.copy()

    def copy(self) -> "VRDurableState":
        return VRDurableState(self.started, self.view, self.last_normal_view, self.status,
                              dict(self.entries), self.commit, self.log_start,
                              self.store.copy(), self.staging.copy(), self.transfer)
