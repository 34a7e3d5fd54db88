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


# ---- State transfer in chunks (for a replica behind the log cut) ----
#
# The receiver pulls the sender's point-in-time image of the KVS rows in chunks, in
# (kind, key) order, ``credits`` chunks per request (a window); it asks again from
# its cursor for whatever did not arrive, so only lost chunks are sent again.
# Raft §7 (InstallSnapshot) sends a snapshot in chunks too; resuming from another
# (newer) image with only the rows changed since is ours (kvs.read_chunk).

Row = tuple  # (kind, key, value or None, version): see kvs.py


@dataclass(frozen=True, slots=True)
class SnapshotRequest:
    """Send up to ``credits`` chunks of image ``image_index`` (0: your current image)
    from ``cursor`` on (None: the start). ``base``/``split``: the receiver holds the
    rows below ``split`` as of slot ``base`` (split None: it holds nothing), so a
    sender without that image may serve a newer one from the start with only what
    changed below ``split`` since ``base``."""

    ballot: Ballot
    image_index: int
    base: int
    split: tuple | None
    cursor: tuple | None
    credits: int


@dataclass(frozen=True, slots=True)
class SnapshotChunk:
    """Rows of image ``image_index`` (whose digest is ``digest``) of the stream
    ``(base, split)``, from ``cursor`` (exclusive) to ``next_cursor`` (inclusive;
    None: this chunk ends the stream)."""

    ballot: Ballot
    image_index: int
    digest: int
    base: int
    split: tuple | None
    cursor: tuple | None
    next_cursor: tuple | None
    rows: tuple[Row, ...]


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
    SnapshotRequest,
    SnapshotChunk,
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
class SaveRows:
    """The KVS rows changed since the last SaveRows (kvs.py change rows); afterwards
    the stored rows are the state after applying every slot up to ``index``, with
    ``digest``, and tombstones below ``tombstone_horizon`` may be dropped."""

    index: int
    digest: int
    tombstone_horizon: int
    rows: tuple[Row, ...]


@dataclass(frozen=True, slots=True)
class SaveTruncate:
    """Log entries up to ``log_start`` are dropped (the stored rows cover them)."""

    log_start: int


class Transfer(NamedTuple):
    """A state transfer in progress at the receiver (see SnapshotRequest)."""

    source: int
    image_index: int
    digest: int
    base: int
    split: tuple | None
    cursor: tuple | None


@dataclass(frozen=True, slots=True)
class SaveStaged:
    """Staging rows changed (``reset``: staging emptied first), the staging digest,
    and the transfer's progress (None: no transfer in progress)."""

    transfer: Transfer | None
    reset: bool
    digest: int
    rows: tuple[Row, ...]


@dataclass(frozen=True, slots=True)
class SaveInstall:
    """The staged rows, verified against ``digest``, become the KVS at slot ``index``:
    log entries up to ``index`` are dropped and the transfer ends."""

    index: int
    digest: int


RECORD_TYPES = (SavePromise, SaveEntries, SaveCommit, SaveRows, SaveTruncate, SaveStaged,
                SaveInstall)
