"""The VR Revisited replica (Liskov and Cowling, MIT-CSAIL-TR-2012-021) as a sans-I/O core.

Theory of operation
-------------------
Replicas are numbered 0..N-1 and the primary of view v is replica v mod N (§4).
A replica's ``status`` is normal, view-change or recovering; every change of it
is in ``TRANSITIONS`` below, with the action that makes it.

* Normal operation (§4.1): the primary queues client commands, checks the client
  table (at most once: a retry of the latest request is answered from it, an
  older one dropped), and appends a batch of commands (§6.2) at op-number + 1,
  sending Prepare to every backup. A backup appends ops in order only, so
  PrepareOK for op n says it holds every op up to n; with f + 1 (itself included)
  the primary commits, executes in op order and replies. The commit-number rides
  on the next Prepare, or on a Commit when the primary is idle. At most
  ``window_slots`` ops are prepared and not committed (pipelining); beyond that a
  bounded queue, and BUSY past it (back-pressure), as in LowPaxos.
* View changes (§4.2): a backup that hears nothing from the primary moves to the
  next view and sends StartViewChange; with f + 1 of them (itself included) it
  sends DoViewChange to the new primary, carrying its last normal view, op-number,
  commit-number and only the log above its commit-number (§5.3). The new primary
  takes the log of the DoViewChange with the largest last-normal view, then the
  largest op-number, fetching first any committed ops it lacks, and sends
  StartView.
* Recovery (§4.3), with ``disk = "none"``: a restarted replica has lost
  everything. It sends Recovery with a fresh nonce and answers nothing until it
  has f + 1 RecoveryResponses with that nonce, one of them from the primary of the
  latest view among them, whose log it takes. Safe while at most f replicas are
  down at once. With ``disk = "sync"`` the view, status and log are written before
  anything is sent, and a restarted replica simply continues from its disk.
* State transfer (§5.2) and checkpoints (§5.1): a backup missing ops asks for the
  log after its op-number (same view) or its commit-number (a later view) with
  GetState. The log is cut in steps below what every replica has executed, or
  below our own commit-number past ``log_slots_max`` ops; the KVS rows are saved
  first. A replica behind another's cut receives the rows by the chunked transfer
  that LowPaxos uses (lowpaxos.transfer, kvs.read_chunk), then the log after them.

The state-transfer pitfall. Read literally, §5.2 has a replica that learns of a
later view from a Prepare set its op-number to its commit-number, drop the rest
of its log and carry on in the new view. Its status is then normal in the new
view, so in the next view change its DoViewChange reports that view as its last
normal view, with a log missing ops that were committed in earlier views; the
new primary prefers it to replicas whose last normal view is older and the
committed ops are lost (found by model checking VR Revisited in 2022). Here a
replica that joins a view other than by StartView (with the whole log) keeps its
old log and its old ``last_normal_view`` until a NewState gives it the view's
whole log: until then its DoViewChange still reports the old view with the old
log, which is exactly what a replica that never heard of the new view would
report (tests/test_vr_core.py, test_truncation_pitfall_*).

Handlers carry the names of spec/VR.tla's actions (docs/vr.md); each first
filters bad or stale input with a counted reason, then changes state, and the
replica re-checks its invariants after every step.
"""

from __future__ import annotations

import enum
import random
from collections import Counter, deque

from lowpaxos.core.api import Applied, ClientReply, ClientRequest, Command, Effects, ReplyStatus
from lowpaxos.kvs import KeyValueStore, read_chunk, valid_command
from lowpaxos.protocols.common import batch_id, batch_size_bytes, command_size_bytes, \
    take_batch
from lowpaxos.protocols.vr.config import VRConfig
from lowpaxos.protocols.vr.durable import VRDurableState
from lowpaxos.protocols.vr.messages import (
    Batch,
    Commit,
    DoViewChange,
    Entry,
    GetState,
    NewState,
    Prepare,
    PrepareOK,
    Recovery,
    RecoveryResponse,
    SaveCommit,
    SaveEntries,
    SaveInstall,
    SaveRows,
    SaveStaged,
    SaveStarted,
    SaveTruncate,
    SaveView,
    SnapshotChunk,
    SnapshotRequest,
    StartView,
    StartViewChange,
    Transfer,
)
from lowpaxos.transfer import ImageCache, cursor_order, stage_chunk


class Status(enum.Enum):
    NORMAL = "normal"
    VIEW_CHANGE = "view-change"
    RECOVERING = "recovering"


# Every status change and the action that makes it; any other change is a bug.
TRANSITIONS: dict[tuple[Status, str], Status] = {
    # §4.2: a timeout, or a StartViewChange / DoViewChange of a later view.
    (Status.NORMAL, "StartViewChange"): Status.VIEW_CHANGE,
    (Status.NORMAL, "HandleStartViewChange"): Status.VIEW_CHANGE,
    (Status.NORMAL, "HandleDoViewChange"): Status.VIEW_CHANGE,
    # The new primary, and the backups that receive its StartView.
    (Status.VIEW_CHANGE, "StartView"): Status.NORMAL,
    (Status.VIEW_CHANGE, "HandleStartView"): Status.NORMAL,
    # A Prepare or Commit of the view being changed to, or later: that view has started
    # (its StartView to us was lost); we join it and wait for its log (§5.2).
    (Status.VIEW_CHANGE, "HandlePrepare"): Status.NORMAL,
    (Status.VIEW_CHANGE, "HandleCommit"): Status.NORMAL,
    # §4.3: f + 1 responses with our nonce, the latest view's primary among them.
    (Status.RECOVERING, "HandleRecoveryResponse"): Status.NORMAL,
}


class VRReplica:
    """One VR Revisited replica (see the module docstring)."""

    def __init__(self, config: VRConfig, replica_id: int, rng: random.Random,
                 durable: VRDurableState | None = None, trace: bool = False) -> None:
        config.validate()
        assert 0 <= replica_id < config.replicas, "replica id within the cluster"
        self.config = config
        self.replica_id = replica_id
        self.rng = rng
        self.trace_on = trace
        self.replicas = config.replicas
        self.peers = tuple(r for r in range(config.replicas) if r != replica_id)
        self.drops: Counter[str] = Counter()
        self.now = 0
        self.steps = 0
        durable = durable if durable is not None else VRDurableState()
        self.sync = config.disk == "sync"
        # A diskless replica that has started before lost its state: it recovers (§4.3).
        recovering = durable.started and not self.sync
        self.started_persisted = durable.started

        self.view = durable.view
        self.last_normal_view = durable.last_normal_view
        self.status = Status(durable.status)
        self.log: dict[int, Batch] = {e.op: e.batch for e in durable.entries.values()}
        self.log_start = durable.log_start
        self.kvs = KeyValueStore(durable.open_store())
        store_index = self.kvs.rows.index
        assert self.log_start <= store_index, "the log is cut only below the stored rows"
        self.commit = store_index
        self.rows_persisted_index = store_index
        self.rows_persisted_tick = 0
        self.commit_persisted = durable.commit
        self.commit_persisted_tick = 0
        for op in range(store_index + 1, durable.commit + 1):
            assert op in self.log, "a persisted commit-number covers persisted entries"
            for command in self.log[op]:
                self.kvs.apply(command, op)
            self.commit = op
        self.op = max([self.commit] + list(self.log))
        # Rows transfer, receiving side (lowpaxos.transfer), and the images we serve.
        self.staging = durable.open_staging()
        self.transfer: Transfer | None = durable.transfer
        self.transfer_buffer: dict[tuple | None, SnapshotChunk] = {}
        self.transfer_credits = 0
        self.transfer_heard_tick = 0
        self.transfer_retries = 0
        self.transfers_installed = 0
        self.fresh_asked_tick = -(10**9)  # when we last asked for a fresh image
        self.images = ImageCache(config.images_max, config.image_reuse_ticks,
                                 config.image_idle_ticks)
        if recovering:
            self.status = Status.RECOVERING
            assert not self.log and self.commit == 0, "a diskless replica restarts empty"
        # Volatile state.
        self.primary_heard_tick = 0
        self.view_change_deadline = self.now + self._view_change_timeout()
        self.state_asked_tick: int | None = None  # GetState in flight
        self.truncate_hint = 0
        # View change: StartViewChange senders and DoViewChanges for self.view.
        self.svc_from: set[int] = set()
        self.dvc_sent_view = -1
        self.dvcs: dict[int, DoViewChange] = {}
        # Recovery.
        self.nonce: int | None = None
        self.recovery_sent_tick = 0
        self.recovery_responses: dict[int, RecoveryResponse] = {}
        # Primary.
        self.pending: deque[Command] = deque()
        self.pending_bytes = 0
        self.in_progress: set[tuple[int, int]] = set()
        self.acked: dict[int, int] = {}  # backup -> highest op it holds in this view
        self.peer_commit: dict[int, int] = {}
        self.peer_sent_tick: dict[int, int] = {}
        self.prepare_sent_tick: dict[int, int] = {}  # open op -> when its Prepare went out
        if self.status is Status.VIEW_CHANGE:
            # Restarted (disk = "sync") in a view change: take it up again on the first tick.
            self.svc_from = {self.replica_id}
        self.check_invariants()

    # ------------------------------------------------------------------ inputs

    def on_tick(self) -> Effects:
        effects = Effects()
        self.now += 1
        if self.status is Status.RECOVERING:
            fetching = self.transfer is not None or \
                self.now - self.fresh_asked_tick < 4 * self.config.transfer_retry_ticks
            if not fetching and (
                    self.nonce is None
                    or self.now - self.recovery_sent_tick >= self.config.recovery_retry_ticks):
                self.start_recovery(effects)
        elif self.is_primary():
            self._primary_tick(effects)
        else:
            if self.now >= self.view_change_deadline:
                self.start_view_change(effects)
            elif self.status is Status.VIEW_CHANGE and self.now % self.config.commit_ticks == 0:
                # StartViewChange and DoViewChange may be lost: say them again.
                self._send_start_view_change(effects)
                self._maybe_send_do_view_change(effects, resend=True)
            if self.status is Status.VIEW_CHANGE and self._new_primary_is_us():
                self._maybe_start_view(effects)
            if (self.state_asked_tick is not None
                    and self.now - self.state_asked_tick >= self.config.state_retry_ticks):
                self.state_asked_tick = None  # lost: ask again (below, or _maybe_start_view)
            if self.awaiting_state() and self.state_asked_tick is None and self.transfer is None:
                self._request_state(self._state_source(), effects)
        if (self.transfer is not None and self.now - self.transfer_heard_tick
                >= self.config.transfer_retry_ticks << min(self.transfer_retries, 3)):
            self._retry_transfer(effects)
        self.images.close_idle(self.now)
        self._finish_step(effects)
        return effects

    def on_client_request(self, request: ClientRequest) -> Effects:
        effects = Effects()
        self.handle_request(request, effects)
        self._finish_step(effects)
        return effects

    def on_message(self, source: int, message: object) -> Effects:
        effects = Effects()
        if not isinstance(source, int) or source not in self.peers:
            self._drop("non_member")
            return effects
        handler = self._HANDLERS.get(type(message))
        if handler is None:
            self._drop("unknown_type")
            return effects
        if self.status is Status.RECOVERING and type(message) not in self._WHILE_RECOVERING:
            # §4.3: a recovering replica takes part in nothing until it has recovered.
            self._drop("recovering")
            return effects
        handler(self, source, message, effects)
        self._finish_step(effects)
        return effects

    def drop_counts(self) -> dict[str, int]:
        return dict(self.drops)

    # The status drivers read (core/api.py) under the names every protocol shares.

    def is_leader(self) -> bool:
        return self.is_primary()

    @property
    def leader_hint(self) -> int | None:
        """§4: the primary of our view, while we are normal in it (NOT_LEADER's hint)."""
        return self.primary_of(self.view) if self.status is Status.NORMAL else None

    @property
    def commit_index(self) -> int:
        """The commit-number: every op up to it is committed and executed here."""
        return self.commit

    def info_fields(self) -> list[tuple[str, object]]:
        """The runtime's INFO lines: LowPaxos's names where they mean the same (a
        view-change is ``candidate``, recovering ``recovering``), then VR's own."""
        if self.status is Status.NORMAL:
            role = "leader" if self.is_primary() else "follower"
        else:
            role = "candidate" if self.status is Status.VIEW_CHANGE else "recovering"
        hint = self.leader_hint
        return [
            ("role", role),
            ("leader_hint", "" if hint is None else hint),
            ("view", self.view),
            ("status", self.status.value),
            ("last_normal_view", self.last_normal_view),
            ("op", self.op),
            ("commit_index", self.commit),
            ("applied_index", self.commit),
            ("snapshot_index", self.rows_persisted_index),
            ("kvs_index", self.commit),
            ("kvs_digest", self.kvs.digest()),
            ("kvs_keys", self.kvs.rows.live_count(0)),
            ("transfer", "none" if self.transfer is None else self.transfer.image_index),
            ("transfers_installed", self.transfers_installed),
            ("log_start", self.log_start),
            ("slots_in_memory", len(self.log)),
            ("pending_commands", len(self.pending)),
            ("disk", self.config.disk),
        ]

    # ---------------------------------------------------------------- queries

    def primary_of(self, view: int) -> int:
        """§4: the primary of view v is replica v mod N."""
        return view % self.replicas

    def is_primary(self) -> bool:
        return self.status is Status.NORMAL and self.primary_of(self.view) == self.replica_id

    def awaiting_state(self) -> bool:
        """Joined ``view`` other than by StartView: normal, but the log is still that of
        ``last_normal_view`` until NewState brings the view's log (the pitfall above)."""
        return self.status is Status.NORMAL and self.last_normal_view < self.view

    # ---------------------------------------------------------- normal operation

    def handle_request(self, request: ClientRequest, effects: Effects) -> None:
        """§4.1 steps 1-2: the primary checks the client table and queues the command."""
        command = request.command if isinstance(request, ClientRequest) else None
        reason = valid_command(command)
        if reason is not None:
            self._drop("bad_command")
            client_id = getattr(command, "client_id", None)
            request_id = getattr(command, "request_id", None)
            if isinstance(client_id, int) and isinstance(request_id, int):
                effects.reply.append(
                    ClientReply(client_id, request_id, ReplyStatus.INVALID, reason.encode()))
            return
        if not self.is_primary():
            hint = self.primary_of(self.view) if self.status is Status.NORMAL else None
            effects.reply.append(ClientReply(command.client_id, command.request_id,
                                             ReplyStatus.NOT_LEADER, None, hint))
            return
        executed, result = self.kvs.session_result(command.client_id, command.request_id)
        if executed:
            # §4.1 step 2: the latest request, executed: resend its reply from the table.
            effects.reply.append(ClientReply(command.client_id, command.request_id,
                                             ReplyStatus.OK, result, self.replica_id))
            return
        if self.kvs.is_stale(command.client_id, command.request_id):
            return self._drop("stale_request")
        key = (command.client_id, command.request_id)
        if key in self.in_progress:
            return self._drop("duplicate_request")
        if len(self.pending) >= self.config.pending_commands_max:
            effects.reply.append(ClientReply(command.client_id, command.request_id,
                                             ReplyStatus.BUSY, None, self.replica_id))
            return
        self.pending.append(command)
        self.pending_bytes += command_size_bytes(command)
        self.in_progress.add(key)
        self._flush(effects, partial=not self.config.batching)

    def _open_bytes(self) -> int:
        return sum(batch_size_bytes(self.log[op]) for op in range(self.commit + 1, self.op + 1))

    def _flush(self, effects: Effects, partial: bool) -> None:
        """Propose queued commands while the window has room: full batches always, a
        partial one only when ``partial`` (a tick, or batching off)."""
        while (self.pending and self.op - self.commit < self.config.window_slots
               and self._open_bytes() < self.config.window_bytes_max):
            batch, taken = take_batch(self.pending, self.pending_bytes, self.config.batching,
                                      self.config.batch_bytes_max, partial)
            if batch is None:
                return
            self.pending_bytes -= taken
            self.propose(batch, effects)

    def propose(self, batch: Batch, effects: Effects) -> None:
        """Propose (§4.1 step 3): append at op-number + 1 and send Prepare to the backups."""
        assert self.is_primary(), "only the primary proposes"
        assert batch, "an op holds at least one command"
        self.op += 1
        self.log[self.op] = batch
        if self.sync:
            effects.persist.append(SaveEntries(None, (Entry(self.op, batch),)))
        self.prepare_sent_tick[self.op] = self.now
        message = Prepare(self.view, self.op, batch, self.commit)
        for peer in self.peers:
            effects.send.append((peer, message))
            self.peer_sent_tick[peer] = self.now
        self._trace(effects, "Propose", None, None, slot=self.op)
        self._advance_primary_commit(effects)  # N = 1 commits at once

    def handle_prepare(self, source: int, message: Prepare, effects: Effects) -> None:
        """HandlePrepare (§4.1 step 4): append in op order, PrepareOK; or join a later view."""
        if not self._from_primary(source, message.view):
            return
        if message.op < 1 or message.op > self.commit + self.config.log_slots_max:
            return self._drop("op_out_of_range")
        if not message.batch or any(valid_command(c) is not None for c in message.batch):
            return self._drop("bad_command")
        first_event = len(effects.trace)
        if self._join_view_if_later(message.view, "HandlePrepare", effects):
            self._trace(effects, "HandlePrepare", source, message, before=first_event)
            return
        self.primary_heard_tick = self.now
        self.view_change_deadline = self.now + self._view_change_timeout()
        if self.awaiting_state():
            # Our log is not this view's yet: the NewState we asked for brings it.
            return self._drop("awaiting_state")
        if message.op <= self.op:
            # A retry, or a duplicate: we hold it (ops of one view never change), so say so.
            # Traced: the PrepareOK may say more than the one sent before (a higher op).
            self._drop("duplicate_prepare")
            self._learn_commit(message.commit, effects)
            effects.send.append((source, PrepareOK(self.view, self.op, self.commit)))
            self._trace(effects, "HandlePrepare", source, message, before=first_event)
            return
        if message.op > self.op + 1:
            # A gap (lost Prepares): ask for the log after our op-number (§5.2, first case).
            self._drop("prepare_gap")
            if self.state_asked_tick is None:
                self._request_state(source, effects)
            return
        self.op = message.op
        self.log[self.op] = message.batch
        if self.sync:
            effects.persist.append(SaveEntries(None, (Entry(self.op, message.batch),)))
        self._learn_commit(message.commit, effects)
        effects.send.append((source, PrepareOK(self.view, self.op, self.commit)))
        self._trace(effects, "HandlePrepare", source, message, before=first_event)

    def handle_prepare_ok(self, source: int, message: PrepareOK, effects: Effects) -> None:
        """HandlePrepareOK (§4.1 step 5): f + 1 holders (the primary included) commit."""
        if not self.is_primary() or message.view != self.view:
            return self._drop("stale_prepare_ok")
        if message.op > self.op or message.commit > message.op:
            return self._drop("bad_prepare_ok")
        self.peer_commit[source] = max(self.peer_commit.get(source, 0), message.commit)
        if message.op <= self.acked.get(source, 0):
            return self._drop("duplicate_prepare_ok")
        self.acked[source] = message.op
        first_event = len(effects.trace)
        committed = self._advance_primary_commit(effects)
        self._trace(effects, "HandlePrepareOK", source, message, before=first_event)
        if committed:
            self._flush(effects, partial=not self.config.batching)

    def _advance_primary_commit(self, effects: Effects) -> bool:
        """The commit-number: the highest op held by f + 1 replicas, ourselves included.
        A PrepareOK for op n covers every op up to n (backups append in order)."""
        holders = sorted([self.op] + [self.acked.get(peer, 0) for peer in self.peers],
                         reverse=True)
        held = min(holders[self.config.quorum - 1], self.op)
        if held > self.commit:
            self._commit_to(held, effects)
            return True
        return False

    def _primary_tick(self, effects: Effects) -> None:
        self._flush(effects, partial=True)
        open_ops = [op for op in range(self.commit + 1, self.op + 1)
                    if self.now - self.prepare_sent_tick.get(op, 0)
                    >= self.config.prepare_retry_ticks]
        if open_ops:
            self.retry_prepare(open_ops, effects)
        for peer in self.peers:
            if self.now - self.peer_sent_tick.get(peer, -(10**9)) >= self.config.commit_ticks:
                self.send_commit(peer, effects)

    def retry_prepare(self, ops: list[int], effects: Effects) -> None:
        """RetryPrepare: Prepares unanswered for a while go again to backups lacking them."""
        for op in ops:
            self.prepare_sent_tick[op] = self.now
            message = Prepare(self.view, op, self.log[op], self.commit)
            for peer in self.peers:
                if self.acked.get(peer, 0) < op:
                    effects.send.append((peer, message))
                    self.peer_sent_tick[peer] = self.now
        self._trace(effects, "RetryPrepare", None, None, slot=ops[0])

    def send_commit(self, peer: int, effects: Effects) -> None:
        """SendCommit (§4.1 step 6): an idle primary tells a backup the commit-number."""
        self.peer_sent_tick[peer] = self.now
        effects.send.append((peer, Commit(self.view, self.commit, self._truncate_point())))
        self._trace(effects, "SendCommit", None, None, target=peer)

    def handle_commit(self, source: int, message: Commit, effects: Effects) -> None:
        """HandleCommit (§4.1 step 7): execute up to the commit-number; answer with
        PrepareOK, so that a primary whose PrepareOKs were lost hears how far we hold."""
        if not self._from_primary(source, message.view):
            return
        first_event = len(effects.trace)
        if self._join_view_if_later(message.view, "HandleCommit", effects):
            self._trace(effects, "HandleCommit", source, message, before=first_event)
            return
        self.primary_heard_tick = self.now
        self.view_change_deadline = self.now + self._view_change_timeout()
        if self.awaiting_state():
            return self._drop("awaiting_state")
        self.truncate_hint = max(self.truncate_hint, min(message.truncate, message.commit))
        self._learn_commit(message.commit, effects)
        effects.send.append((source, PrepareOK(self.view, self.op, self.commit)))
        self._trace(effects, "HandleCommit", source, message, before=first_event)
        if message.commit > self.op and self.state_asked_tick is None:
            # Committed ops we never received (their Prepares were lost and are not sent
            # again once committed): fetch them (§5.2, first case).
            self._request_state(source, effects)

    def _from_primary(self, source: int, view: int) -> bool:
        if view < self.view:
            self._drop("stale_view")
            return False
        if self.primary_of(view) != source:
            self._drop("not_primary")
            return False
        if view == self.view and self.is_primary():
            self._drop("two_primaries")  # impossible unless a peer is faulty
            return False
        return True

    def _join_view_if_later(self, view: int, action: str, effects: Effects) -> bool:
        """A Prepare or Commit of a view we are not normal in: that view has started. We
        join it and ask its primary for its log (§5.2, second case) -- but keep our log
        and last-normal view until the NewState arrives (the pitfall, module docstring).
        True when the message can do nothing more now."""
        if view == self.view and self.status is Status.NORMAL:
            return False
        self._leave_primary()
        self.view = view
        if self.status is not Status.NORMAL:
            self._set_status(Status.NORMAL, action)
        self._reset_view_change()
        self._persist_view(effects)
        self.primary_heard_tick = self.now
        self.view_change_deadline = self.now + self._view_change_timeout()
        self._request_state(self.primary_of(view), effects)
        return True

    def _learn_commit(self, commit: int, effects: Effects) -> None:
        """Execute up to the primary's commit-number, as far as our log of this view goes."""
        assert not self.awaiting_state(), "only a log of this view may be committed from it"
        target = min(commit, self.op)
        if target > self.commit:
            self._commit_to(target, effects)

    # ----------------------------------------------------------- view changes

    def start_view_change(self, effects: Effects) -> None:
        """StartViewChange (§4.2 step 1): the primary went quiet; move to the next view."""
        self._leave_primary()
        self.view += 1
        if self.status is not Status.VIEW_CHANGE:
            self._set_status(Status.VIEW_CHANGE, "StartViewChange")
        self._reset_view_change()
        self.svc_from = {self.replica_id}
        self._persist_view(effects)
        self.view_change_deadline = self.now + self._view_change_timeout()
        self._send_start_view_change(effects)
        self._trace(effects, "StartViewChange", None, None)
        self._maybe_send_do_view_change(effects)

    def _send_start_view_change(self, effects: Effects) -> None:
        for peer in self.peers:
            effects.send.append((peer, StartViewChange(self.view)))

    def handle_start_view_change(self, source: int, message: StartViewChange,
                                 effects: Effects) -> None:
        """HandleStartViewChange (§4.2 steps 1-2): join a later view change; with f + 1
        StartViewChanges (ours included) send DoViewChange to the new primary."""
        if message.view < self.view or (message.view == self.view
                                        and self.status is Status.NORMAL):
            return self._drop("stale_view")
        if message.view > self.view:
            self._enter_view_change(message.view, "HandleStartViewChange", effects)
        if source in self.svc_from:
            return self._drop("duplicate_start_view_change")
        self.svc_from.add(source)
        self._trace(effects, "HandleStartViewChange", source, message)
        self._maybe_send_do_view_change(effects)

    def _enter_view_change(self, view: int, action: str, effects: Effects) -> None:
        self._leave_primary()
        self.view = view
        if self.status is not Status.VIEW_CHANGE:
            self._set_status(Status.VIEW_CHANGE, action)
        self._reset_view_change()
        self.svc_from = {self.replica_id}
        self._persist_view(effects)
        self.view_change_deadline = self.now + self._view_change_timeout()
        self._send_start_view_change(effects)

    def _do_view_change(self) -> DoViewChange:
        """Our DoViewChange: the log above our commit-number only (§5.3)."""
        return DoViewChange(self.view, self.last_normal_view, self.op, self.commit,
                            self.log_start, self._entries(self.commit, self.op))

    def _maybe_send_do_view_change(self, effects: Effects, resend: bool = False) -> None:
        if self.status is not Status.VIEW_CHANGE or len(self.svc_from) < self.config.quorum:
            return
        if self.dvc_sent_view == self.view and not resend:
            return
        self.dvc_sent_view = self.view
        primary = self.primary_of(self.view)
        if primary == self.replica_id:
            self._maybe_start_view(effects)
        else:
            effects.send.append((primary, self._do_view_change()))

    def _new_primary_is_us(self) -> bool:
        return self.primary_of(self.view) == self.replica_id

    def handle_do_view_change(self, source: int, message: DoViewChange, effects: Effects) -> None:
        """HandleDoViewChange (§4.2 step 3): the new primary collects f + 1."""
        if self.primary_of(message.view) != self.replica_id:
            return self._drop("not_new_primary")
        if message.view < self.view or (message.view == self.view
                                        and self.status is Status.NORMAL):
            return self._drop("stale_view")
        if not self._valid_suffix(message.entries, message.commit, message.op) \
                or message.last_normal_view >= message.view or message.log_start > message.commit:
            return self._drop("bad_do_view_change")
        if message.view > self.view:
            self._enter_view_change(message.view, "HandleDoViewChange", effects)
        self.dvcs[source] = message
        # A DoViewChange means its sender has f + 1 StartViewChanges: so do we, in effect.
        self.svc_from.add(source)
        self._trace(effects, "HandleDoViewChange", source, message)
        self._maybe_start_view(effects)

    def _maybe_start_view(self, effects: Effects) -> None:
        """With f + 1 DoViewChanges (ours included), become primary -- once we hold every
        op committed so far, which the chosen log may go past (§5.3)."""
        if self.status is not Status.VIEW_CHANGE or not self._new_primary_is_us():
            return
        if len(self.dvcs) + 1 < self.config.quorum or self.transfer is not None:
            return
        candidates = dict(self.dvcs)
        candidates[self.replica_id] = self._do_view_change()
        best_id = self.choose_log(candidates)
        best = candidates[best_id]
        if best.commit > self.commit:
            # We lack committed ops below the chosen suffix: fetch them from its sender
            # (committed ops may be served by anyone, in any status).
            if self.state_asked_tick is None:
                self._request_state(best_id, effects)
            return
        if best.op < self.commit:
            # A log without ops we executed cannot be the right one (the chosen log holds
            # every committed op): only a faulty peer sends it. Drop it and wait for others.
            self._drop("do_view_change_behind_commit")
            self.dvcs.pop(best_id, None)
            return
        self.start_view(best, candidates, effects)

    def start_view(self, best: DoViewChange, candidates: dict[int, DoViewChange],
                   effects: Effects) -> None:
        """StartView (§4.2 steps 3-4): take the chosen log, commit up to the largest
        commit-number received, and send StartView with the log each backup lacks."""
        if best is not candidates[self.replica_id]:
            # Ops above the chosen commit-number are replaced by the chosen ones (the ops
            # up to it are committed: ours are the same, since our commit-number is higher).
            self._adopt_log(best.commit, best.entries, best.op, effects)
        self._set_status(Status.NORMAL, "StartView")
        self.last_normal_view = self.view
        self._persist_view(effects)
        self._reset_view_change()
        self.acked = {}
        self.peer_commit = {r: m.commit for r, m in candidates.items() if r != self.replica_id}
        self.prepare_sent_tick = {op: self.now for op in range(self.commit + 1, self.op + 1)}
        self.peer_sent_tick = {}
        self._trace(effects, "StartView", None, None)
        for peer in self.peers:
            known = candidates[peer].commit if peer in candidates else self.commit
            from_op = max(self.log_start, min(known, self.commit))
            self.peer_sent_tick[peer] = self.now
            effects.send.append((peer, StartView(self.view, self.op, self.commit, from_op,
                                                 self._entries(from_op, self.op))))
        top_commit = min(max(m.commit for m in candidates.values()), self.op)
        if top_commit > self.commit:
            self._commit_to(top_commit, effects)
        self._advance_primary_commit(effects)

    def handle_start_view(self, source: int, message: StartView, effects: Effects) -> None:
        """HandleStartView (§4.2 step 5): take the new primary's log; PrepareOK."""
        if self.primary_of(message.view) != source:
            return self._drop("not_primary")
        if message.view < self.view or (message.view == self.view
                                        and self.status is Status.NORMAL
                                        and not self.awaiting_state()):
            return self._drop("stale_view")
        if not self._valid_suffix(message.entries, message.from_op, message.op) \
                or message.commit > message.op:
            return self._drop("bad_start_view")
        if message.op < self.commit:
            # A new log without ops we executed: it lost committed ops (the pitfall, or a
            # faulty peer). Never take it.
            return self._drop("start_view_behind_commit")
        if self.commit < message.from_op:
            # The suffix starts above what we have executed: the ops between are committed
            # and we lack them. Join the view and fetch its log (§5.2); not the suffix alone.
            first_event = len(effects.trace)
            if not self._join_view_if_later(message.view, "HandleStartView", effects) \
                    and self.state_asked_tick is None:
                self._request_state(source, effects)
            self._trace(effects, "HandleStartView", source, message, before=first_event)
            return
        self._leave_primary()
        self.view = message.view
        self._adopt_log(message.from_op, message.entries, message.op, effects)
        if self.status is not Status.NORMAL:
            self._set_status(Status.NORMAL, "HandleStartView")
        self.last_normal_view = self.view
        self._persist_view(effects)
        self._reset_view_change()
        self.primary_heard_tick = self.now
        self.view_change_deadline = self.now + self._view_change_timeout()
        self._learn_commit(message.commit, effects)
        effects.send.append((source, PrepareOK(self.view, self.op, self.commit)))
        self._trace(effects, "HandleStartView", source, message)

    def _adopt_log(self, from_op: int, entries: tuple[Entry, ...], op: int,
                   effects: Effects) -> None:
        """Our log becomes ours up to ``from_op`` and ``entries`` after it. The callers
        check that what we keep is right: committed ops (the same everywhere), or ops of
        this very view (a gap filled by NewState)."""
        assert op >= self.commit, "a log that is taken holds every op we executed"
        for held in [o for o in self.log if o > from_op]:
            del self.log[held]
        for entry in entries:
            if entry.op > self.log_start:  # ops at or below our cut are in our rows
                self.log[entry.op] = entry.batch
        self.op = op
        if self.sync:
            effects.persist.append(SaveEntries(from_op, entries))

    # ---------------------------------------------------------- state transfer

    @staticmethod
    def choose_log(candidates: dict[int, DoViewChange]) -> int:
        """§4.2 step 3: the sender of the log with the largest last-normal view, then the
        largest op-number. The replica id breaks ties only to be deterministic: logs with
        equal (last-normal view, op-number) are equal."""
        return max(candidates, key=lambda r: (candidates[r].last_normal_view,
                                              candidates[r].op, -r))

    def _state_source(self) -> int:
        if self.status is Status.VIEW_CHANGE and self.dvcs:
            return self.choose_log(self.dvcs)
        return self.primary_of(self.view)

    def _request_state(self, target: int, effects: Effects) -> None:
        """RequestState (§5.2): the log after our op-number (same view, a gap) or after
        our commit-number (a view whose log we do not have yet)."""
        if target == self.replica_id or self.transfer is not None:
            return
        from_op = self.op if self.status is Status.NORMAL and not self.awaiting_state() \
            else self.commit
        self.state_asked_tick = self.now
        effects.send.append((target, GetState(self.view, from_op)))
        self._trace(effects, "RequestState", None, None, target=target)

    def handle_get_state(self, source: int, message: GetState, effects: Effects) -> None:
        """HandleGetState (§5.2): a normal replica of the same view sends its log after
        ``from_op``; any other sends the committed ops after it (committed ops never
        change, so anyone may serve them), or, past its cut, says where its log starts."""
        if message.from_op < 0:
            return self._drop("bad_get_state")
        if message.from_op < self.log_start:
            effects.send.append((source, NewState(self.view, self.log_start, message.from_op,
                                                  self.op, self.commit, True, ())))
            self._trace(effects, "HandleGetState", source, message)
            return
        whole = (self.status is Status.NORMAL and not self.awaiting_state()
                 and message.view == self.view)
        last = self.op if whole else self.commit
        if message.from_op >= last and not whole:
            return self._drop("nothing_to_send")
        entries, size = [], 0
        for op in range(message.from_op + 1, last + 1):
            size += batch_size_bytes(self.log[op])
            if entries and size > self.config.state_bytes_max:
                break
            entries.append(Entry(op, self.log[op]))
        committed_only = not whole or len(entries) < last - message.from_op
        if committed_only:
            entries = [e for e in entries if e.op <= self.commit]
            if not entries:
                return self._drop("nothing_to_send")
        effects.send.append((source, NewState(self.view, self.log_start, message.from_op,
                                              entries[-1].op if entries else self.op,
                                              self.commit, committed_only, tuple(entries))))
        self._trace(effects, "HandleGetState", source, message)

    def handle_new_state(self, source: int, message: NewState, effects: Effects) -> None:
        """HandleNewState (§5.2): take the log suffix, or its committed part."""
        if self.is_primary():
            return self._drop("primary_needs_no_state")
        if message.from_op < message.log_start:
            # The sender cut those ops: fetch its rows first, then ask again.
            if message.log_start <= self.commit:
                return self._drop("stale_new_state")
            if self.transfer is None:
                self.state_asked_tick = None
                self._request_chunks_fresh(source, effects)
                self._trace(effects, "HandleNewState", source, message)
            return
        if not self._valid_suffix(message.entries, message.from_op, message.op) \
                or message.commit > max(message.op, message.from_op):
            return self._drop("bad_new_state")
        first_event = len(effects.trace)
        if message.committed_only:
            if message.from_op > self.commit or message.op <= self.commit:
                return self._drop("stale_new_state")
            # Committed ops: the same in every log, so written over whatever we held
            # there, keeping our suffix (and last-normal view) unchanged.
            taken = tuple(e for e in message.entries if e.op > self.commit)
            for entry in taken:
                self.log[entry.op] = entry.batch
            if self.sync:
                effects.persist.append(SaveEntries(None, taken))
            self.op = max(self.op, message.op)
            self._commit_to(message.op, effects)
        else:
            if message.view != self.view or self.status is not Status.NORMAL:
                return self._drop("stale_new_state")
            if self.awaiting_state():
                # We keep only what we executed (committed); the rest is the view's log.
                if message.from_op > self.commit or message.op < self.commit:
                    return self._drop("stale_new_state")
            elif message.from_op > self.op or message.op <= self.op:
                # A gap in this view's ops: we keep our ops of this view up to from_op.
                return self._drop("stale_new_state")
            # The whole log of this view from its sender, normal in it: now ours too.
            self._adopt_log(message.from_op, message.entries, message.op, effects)
            self.last_normal_view = self.view
            self._persist_view(effects)
            self._learn_commit(message.commit, effects)
            effects.send.append((self.primary_of(self.view),
                                 PrepareOK(self.view, self.op, self.commit)))
        self.state_asked_tick = None
        self._trace(effects, "HandleNewState", source, message, before=first_event)
        if self.status is Status.VIEW_CHANGE:
            self._maybe_start_view(effects)
        elif message.committed_only and self.awaiting_state():
            self._request_state(source, effects)

    # ------------------------------------------------------------- recovery

    def start_recovery(self, effects: Effects) -> None:
        """StartRecovery (§4.3 step 1): Recovery with a fresh nonce to every replica."""
        assert self.status is Status.RECOVERING, "only a recovering replica recovers"
        self.nonce = self.rng.getrandbits(62)
        self.recovery_responses = {}
        self.recovery_sent_tick = self.now
        for peer in self.peers:
            effects.send.append((peer, Recovery(self.nonce, self.commit)))
        self._trace(effects, "StartRecovery", None, None)

    def handle_recovery(self, source: int, message: Recovery, effects: Effects) -> None:
        """HandleRecovery (§4.3 step 2): only a normal replica answers; the primary with its
        log after what the recovering replica's rows cover, or after its own cut."""
        if self.status is not Status.NORMAL:
            return self._drop("not_normal")
        if message.commit < 0 or message.nonce < 0:
            return self._drop("bad_recovery")
        if self.is_primary():
            from_op = max(self.log_start, min(message.commit, self.commit))
            response = RecoveryResponse(self.view, message.nonce, True, self.log_start, from_op,
                                        self.op, self.commit, self._entries(from_op, self.op))
        else:
            response = RecoveryResponse(self.view, message.nonce, False, 0, 0, 0, 0, ())
        effects.send.append((source, response))
        self._trace(effects, "HandleRecovery", source, message)

    def handle_recovery_response(self, source: int, message: RecoveryResponse,
                                 effects: Effects) -> None:
        """HandleRecoveryResponse (§4.3 step 3): with f + 1 responses to our nonce, the
        primary of the latest view among them included, take that primary's log."""
        if self.status is not Status.RECOVERING or message.nonce != self.nonce:
            return self._drop("stale_recovery_response")
        if message.primary and (self.primary_of(message.view) != source
                                or not self._valid_suffix(message.entries, message.from_op,
                                                          message.op)
                                or message.commit > message.op):
            return self._drop("bad_recovery_response")
        self.recovery_responses[source] = message
        self._trace(effects, "HandleRecoveryResponse", source, message)
        if len(self.recovery_responses) < self.config.quorum:
            return
        latest = max(m.view for m in self.recovery_responses.values())
        primary = self.recovery_responses.get(self.primary_of(latest))
        if primary is None or primary.view != latest or not primary.primary:
            return  # wait for the latest view's primary (a retry asks again)
        if primary.op < self.commit:
            self.recovery_responses.pop(self.primary_of(latest))
            return self._drop("recovery_response_behind_commit")
        if primary.from_op > self.commit:
            # Its log starts above the rows we hold: fetch its rows, then recover again.
            self.nonce = None
            self._request_chunks_fresh(self.primary_of(latest), effects)
            return
        self.view = latest
        self._adopt_log(primary.from_op, primary.entries, primary.op, effects)
        self._set_status(Status.NORMAL, "HandleRecoveryResponse")
        self.last_normal_view = latest
        self.nonce = None
        self.recovery_responses = {}
        self.primary_heard_tick = self.now
        self.view_change_deadline = self.now + self._view_change_timeout()
        if primary.commit > self.commit:
            self._commit_to(min(primary.commit, self.op), effects)
        effects.send.append((self.primary_of(latest), PrepareOK(self.view, self.op, self.commit)))

    # ------------------------------------------------------ rows transfer

    def _request_chunks_fresh(self, source: int, effects: Effects) -> None:
        """Start a transfer of ``source``'s current image (a full stream)."""
        self.transfer_credits = self.config.transfer_window
        self.transfer_heard_tick = self.now
        self.transfer_retries = 0
        self.fresh_asked_tick = self.now
        effects.send.append((source, SnapshotRequest(self.view, 0, None,
                                                     self.config.transfer_window)))
        self._trace(effects, "RequestSnapshot", None, None, target=source)

    def handle_snapshot_request(self, source: int, message: SnapshotRequest,
                                effects: Effects) -> None:
        """HandleSnapshotRequest: send the next chunks of an image of our rows."""
        if not 1 <= message.credits <= self.config.transfer_window or message.image_index < 0:
            return self._drop("bad_credits")
        image = self.images.get(message.image_index, 0, self.now, self.kvs.rows.image)
        # Another image than the one asked for (0: any; or it is gone): from its start.
        cursor = message.cursor if image.index == message.image_index else None
        for _ in range(message.credits):
            rows, next_cursor = read_chunk(image, cursor, 0, None,
                                           self.config.transfer_chunk_bytes,
                                           self.config.transfer_scan_rows_max)
            effects.send.append((source, SnapshotChunk(self.view, image.index, image.digest,
                                                       cursor, next_cursor, rows)))
            if next_cursor is None:
                break
            cursor = next_cursor
        self._trace(effects, "HandleSnapshotRequest", source, message)

    def handle_snapshot_chunk(self, source: int, message: SnapshotChunk,
                              effects: Effects) -> None:
        """HandleSnapshotChunk: stage a chunk in stream order; install after the last."""
        if self.is_primary():
            return self._drop("primary_needs_no_state")
        transfer = self.transfer
        reset = False
        if transfer is not None and message.image_index == transfer.image_index \
                and source == transfer.source:
            if message.cursor != transfer.cursor:
                if cursor_order(message.cursor) < cursor_order(transfer.cursor):
                    return self._drop("chunk_duplicate")
                if message.cursor in self.transfer_buffer or \
                        len(self.transfer_buffer) >= self.config.transfer_window:
                    return self._drop("chunk_not_next")
                self.transfer_buffer[message.cursor] = message
                self.transfer_heard_tick = self.now
                return
        elif message.cursor is not None or message.image_index <= self.commit:
            return self._drop("stale_chunk")
        else:
            # The first chunk of a full stream: begin (again) from nothing.
            reset = True
            self.staging.clear()
            self.transfer_buffer = {}
            self.transfer = Transfer(source, message.image_index, message.digest, None)
        self.transfer_heard_tick = self.now
        self.transfer_retries = 0
        self._take_chunk(message)
        while self.transfer.cursor in self.transfer_buffer:
            self._take_chunk(self.transfer_buffer.pop(self.transfer.cursor))
        changes = self.staging.take_changes()
        if self.sync:
            effects.persist.append(SaveStaged(self.transfer, reset, self.staging.digest, changes))
        self._trace(effects, "HandleSnapshotChunk", source, message)
        if self.transfer.cursor is None:
            self._finish_transfer(effects)
        elif self.transfer_credits <= 0:
            self._request_chunks(effects, self.config.transfer_window)

    def _take_chunk(self, chunk: SnapshotChunk) -> None:
        assert chunk.cursor == self.transfer.cursor, "chunks are taken in stream order"
        stage_chunk(self.staging, None, chunk.cursor, chunk.next_cursor, chunk.rows)
        self.transfer = self.transfer._replace(cursor=chunk.next_cursor)
        self.transfer_credits -= 1

    def _request_chunks(self, effects: Effects, credits: int) -> None:
        transfer = self.transfer
        self.transfer_credits = credits
        self.transfer_heard_tick = self.now
        effects.send.append((transfer.source, SnapshotRequest(
            self.view, transfer.image_index, transfer.cursor, credits)))
        self._trace(effects, "RequestSnapshot", None, None, target=transfer.source)

    def _retry_transfer(self, effects: Effects) -> None:
        """No chunk for a while: ask again from our cursor; after a few silent tries,
        start over from another replica's image."""
        self.transfer_retries += 1
        if self.transfer_retries > self.config.transfer_retries_per_source:
            others = [r for r in self.peers if r != self.transfer.source]
            source = others[self.rng.randrange(len(others))] if others else self.transfer.source
            self._abandon_transfer(effects)
            self._request_chunks_fresh(source, effects)
            return
        self._request_chunks(effects, 1 if self.transfer_buffer else self.config.transfer_window)

    def _abandon_transfer(self, effects: Effects) -> None:
        self.transfer = None
        self.transfer_buffer = {}
        self.staging.clear()
        if self.sync:
            effects.persist.append(SaveStaged(None, True, 0, ()))

    def _finish_transfer(self, effects: Effects) -> None:
        transfer = self.transfer
        if self.staging.digest != transfer.digest:
            self._drop("transfer_digest_mismatch")
            self._abandon_transfer(effects)
            return
        if transfer.image_index <= self.commit:
            self._drop("transfer_overtaken")
            self._abandon_transfer(effects)
            return
        self.install_snapshot(transfer, effects)

    def install_snapshot(self, transfer: Transfer, effects: Effects) -> None:
        """InstallSnapshot: the verified staged rows become the KVS at the image's op;
        ops up to it are committed (the image holds executed ops only), so they leave
        the log. Ops we hold above it stay as they were."""
        index = transfer.image_index
        self.kvs.rows.take_changes()
        old = self.kvs.rows
        self.kvs = KeyValueStore(self.staging)
        self.kvs.rows.index = index
        self.kvs.rows.tombstone_horizon = index
        self.staging = old
        self.staging.clear()
        self.transfer = None
        self.transfer_buffer = {}
        if self.sync:
            effects.persist.append(SaveInstall(index, transfer.digest))
        self.transfers_installed += 1
        self.rows_persisted_index = index
        self.log_start = max(self.log_start, index)
        for op in [o for o in self.log if o <= index]:
            del self.log[op]
        if self.op < index or any(o not in self.log for o in range(index + 1, self.op + 1)):
            # Nothing above the image, or a gap: what we held above it is not a log.
            self.log = {}
            self.op = index
            if self.sync:
                effects.persist.append(SaveEntries(index, ()))
        self.commit = index
        self._trace(effects, "InstallSnapshot", None, None)
        if self.status is Status.RECOVERING:
            self.nonce = None  # the next tick recovers again, now from our rows on
            self.fresh_asked_tick = -(10**9)
        elif self.status is Status.NORMAL:
            self._request_state(transfer.source, effects)
        else:
            self._maybe_start_view(effects)

    # ---------------------------------------------------------- commit and apply

    def _commit_to(self, op: int, effects: Effects) -> None:
        assert op > self.commit, "the commit-number only moves forward"
        assert op <= self.op, "only held ops are committed"
        primary = self.is_primary()
        for number in range(self.commit + 1, op + 1):
            for command in self.log[number]:
                result = self.kvs.apply(command, number)
                effects.applied.append(Applied(number, command, result))
                self.in_progress.discard((command.client_id, command.request_id))
                if primary:
                    effects.reply.append(ClientReply(command.client_id, command.request_id,
                                                     ReplyStatus.OK, result, self.replica_id))
            self.prepare_sent_tick.pop(number, None)
        self.commit = op
        self._maybe_checkpoint(effects)

    def _truncate_point(self) -> int:
        """Ops every replica has executed (as the primary last heard)."""
        return min([self.commit] + [self.peer_commit.get(peer, 0) for peer in self.peers])

    def _maybe_checkpoint(self, effects: Effects) -> None:
        """§5.1: every ``snapshot_slots`` executed ops, cut the log below what every replica
        has executed, or below our commit-number past ``log_slots_max`` (a replica behind
        then receives the rows). Rows are saved first, in the same batch."""
        if self.commit - self.log_start < self.config.snapshot_slots:
            return
        hint = self._truncate_point() if self.is_primary() else self.truncate_hint
        log_start = max(self.log_start, min(hint, self.commit))
        if self.commit - log_start > self.config.log_slots_max - self.config.window_slots:
            log_start = self.commit
            lowest = self.images.lowest_index()
            if lowest is not None:
                # Serving an image: keep the ops after it, so that the receiver can go on
                # through the log (up to transfer_log_slots_max).
                keep_from = max(lowest, self.commit - self.config.transfer_log_slots_max)
                log_start = max(self.log_start, min(log_start, keep_from))
        if log_start - self.log_start < self.config.snapshot_slots:
            return
        self.kvs.rows.drop_tombstones_below(self.commit - self.config.tombstone_slots)
        self._persist_rows(effects)
        for op in range(self.log_start + 1, log_start + 1):
            self.log.pop(op, None)
        self.log_start = log_start
        if self.sync:
            effects.persist.append(SaveTruncate(log_start))
        self._trace(effects, "TruncateLog", None, None, slot=log_start)

    def _persist_rows(self, effects: Effects) -> None:
        if not self.sync:
            self.kvs.rows.take_changes()  # diskless: the rows live in memory only
            self.rows_persisted_index = self.commit
            return
        if self.commit == self.rows_persisted_index:
            return
        rows = self.kvs.rows
        effects.persist.append(SaveRows(self.commit, rows.digest, rows.tombstone_horizon,
                                        rows.take_changes()))
        self.rows_persisted_index = self.commit
        self.rows_persisted_tick = self.now

    # --------------------------------------------------------------- helpers

    def _entries(self, after: int, last: int) -> tuple[Entry, ...]:
        return tuple(Entry(op, self.log[op]) for op in range(after + 1, last + 1))

    def _valid_suffix(self, entries: tuple, after: int, last: int) -> bool:
        """Entries from a peer: exactly ops after+1..last, within our memory bound, each
        a non-empty batch of well-formed commands."""
        if not isinstance(entries, tuple) or after < 0 or last < after:
            return False
        if last - after != len(entries) or last > self.commit + 2 * self.config.log_slots_max \
                + self.config.transfer_log_slots_max:
            return False
        for expected, entry in enumerate(entries, start=after + 1):
            if not isinstance(entry, Entry) or entry.op != expected or not entry.batch:
                return False
            if any(valid_command(c) is not None for c in entry.batch):
                return False
        return True

    def _set_status(self, status: Status, action: str) -> None:
        target = TRANSITIONS.get((self.status, action))
        assert target is status, f"no transition {self.status.name} --{action}--> {status.name}"
        self._leave_primary()
        self.status = status

    def _leave_primary(self) -> None:
        """Called before the view or status changes: a primary stops being one."""
        if self.is_primary():
            # Commands queued here were never proposed: clients retry at the next primary.
            self.pending.clear()
            self.pending_bytes = 0
            self.in_progress.clear()

    def _reset_view_change(self) -> None:
        self.svc_from = set()
        self.dvcs = {}
        self.dvc_sent_view = -1
        self.state_asked_tick = None

    def _persist_view(self, effects: Effects) -> None:
        if self.sync:
            effects.persist.append(SaveView(self.view, self.last_normal_view, self.status.value))

    def _view_change_timeout(self) -> int:
        ticks = self.config.view_change_ticks
        return self.rng.randrange(ticks, 2 * ticks)

    def _drop(self, reason: str) -> None:
        self.drops[reason] += 1

    def _finish_step(self, effects: Effects) -> None:
        if not self.started_persisted:
            # The first batch of a fresh replica says it has started (before any send).
            effects.persist.insert(0, SaveStarted())
            self.started_persisted = True
        if self.sync:
            if self.commit > self.rows_persisted_index and (
                    effects.persist
                    or self.now - self.rows_persisted_tick >= self.config.commit_hint_ticks):
                self._persist_rows(effects)
            if self.commit > self.commit_persisted and (
                    effects.persist
                    or self.now - self.commit_persisted_tick >= self.config.commit_hint_ticks):
                effects.persist.append(SaveCommit(self.commit))
                self.commit_persisted = self.commit
                self.commit_persisted_tick = self.now
        self.check_invariants()

    def check_invariants(self) -> None:
        """Re-checked after every step; each assertion says one thing."""
        assert self.last_normal_view <= self.view, "the last normal view is not ahead"
        assert self.log_start <= self.commit, "the log is cut only below executed ops"
        assert self.commit <= self.op, "only held ops are committed"
        assert self.kvs.rows.index <= self.commit, "the rows hold executed ops only"
        assert self.rows_persisted_index <= self.commit, "rows persisted are executed"
        assert (self.op - self.log_start == len(self.log)), "the log holds every op above the cut"
        if self.status is Status.NORMAL and self.primary_of(self.view) == self.replica_id:
            assert self.last_normal_view == self.view, "a primary has its view's log"
            assert self.transfer is None, "a primary receives no rows"
            assert self.op - self.commit <= self.config.window_slots + self.config.log_slots_max, \
                "the window is bounded"
        else:
            assert not self.pending, "only a primary queues commands"
        if self.status is Status.RECOVERING:
            assert not self.dvcs and not self.svc_from, "a recovering replica takes no part"
        if self.status is not Status.VIEW_CHANGE:
            assert not self.dvcs, "DoViewChanges are kept only during a view change"
        if self.transfer is None:
            assert not self.transfer_buffer, "no chunks buffered without a transfer"
        assert len(self.transfer_buffer) <= self.config.transfer_window, "buffer bounded"
        assert len(self.pending) <= self.config.pending_commands_max, "the queue is bounded"
        assert len(self.images) <= self.config.images_max, "open images are bounded"
        assert len(self.log) <= 2 * self.config.log_slots_max + self.config.snapshot_slots \
            + self.config.transfer_log_slots_max, "memory stays bounded"
        self.steps += 1
        if self.steps % self.config.invariant_full_scan_steps == 0:
            assert all(self.log_start < op <= self.op for op in self.log), \
                "every held op lies between the cut and the op-number"
            assert all(batch for batch in self.log.values()), "no op holds an empty batch"

    # ---------------------------------------------------------------- tracing

    def spec_state(self) -> dict:
        """This replica's state in the variables of spec/VR.tla (docs/vr.md)."""
        return {
            "view": self.view,
            "status": self.status.value,
            "last_normal_view": self.last_normal_view,
            "op": self.op,
            "commit": self.commit,
            "log": {str(op): batch_id(batch) for op, batch in sorted(self.log.items())},
            "log_start": self.log_start,
        }

    def _trace(self, effects: Effects, action: str, source: int | None, message: object,
               slot: int | None = None, target: int | None = None,
               before: int | None = None) -> None:
        """Record one spec action; ``before`` puts it ahead of events from that position
        (the receive comes first, a RequestState it caused after it)."""
        if not self.trace_on:
            return
        event = {"action": action, "replica": self.replica_id, "state": self.spec_state()}
        if source is not None:
            event["source"] = source
        if message is not None:
            event["message"] = describe_message(message)
        if slot is not None:
            event["slot"] = slot
        if target is not None:
            event["target"] = target
        if before is None:
            effects.trace.append(event)
        else:
            effects.trace.insert(before, event)

    @staticmethod
    def describe_message(message: object) -> dict:
        return describe_message(message)

    _HANDLERS = {
        Prepare: handle_prepare,
        PrepareOK: handle_prepare_ok,
        Commit: handle_commit,
        StartViewChange: handle_start_view_change,
        DoViewChange: handle_do_view_change,
        StartView: handle_start_view,
        GetState: handle_get_state,
        NewState: handle_new_state,
        Recovery: handle_recovery,
        RecoveryResponse: handle_recovery_response,
        SnapshotRequest: handle_snapshot_request,
        SnapshotChunk: handle_snapshot_chunk,
    }
    # What a recovering replica still takes: its own recovery, and the rows it pulls.
    _WHILE_RECOVERING = frozenset({RecoveryResponse, SnapshotChunk})


def describe_message(message: object) -> dict:
    """A message as plain data for traces: batches appear as their batch ids."""
    fields: dict = {"type": type(message).__name__}
    for name in message.__slots__:  # type: ignore[attr-defined]
        value = getattr(message, name)
        if name == "batch":
            fields["value"] = batch_id(value)
        elif name == "entries":
            fields[name] = [[entry.op, batch_id(entry.batch)] for entry in value]
        elif name == "rows":
            fields[name] = len(value)
        elif isinstance(value, tuple):
            fields[name] = list(value)
        else:
            fields[name] = value
    return fields


__all__ = ["Status", "TRANSITIONS", "VRReplica", "describe_message"]
