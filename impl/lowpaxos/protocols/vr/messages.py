"""VR Revisited messages and durable records: immutable values.

Names and fields follow the paper (Liskov and Cowling 2012): view-number ``view``,
op-number ``op``, commit-number ``commit``. An entry is ``(op, batch)``: with
batching (§6.2) an op holds a batch of client commands, never an empty one.
Where a message carries more than the paper's (a commit-number on PrepareOK, a
log suffix instead of the whole log, the log cut) the docstring says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from lowpaxos.core.api import Command

Batch = tuple[Command, ...]


class Entry(NamedTuple):
    op: int
    batch: Batch


Row = tuple  # (kind, key, value or None, version): see kvs.py


# ---- Normal operation (§4.1) ----


@dataclass(frozen=True, slots=True)
class Prepare:
    """<PREPARE v, m, n, k>: op ``op`` holds ``batch``; ``commit`` is the primary's."""

    view: int
    op: int
    batch: Batch
    commit: int


@dataclass(frozen=True, slots=True)
class PrepareOK:
    """<PREPAREOK v, n, i>: the sender holds every op up to ``op`` of view ``view``.
    ``commit`` (ours) is how far the sender has executed: the primary cuts the log
    only below what every replica has executed (§5.1)."""

    view: int
    op: int
    commit: int


@dataclass(frozen=True, slots=True)
class Commit:
    """<COMMIT v, k>, sent when the primary is idle. ``truncate`` (ours): every replica
    has executed up to it, so backups may cut their logs there too."""

    view: int
    commit: int
    truncate: int


# ---- View changes (§4.2, §5.3) ----


@dataclass(frozen=True, slots=True)
class StartViewChange:
    view: int


@dataclass(frozen=True, slots=True)
class DoViewChange:
    """<DOVIEWCHANGE v, l, v', n, k, i>, with only the log suffix above ``commit`` (§5.3:
    the ops up to the commit-number are committed, the same everywhere). ``log_start``
    tells the new primary where the sender's log begins."""

    view: int
    last_normal_view: int
    op: int
    commit: int
    log_start: int
    entries: tuple[Entry, ...]


@dataclass(frozen=True, slots=True)
class StartView:
    """<STARTVIEW v, l, n, k>: the new log as its suffix above ``from_op`` (entries
    ``from_op + 1 .. op``); a backup that has not executed up to ``from_op`` asks for the
    rest (GetState)."""

    view: int
    op: int
    commit: int
    from_op: int
    entries: tuple[Entry, ...]


# ---- State transfer (§5.2) ----


@dataclass(frozen=True, slots=True)
class GetState:
    """<GETSTATE v, n', i>: send me the log after ``from_op``."""

    view: int
    from_op: int


@dataclass(frozen=True, slots=True)
class NewState:
    """<NEWSTATE v, l, n, k>: entries ``from_op + 1 ..`` of the sender's log. With
    ``committed_only`` false they run to ``op``, the whole of the sender's log of view
    ``view`` (the sender is normal in it); with it true they are committed ops only
    (a sender in another view or status, or a suffix too large for one message).
    ``from_op < log_start``: the sender has cut those ops; fetch its rows first."""

    view: int
    log_start: int
    from_op: int
    op: int
    commit: int
    committed_only: bool
    entries: tuple[Entry, ...]


# ---- Recovery (§4.3) ----


@dataclass(frozen=True, slots=True)
class Recovery:
    """<RECOVERY i, x>, and ``commit``: the recovering replica's rows cover ops up to it
    (0 for a diskless replica that has nothing), so the primary sends only what follows."""

    nonce: int
    commit: int


@dataclass(frozen=True, slots=True)
class RecoveryResponse:
    """<RECOVERYRESPONSE v, x, l, n, k, j>: from the primary of ``view`` (``primary``
    true) with its log after ``from_op`` up to ``op``; from a backup just the view and
    the nonce. ``from_op < log_start`` never occurs: the primary sends from its cut."""

    view: int
    nonce: int
    primary: bool
    log_start: int
    from_op: int
    op: int
    commit: int
    entries: tuple[Entry, ...]


# ---- Chunked state transfer of the rows (transfer.py) ----


@dataclass(frozen=True, slots=True)
class SnapshotRequest:
    """Send up to ``credits`` chunks of image ``image_index`` (0: your current image)
    from ``cursor`` on (None: the start)."""

    view: int
    image_index: int
    cursor: tuple | None
    credits: int


@dataclass(frozen=True, slots=True)
class SnapshotChunk:
    """Rows of image ``image_index`` (digest ``digest``) from ``cursor`` (exclusive) to
    ``next_cursor`` (inclusive; None: the last chunk)."""

    view: int
    image_index: int
    digest: int
    cursor: tuple | None
    next_cursor: tuple | None
    rows: tuple[Row, ...]


MESSAGE_TYPES = (Prepare, PrepareOK, Commit, StartViewChange, DoViewChange, StartView,
                 GetState, NewState, Recovery, RecoveryResponse, SnapshotRequest,
                 SnapshotChunk)


# ---- Durable records (disk = "sync"; SaveStarted alone in disk = "none") ----


@dataclass(frozen=True, slots=True)
class SaveStarted:
    """This replica has started once. A diskless replica writes only this, so that a
    restart knows it lost its state and must recover (§4.3) instead of starting fresh."""


@dataclass(frozen=True, slots=True)
class SaveView:
    view: int
    last_normal_view: int
    status: str


@dataclass(frozen=True, slots=True)
class SaveEntries:
    """Entries held above ``drop_above`` are dropped (None: none are), then ``entries``
    written over what their ops held. An append drops nothing; a new log from
    StartView or NewState drops the old suffix first."""

    drop_above: int | None
    entries: tuple[Entry, ...]


@dataclass(frozen=True, slots=True)
class SaveCommit:
    """A hint: every op up to ``commit`` is committed."""

    commit: int


@dataclass(frozen=True, slots=True)
class SaveRows:
    index: int
    digest: int
    tombstone_horizon: int
    rows: tuple[Row, ...]


@dataclass(frozen=True, slots=True)
class SaveTruncate:
    log_start: int


class Transfer(NamedTuple):
    """A row transfer in progress at the receiver."""

    source: int
    image_index: int
    digest: int
    cursor: tuple | None


@dataclass(frozen=True, slots=True)
class SaveStaged:
    transfer: Transfer | None
    reset: bool
    digest: int
    rows: tuple[Row, ...]


@dataclass(frozen=True, slots=True)
class SaveInstall:
    index: int
    digest: int


RECORD_TYPES = (SaveStarted, SaveView, SaveEntries, SaveCommit, SaveRows, SaveTruncate,
                SaveStaged, SaveInstall)
