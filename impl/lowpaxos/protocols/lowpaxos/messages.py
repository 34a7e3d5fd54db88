"""LowPaxos messages and durable records: immutable values.

Ballots are ``Ballot(round, replica)`` and order as tuples, so ballots of
different replicas never tie (Paxos Made Simple §2.2, unique proposal numbers).
A slot holds a batch of commands; the empty batch is the no-op that fills a gap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from lowpaxos.core.api import Command


class Ballot(NamedTuple):
    round: int
    replica: int


# Lower than every real ballot (real ones have round >= 1).
BALLOT_ZERO = Ballot(0, -1)

Batch = tuple[Command, ...]


class Entry(NamedTuple):
    """An accepted value: ``batch`` accepted at ``slot`` in ``ballot``."""

    slot: int
    ballot: Ballot
    batch: Batch


# ---- Phase 1 (Paxos Made Simple §2.2; Multi-Paxos §3: one phase 1 for all open slots) ----


@dataclass(frozen=True, slots=True)
class Prepare:
    """Phase 1a: ``ballot`` asks for promises over every slot above ``commit_index``."""

    ballot: Ballot
    commit_index: int


@dataclass(frozen=True, slots=True)
class Promise:
    """Phase 1b: the sender promises ``ballot`` and reports its accepted entries
    above the candidate's commit index, and its own commit index."""

    ballot: Ballot
    entries: tuple[Entry, ...]
    commit_index: int


# ---- Phase 2 ----


@dataclass(frozen=True, slots=True)
class Accept:
    """Phase 2a for one slot. ``commit_index`` carries the leader's commit point,
    so steady state needs no commit messages; ``truncate_index`` is the slot up to
    which every replica has applied (a replica may drop log slots up to it)."""

    ballot: Ballot
    slot: int
    batch: Batch
    commit_index: int
    truncate_index: int


@dataclass(frozen=True, slots=True)
class Accepted:
    """Phase 2b: the sender accepted ``slot`` in ``ballot``. ``commit_index`` is how
    far the sender has committed and applied, for the leader's truncation point."""

    ballot: Ballot
    slot: int
    commit_index: int


@dataclass(frozen=True, slots=True)
class Reject:
    """The sender has promised ``ballot``, higher than the one in the message it refuses.
    ``lagging`` is set when it refused a Prepare because the candidate's commit index is
    below the sender's snapshot (the candidate must catch up first)."""

    ballot: Ballot
    commit_index: int
    lagging: bool = False


# ---- Liveness and commit point when idle ----


@dataclass(frozen=True, slots=True)
class Heartbeat:
    ballot: Ballot
    commit_index: int
    truncate_index: int


@dataclass(frozen=True, slots=True)
class HeartbeatReply:
    ballot: Ballot
    commit_index: int


# ---- Catch-up (bounded chunks) and snapshots ----


@dataclass(frozen=True, slots=True)
class CatchupRequest:
    """Ask the leader for committed slots from ``from_slot`` on."""

    ballot: Ballot
    from_slot: int


@dataclass(frozen=True, slots=True)
class CatchupReply:
    """Committed entries, contiguous from the requested slot, bounded in bytes."""

    ballot: Ballot
    entries: tuple[Entry, ...]
    commit_index: int


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The sender's KVS state after applying every slot up to ``index``."""

    ballot: Ballot
    index: int
    state: bytes


MESSAGE_TYPES = (
    Prepare,
    Promise,
    Accept,
    Accepted,
    Reject,
    Heartbeat,
    HeartbeatReply,
    CatchupRequest,
    CatchupReply,
    Snapshot,
)


# ---- Durable records: what a persist effect writes ----


@dataclass(frozen=True, slots=True)
class SavePromise:
    ballot: Ballot


@dataclass(frozen=True, slots=True)
class SaveEntries:
    entries: tuple[Entry, ...]


@dataclass(frozen=True, slots=True)
class SaveCommit:
    """A hint: every slot up to ``commit_index`` is chosen."""

    commit_index: int


@dataclass(frozen=True, slots=True)
class SaveSnapshot:
    """KVS state after slot ``index``; log entries up to ``log_start`` (<= ``index``) are
    dropped. Entries between ``log_start`` and ``index`` stay to serve slower replicas."""

    index: int
    state: bytes
    log_start: int


RECORD_TYPES = (SavePromise, SaveEntries, SaveCommit, SaveSnapshot)
