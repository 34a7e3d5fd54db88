"""What a LowPaxos replica keeps across a crash, rebuilt from persist records.

The simulator keeps one ``DurableState`` per replica as its disk; the runtime
keeps the same records in SQLite. A restarted core is built from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lowpaxos.protocols.lowpaxos.messages import (
    BALLOT_ZERO,
    Ballot,
    Entry,
    SaveCommit,
    SaveEntries,
    SavePromise,
    SaveSnapshot,
)


@dataclass
class DurableState:
    promised: Ballot = BALLOT_ZERO
    entries: dict[int, Entry] = field(default_factory=dict)
    commit_index: int = 0
    snapshot_index: int = 0
    snapshot_state: bytes | None = None
    log_start: int = 0  # entries at or below this slot were dropped (covered by the snapshot)

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
            case SaveSnapshot(index=index, state=state, log_start=log_start):
                assert log_start <= index, "the log is only dropped below the snapshot"
                if index >= self.snapshot_index:
                    self.snapshot_index = index
                    self.snapshot_state = state
                    self.commit_index = max(self.commit_index, index)
                if log_start > self.log_start:
                    self.log_start = log_start
                    for slot in [s for s in self.entries if s <= log_start]:
                        del self.entries[slot]
            case _:
                raise TypeError(f"not a LowPaxos durable record: {record!r}")

    def copy(self) -> "DurableState":
        return DurableState(
            promised=self.promised,
            entries=dict(self.entries),
            commit_index=self.commit_index,
            snapshot_index=self.snapshot_index,
            snapshot_state=self.snapshot_state,
            log_start=self.log_start,
        )
