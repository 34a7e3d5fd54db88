"""The LowPaxos replica: Multi-Paxos with a stable leader, shaped for scarce resources.

Theory of operation
-------------------
Every replica is an acceptor; one at a time leads. A replica whose leader has
gone quiet starts an election with a fresh ballot ``(round, replica)`` and runs
phase 1 once over every slot above its commit point (Paxos Made Simple §3,
Multi-Paxos). With a phase-1 quorum it becomes leader, re-proposes in its own
ballot the highest-ballot value each promise reported for each open slot, and
fills gaps with no-ops (the empty batch). Then it runs only phase 2.

What LowPaxos adds for weak hardware and poor links:

* Thrifty phase 2: an Accept goes to just the followers a phase-2 quorum needs
  (the ones heard from most recently) and widens to all on delay (EPaxos §4.4
  uses the same idea).
* Flexible quorums: |Q1| + |Q2| > N (Howard, Malkhi, Spiegelman 2016, §3).
* Batching and pipelining: a slot holds a batch of commands bounded by one
  datagram's payload; at most ``window_slots`` slots are in flight; a bounded
  queue beyond that, and BUSY replies past it (back-pressure).
* No commit messages in steady state: the leader's commit point rides on the
  next Accept or Heartbeat. A follower learns a slot is committed only when its
  own entry for it carries the leader's ballot; anything else it fetches.
* Catch-up in bounded chunks, from any replica that has the slots committed.
* Bounded memory: the KVS rows are persisted with the log records (SaveRows),
  so slots every replica has applied can be dropped; past ``log_slots_max`` slots
  or ``log_bytes_max`` bytes the log is cut anyway and a replica behind the cut
  receives the state in chunks (state transfer below), however large the store.

State transfer: a replica behind the cut pulls a point-in-time image of the
KVS rows from any replica, a window of chunks per request, each chunk one
datagram. It stages the rows (durably, so a crash resumes where it was),
verifies the whole staged state against the image's digest, and installs it
atomically (SaveInstall). Lost chunks are asked for again from the cursor. When
the serving replica no longer has the image (it crashed, or the receiver asks
another replica), the receiver keeps what it staged and takes from a newer image
only the rows changed since (kvs.read_chunk).

Handlers are named after the TLA+ actions of spec/LowPaxos.tla (snake_case
here, CamelCase in the spec and in trace events). Each handler first filters
bad or stale input with a counted reason, then changes state, and the replica
re-checks its invariants after every step.
"""

from __future__ import annotations

import enum
import random
from collections import Counter, deque

from lowpaxos.core.api import (
    Applied,
    ClientReply,
    ClientRequest,
    Command,
    Effects,
    ReplyStatus,
)
from lowpaxos.kvs import KeyValueStore, StateImage, read_chunk, valid_command
# Shared with the other cores (moved out of this module; imported here under the same names).
from lowpaxos.protocols.common import (  # noqa: F401 - re-exported
    BATCH_OVERHEAD_BYTES,
    COMMAND_OVERHEAD_BYTES,
    batch_id,
    command_size_bytes,
    take_batch,
)
from lowpaxos.protocols.lowpaxos.config import LowPaxosConfig
from lowpaxos.protocols.lowpaxos.durable import DurableState
from lowpaxos.protocols.lowpaxos.messages import (
    Accept,
    Accepted,
    Ballot,
    Batch,
    CatchupReply,
    CatchupRequest,
    Entry,
    Heartbeat,
    HeartbeatReply,
    Prepare,
    Promise,
    Reject,
    SaveCommit,
    SaveEntries,
    SaveInstall,
    SavePromise,
    SaveRows,
    SaveStaged,
    SaveTruncate,
    SnapshotChunk,
    SnapshotRequest,
    Transfer,
)
from lowpaxos.transfer import cursor_order, resume_point, stage_chunk


class Role(enum.Enum):
    FOLLOWER = "follower"
    CANDIDATE = "candidate"
    LEADER = "leader"


# Every role change, and the action that makes it. Any other change is a bug.
TRANSITIONS: dict[tuple[Role, str], Role] = {
    (Role.FOLLOWER, "StartElection"): Role.CANDIDATE,
    (Role.CANDIDATE, "StartElection"): Role.CANDIDATE,
    (Role.CANDIDATE, "BecomeLeader"): Role.LEADER,
    # A higher ballot seen in any message, or a leader that lost its quorum.
    (Role.CANDIDATE, "StepDown"): Role.FOLLOWER,
    (Role.LEADER, "StepDown"): Role.FOLLOWER,
}

class LowPaxosReplica:
    """One LowPaxos replica as a sans-I/O state machine (see the module docstring)."""

    def __init__(
        self,
        config: LowPaxosConfig,
        replica_id: int,
        rng: random.Random,
        durable: DurableState | None = None,
        trace: bool = False,
    ) -> None:
        config.validate()
        assert 0 <= replica_id < config.replicas, "replica id within the cluster"
        self.config = config
        self.replica_id = replica_id
        self.rng = rng
        self.trace_on = trace
        self.peers = tuple(r for r in range(config.replicas) if r != replica_id)
        self.drops: Counter[str] = Counter()
        self.now = 0  # ticks since this incarnation started

        # Durable state (mirrors DurableState; every change is also a persist record).
        durable = durable if durable is not None else DurableState()
        self.promised: Ballot = durable.promised
        self.log: dict[int, Entry] = dict(durable.entries)
        self.log_start = durable.log_start

        # The state machine: the stored rows as of their index, then every committed
        # slot above it replayed from the log.
        self.kvs = KeyValueStore(durable.open_store())
        store_index = self.kvs.rows.index
        assert self.log_start <= store_index, "the log is cut only below the stored rows"
        self.commit_index = store_index
        self.applied_index = store_index
        self.rows_persisted_index = store_index
        self.rows_persisted_tick = 0
        self.steps = 0  # inputs taken by this incarnation (the full invariant scan's pacing)
        self.commit_persisted = durable.commit_index
        self.commit_persisted_tick = 0
        for slot in range(store_index + 1, durable.commit_index + 1):
            assert slot in self.log, "a persisted commit point covers persisted entries"
            self.commit_index = slot
        # Encoded-size estimate of each applied slot still held (log_bytes_max bounds it).
        self.applied_bytes: dict[int, int] = {}
        self.applied_bytes_total = 0
        for slot in range(self.log_start + 1, self.applied_index + 1):
            if slot in self.log:
                self._hold_applied(slot)
        for slot in range(self.applied_index + 1, self.commit_index + 1):
            for command in self.log[slot].batch:
                self.kvs.apply(command, slot)
            self.applied_index = slot
            self._hold_applied(slot)

        # State transfer, receiving side: the staged rows and where the transfer stands.
        self.staging = durable.open_staging()
        self.transfer: Transfer | None = durable.transfer
        self.transfer_buffer: dict[tuple | None, SnapshotChunk] = {}
        self.transfer_credits = 0  # chunks asked for and not yet taken
        self.transfer_heard_tick = 0
        self.transfer_retries = 0
        self.transfers_installed = 0  # in this incarnation, for metrics and tests
        self.transfer_gap_asked: tuple | None = None  # the cursor last asked for alone
        # Serving side: open point-in-time images by index: (image, tick opened, tick last used).
        self.images: dict[int, tuple[StateImage, int, int]] = {}

        # Volatile state.
        self.role = Role.FOLLOWER
        self.leader_hint: int | None = None
        self.leader_heard_tick = -(10**9)
        self.leader_commit_seen = self.commit_index
        self.truncate_hint = 0  # slots every replica has applied, as the leader last said
        self.election_deadline = self.now + self._election_timeout()
        # Candidate.
        self.promises: dict[int, Promise] = {}
        self.prepare_commit_index = 0
        self.prepare_sent_tick = 0
        # Leader.
        self.next_slot = self.commit_index + 1
        self.acks: dict[int, set[int]] = {}
        self.accept_sent_tick: dict[int, int] = {}
        self.accept_retries: dict[int, int] = {}  # open slot -> times its Accept was resent
        self.open_bytes: dict[int, int] = {}  # open slot -> estimated size of its batch
        self.pending: deque[Command] = deque()
        self.pending_bytes = 0
        self.in_progress: set[tuple[int, int]] = set()
        self.peer_commit: dict[int, int] = {}
        self.peer_heard_tick: dict[int, int] = {}
        self.peer_sent_tick: dict[int, int] = {}
        # Follower catch-up.
        self.catchup_sent_tick: int | None = None
        # The last Promise sent, resent as is when its Prepare is retried.
        self.last_promise: tuple[int, Promise] | None = None

        self.check_invariants()

    # ------------------------------------------------------------------ inputs

    def on_tick(self) -> Effects:
        effects = Effects()
        self.now += 1
        if self.role is Role.LEADER:
            self._leader_tick(effects)
        else:
            if self.now >= self.election_deadline:
                self.start_election(effects)
            elif (
                self.role is Role.CANDIDATE
                and self.now - self.prepare_sent_tick >= self.config.prepare_retry_ticks
            ):
                self._send_prepare(effects, [r for r in self.peers if r not in self.promises])
            if (
                self.catchup_sent_tick is not None
                and self.now - self.catchup_sent_tick >= self.config.catchup_retry_ticks
            ):
                self.catchup_sent_tick = None
                self._maybe_request_catchup(effects)
            if (
                self.transfer is not None
                and self.now - self.transfer_heard_tick
                >= self.config.transfer_retry_ticks << min(self.transfer_retries, 3)
            ):
                self._retry_transfer(effects)
        self._close_idle_images()
        self._finish_step(effects)
        return effects

    def on_client_request(self, request: ClientRequest) -> Effects:
        effects = Effects()
        self.handle_client_request(request, effects)
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
        handler(self, source, message, effects)
        self._finish_step(effects)
        return effects

    def drop_counts(self) -> dict[str, int]:
        return dict(self.drops)

    # The status drivers read (core/api.py): leader_hint, commit_index and kvs are fields.

    def is_leader(self) -> bool:
        return self.role is Role.LEADER

    def info_fields(self) -> list[tuple[str, object]]:
        """The runtime's INFO lines for LowPaxos (names fixed: tests and tools read them)."""
        return [
            ("role", self.role.value),
            ("leader_hint", "" if self.leader_hint is None else self.leader_hint),
            ("ballot", f"{self.promised.round}/{self.promised.replica}"),
            ("ballot_round", self.promised.round),
            ("ballot_replica", self.promised.replica),
            ("commit_index", self.commit_index),
            ("applied_index", self.applied_index),
            ("snapshot_index", self.rows_persisted_index),  # the stored rows' index
            # The KVS state: equal index and digest on two replicas mean equal rows.
            ("kvs_index", self.applied_index),
            ("kvs_digest", self.kvs.digest()),
            ("kvs_keys", self.kvs.rows.live_count(0)),
            ("transfer", "none" if self.transfer is None else self.transfer.image_index),
            ("transfers_installed", self.transfers_installed),
            ("log_start", self.log_start),
            ("slots_in_memory", len(self.log)),
            ("pending_commands", len(self.pending)),
        ]

    # ------------------------------------------------------------- elections

    def start_election(self, effects: Effects) -> None:
        """StartElection: a fresh ballot above any seen; promise it ourselves; phase 1a."""
        ballot = Ballot(self.promised.round + 1, self.replica_id)
        self._become(Role.CANDIDATE, "StartElection")
        self._promise(ballot, effects)
        self.leader_hint = None
        self.promises = {
            self.replica_id: Promise(ballot, self._entries_above(self.commit_index), self.commit_index)
        }
        self.prepare_commit_index = self.commit_index
        self.election_deadline = self.now + self._election_timeout()
        self._send_prepare(effects, list(self.peers))
        self._trace(effects, "StartElection", None, None)
        self._maybe_become_leader(effects)

    def _send_prepare(self, effects: Effects, targets: list[int]) -> None:
        self.prepare_sent_tick = self.now
        message = Prepare(self.promised, self.prepare_commit_index)
        for target in targets:
            effects.send.append((target, message))

    def handle_prepare(self, source: int, message: Prepare, effects: Effects) -> None:
        """HandlePrepare: phase 1b, or a Reject for a ballot not above our promise."""
        if message.ballot.replica != source:
            return self._drop("not_ballot_owner")
        if message.ballot == self.promised:
            # A retry of the Prepare we promised: our Promise was probably lost. Send the
            # very same Promise again. To the spec this is a duplicate of a message that is
            # already in the network, so it is not a new action and is not traced.
            self._drop("duplicate_prepare")
            if self.last_promise is not None and self.last_promise[0] == source \
                    and self.last_promise[1].ballot == message.ballot:
                effects.send.append((source, self.last_promise[1]))
            return
        if message.ballot < self.promised:
            self._drop("stale_ballot")
            effects.send.append((source, Reject(self.promised, self.commit_index)))
            self._trace(effects, "HandlePrepare", source, message)
            return
        if self._leader_alive():
            # A live leader keeps its followers: a replica cut off for a while must not
            # depose it with a higher ballot (Raft's check-quorum idea, §9.6 of Ongaro's
            # thesis). Ignoring a Prepare is always safe: it is as if it were lost.
            return self._drop("leader_alive")
        if message.commit_index < self.log_start:
            # We dropped slots the candidate lacks; it could not learn them from us.
            # Refuse without promising, so it catches up first.
            self._drop("candidate_lagging")
            effects.send.append((source, Reject(self.promised, self.commit_index, lagging=True)))
            # Traced: the candidate asks for catch-up on this Reject (RequestCatchup).
            self._trace(effects, "HandlePrepare", source, message)
            return
        self._promise(message.ballot, effects)
        if self.role is not Role.FOLLOWER:
            self._become(Role.FOLLOWER, "StepDown")
        self.leader_hint = None
        self.election_deadline = self.now + self._election_timeout()
        reply = Promise(message.ballot, self._entries_above(message.commit_index), self.commit_index)
        self.last_promise = (source, reply)
        effects.send.append((source, reply))
        self._trace(effects, "HandlePrepare", source, message)

    def handle_promise(self, source: int, message: Promise, effects: Effects) -> None:
        """HandlePromise: count phase-1b replies; with a Q1 quorum, become leader."""
        if self.role is not Role.CANDIDATE or message.ballot != self.promised:
            return self._drop("stale_promise")
        if source in self.promises:
            return self._drop("duplicate")
        if not self._entries_in_range(message.entries):
            return self._drop("bad_entries")
        self.promises[source] = message
        self._trace(effects, "HandlePromise", source, message)
        self._maybe_become_leader(effects)

    def _maybe_become_leader(self, effects: Effects) -> None:
        if len(self.promises) < self.config.quorum_phase1:
            return
        ballot = self.promised
        # Paxos Made Simple §2.2, P2c: for each open slot, the value with the highest
        # ballot that any promise reported; the empty batch (no-op) where none did.
        best: dict[int, Entry] = {}
        for promise in self.promises.values():
            for entry in promise.entries:
                if entry.slot <= self.commit_index:
                    continue
                current = best.get(entry.slot)
                if current is None or entry.ballot > current.ballot:
                    best[entry.slot] = entry
        top = max(best, default=self.commit_index)
        promised_by = set(self.promises)
        self._become(Role.LEADER, "BecomeLeader")
        if self.transfer is not None:
            # Elected while fetching state: a quorum promised on our log, so we lead from
            # our own commit point and no longer need the staged rows.
            self._drop("transfer_abandoned_leading")
            self.transfer = None
            self.transfer_buffer = {}
            self.staging.clear()
            effects.persist.append(SaveStaged(None, True, 0, ()))
        self.leader_hint = self.replica_id
        self.promises = {}
        self.acks = {}
        self.accept_sent_tick = {}
        self.accept_retries = {}
        self.open_bytes = {}
        self.peer_commit = {}
        # Those that just promised are known to be up: thrifty phase 2 starts with them.
        self.peer_heard_tick = {peer: self.now for peer in self.peers if peer in promised_by}
        self.peer_sent_tick = {peer: self.now for peer in self.peers}
        self.next_slot = self.commit_index + 1
        recovered = []
        for slot in range(self.commit_index + 1, top + 1):
            batch = best[slot].batch if slot in best else ()
            recovered.append(Entry(slot, ballot, batch))
        self.next_slot = top + 1
        if recovered:
            self._accept_own(recovered, effects)
        # Traced before the heartbeats below, which are SendHeartbeat events of the leader.
        self._trace(effects, "BecomeLeader", None, None)
        if recovered:
            for entry in recovered:
                # Recovery goes to every follower: the slow ones need these slots too.
                self._send_accept(entry, list(self.peers), effects)
        else:
            # Announce the new ballot at once so followers stop campaigning and learn
            # where to send clients.
            for peer in self.peers:
                self.send_heartbeat(peer, effects)
        if self._advance_leader_commit(effects):
            self._flush(effects, partial=not self.config.batching)

    # ---------------------------------------------------------------- phase 2

    def handle_client_request(self, request: ClientRequest, effects: Effects) -> None:
        """HandleClientRequest: queue a command at the leader, answer everyone else."""
        command = request.command if isinstance(request, ClientRequest) else None
        reason = valid_command(command)
        if reason is not None:
            # Answer when the sender can be named; otherwise the request is just counted.
            self._drop("bad_command")
            client_id = getattr(command, "client_id", None)
            request_id = getattr(command, "request_id", None)
            if isinstance(client_id, int) and isinstance(request_id, int):
                effects.reply.append(
                    ClientReply(client_id, request_id, ReplyStatus.INVALID, reason.encode())
                )
            return
        if self.role is not Role.LEADER:
            effects.reply.append(
                ClientReply(command.client_id, command.request_id, ReplyStatus.NOT_LEADER,
                            None, self.leader_hint)
            )
            return
        executed, result = self.kvs.session_result(command.client_id, command.request_id)
        if executed:
            # A retry of an executed request: answer from the client table, run nothing.
            effects.reply.append(
                ClientReply(command.client_id, command.request_id, ReplyStatus.OK, result,
                            self.replica_id)
            )
            return
        if self.kvs.is_stale(command.client_id, command.request_id):
            return self._drop("stale_request")
        key = (command.client_id, command.request_id)
        if key in self.in_progress:
            return self._drop("duplicate_request")
        if len(self.pending) >= self.config.pending_commands_max:
            effects.reply.append(
                ClientReply(command.client_id, command.request_id, ReplyStatus.BUSY, None,
                            self.replica_id)
            )
            return
        self.pending.append(command)
        self.pending_bytes += command_size_bytes(command)
        self.in_progress.add(key)
        self._flush(effects, partial=not self.config.batching)

    def _flush(self, effects: Effects, partial: bool) -> None:
        """Propose queued commands while the window has room: full batches always,
        a partial batch only when ``partial`` (a tick, or batching off)."""
        while (self.pending
               and self.next_slot - 1 - self.commit_index < self.config.window_slots
               and sum(self.open_bytes.values()) < self.config.window_bytes_max):
            batch, taken = take_batch(self.pending, self.pending_bytes, self.config.batching,
                                      self.config.batch_bytes_max, partial)
            if batch is None:
                return
            self.pending_bytes -= taken
            self.propose(batch, effects)

    def propose(self, batch: Batch, effects: Effects) -> None:
        """Propose: the leader puts a batch in its next slot and starts phase 2."""
        assert self.role is Role.LEADER, "only a leader proposes"
        entry = Entry(self.next_slot, self.promised, batch)
        self.next_slot += 1
        self._accept_own([entry], effects)
        self._send_accept(entry, self._phase2_targets(), effects)
        self._trace(effects, "Propose", None, None, slot=entry.slot)
        # A phase-2 quorum of one (|Q2| = 1) commits at once; the caller's loop proposes more.
        self._advance_leader_commit(effects)

    def _phase2_targets(self) -> list[int]:
        if not self.config.thrifty:
            return list(self.peers)
        needed = self.config.quorum_phase2 - 1
        # Live followers first, in a fixed order, so the same followers keep receiving
        # Accepts (the others would need catch-up if the choice kept changing).
        live_ticks = 2 * self.config.heartbeat_ticks + self.config.accept_retry_ticks
        n = self.config.replicas
        order = self.config.peer_order
        closeness = ({peer: position for position, peer in enumerate(order[self.replica_id])}
                     if order is not None else {})

        def rank(peer: int) -> tuple[bool, int]:
            live = self.now - self.peer_heard_tick.get(peer, -(10**9)) <= live_ticks
            return (not live, closeness.get(peer, (peer - self.replica_id) % n))

        return sorted(self.peers, key=rank)[:needed]

    def _accept_own(self, entries: list[Entry], effects: Effects) -> None:
        for entry in entries:
            self.log[entry.slot] = entry
            self.acks[entry.slot] = {self.replica_id}
            self.accept_sent_tick[entry.slot] = self.now
            self.open_bytes[entry.slot] = BATCH_OVERHEAD_BYTES + sum(
                command_size_bytes(c) for c in entry.batch)
        effects.persist.append(SaveEntries(tuple(entries)))

    def _send_accept(self, entry: Entry, targets: list[int], effects: Effects) -> None:
        message = Accept(self.promised, entry.slot, entry.batch, self.commit_index,
                         self._leader_truncate_index())
        for target in targets:
            effects.send.append((target, message))
            self.peer_sent_tick[target] = self.now

    def handle_accept(self, source: int, message: Accept, effects: Effects) -> None:
        """HandleAccept: phase 2b, then learn the commit point the Accept carries."""
        if not self._from_current_leader(source, message, effects, "HandleAccept"):
            return
        if message.slot < 1 or message.slot > self.commit_index + self.config.log_slots_max:
            # Memory stays bounded: a slot this far ahead is refused (the leader's window
            # never puts it there; it widens and retries, and we catch up meanwhile).
            return self._drop("slot_out_of_range")
        if not all(valid_command(c) is None for c in message.batch):
            return self._drop("bad_command")
        self._follow(source, message.ballot, effects)
        if message.slot > self.commit_index:
            self.log[message.slot] = Entry(message.slot, message.ballot, message.batch)
            effects.persist.append(SaveEntries((self.log[message.slot],)))
        first_event = len(effects.trace)
        self._learn_commit(message.ballot, message.commit_index, message.truncate_index, effects)
        effects.send.append((source, Accepted(message.ballot, message.slot, self.commit_index)))
        self._trace(effects, "HandleAccept", source, message, before=first_event)

    def _from_current_leader(self, source: int, message: Accept | Heartbeat, effects: Effects,
                             action: str) -> bool:
        """Filter for leader-to-follower messages: the sender must own the ballot, and the
        ballot must be at least our promise (else we tell the sender what we promised)."""
        ballot = message.ballot
        if ballot.replica != source:
            self._drop("not_ballot_owner")
            return False
        if ballot < self.promised:
            self._drop("stale_ballot")
            effects.send.append((source, Reject(self.promised, self.commit_index)))
            self._trace(effects, action, source, message)
            return False
        return True

    def handle_accepted(self, source: int, message: Accepted, effects: Effects) -> None:
        """HandleAccepted: count phase-2b replies of our own ballot only."""
        if self.role is not Role.LEADER or message.ballot != self.promised:
            # Counting an Accepted of another ballot would let a deposed leader commit
            # after a newer phase 1 (Paxos Made Simple §2.2, P2).
            return self._drop("stale_accepted")
        self._heard(source, message.commit_index)
        acks = self.acks.get(message.slot)
        if acks is None:
            return self._drop("already_committed")
        acks.add(source)
        first_event = len(effects.trace)
        committed = self._advance_leader_commit(effects)
        self._trace(effects, "HandleAccepted", source, message, before=first_event)
        if committed:
            # The window has room again: propose what waits (partial batches wait for a tick).
            self._flush(effects, partial=not self.config.batching)

    def _advance_leader_commit(self, effects: Effects) -> bool:
        """The leader's commit point: the longest prefix of slots with a Q2 quorum.
        True when it moved."""
        start = self.commit_index
        slot = self.commit_index + 1
        while slot in self.acks and len(self.acks[slot]) >= self.config.quorum_phase2:
            del self.acks[slot]
            self.accept_sent_tick.pop(slot, None)
            self.accept_retries.pop(slot, None)
            self.open_bytes.pop(slot, None)
            slot += 1
        if slot - 1 > start:
            self._commit_to(slot - 1, effects)
            return True
        return False

    def handle_reject(self, source: int, message: Reject, effects: Effects) -> None:
        """HandleReject: someone promised a higher ballot; stop leading or campaigning."""
        if message.lagging and self.role is Role.CANDIDATE:
            # The peer dropped slots we lack: fetch them (a snapshot) before campaigning on.
            self._request_catchup(source, effects)
        if message.ballot <= self.promised:
            return self._drop("stale_reject")
        self._promise(message.ballot, effects)
        if self.role is not Role.FOLLOWER:
            self._become(Role.FOLLOWER, "StepDown")
        self.leader_hint = None
        self.election_deadline = self.now + self._election_timeout()
        self._trace(effects, "HandleReject", source, message)

    # --------------------------------------------------------- leader upkeep

    def _leader_tick(self, effects: Effects) -> None:
        self._flush(effects, partial=True)
        # Widen: an Accept unanswered for accept_retry_ticks goes to every follower; each
        # further retry waits twice as long (up to 16 times), and a large batch longer
        # still (a tick per 64 KiB), so a slow link is not flooded with megabyte resends.
        for slot, sent in list(self.accept_sent_tick.items()):
            interval = (self.config.accept_retry_ticks << min(self.accept_retries.get(slot, 0), 4)) \
                + self.open_bytes.get(slot, 0) // 65536
            if self.now - sent >= interval:
                self.retry_accept(slot, effects)
        for peer in self.peers:
            if self.now - self.peer_sent_tick.get(peer, -(10**9)) >= self.config.heartbeat_ticks:
                self.send_heartbeat(peer, effects)
        # A leader that has not heard from enough followers for a full election timeout
        # steps down: it cannot commit, and its followers have likely moved on.
        quorum = max(self.config.quorum_phase1, self.config.quorum_phase2)
        recent = sum(
            1 for peer in self.peers
            if self.now - self.peer_heard_tick.get(peer, -(10**9)) < 2 * self.config.election_ticks
        )
        if recent + 1 < quorum:
            self._step_down(effects)

    def retry_accept(self, slot: int, effects: Effects) -> None:
        """RetryAccept: resend a late slot's Accept to every follower that has not acked."""
        entry = self.log[slot]
        targets = [peer for peer in self.peers if peer not in self.acks[slot]]
        self.accept_sent_tick[slot] = self.now
        self.accept_retries[slot] = self.accept_retries.get(slot, 0) + 1
        self._trace(effects, "RetryAccept", None, None, slot=slot)
        self._send_accept(entry, targets, effects)

    def send_heartbeat(self, peer: int, effects: Effects) -> None:
        """SendHeartbeat: the commit point and truncation point for an idle follower."""
        self.peer_sent_tick[peer] = self.now
        effects.send.append(
            (peer, Heartbeat(self.promised, self.commit_index, self._leader_truncate_index()))
        )
        self._trace(effects, "SendHeartbeat", None, None, target=peer)

    def handle_heartbeat(self, source: int, message: Heartbeat, effects: Effects) -> None:
        """HandleHeartbeat: follow the leader and learn its commit point."""
        if not self._from_current_leader(source, message, effects, "HandleHeartbeat"):
            return
        self._follow(source, message.ballot, effects)
        first_event = len(effects.trace)
        self._learn_commit(message.ballot, message.commit_index, message.truncate_index, effects)
        effects.send.append((source, HeartbeatReply(message.ballot, self.commit_index)))
        self._trace(effects, "HandleHeartbeat", source, message, before=first_event)

    def handle_heartbeat_reply(self, source: int, message: HeartbeatReply, effects: Effects) -> None:
        if self.role is not Role.LEADER or message.ballot != self.promised:
            return self._drop("stale_heartbeat_reply")
        self._heard(source, message.commit_index)

    def _heard(self, peer: int, commit_index: int) -> None:
        self.peer_heard_tick[peer] = self.now
        self.peer_commit[peer] = max(self.peer_commit.get(peer, 0), commit_index)

    def _leader_truncate_index(self) -> int:
        """Slots every replica has applied (0 for a replica not heard from yet)."""
        return min([self.applied_index] + [self.peer_commit.get(peer, 0) for peer in self.peers])

    def _step_down(self, effects: Effects) -> None:
        self._become(Role.FOLLOWER, "StepDown")
        self.leader_hint = None
        self.election_deadline = self.now + self._election_timeout()
        self._trace(effects, "StepDown", None, None)

    # ------------------------------------------------------- commit and catch-up

    def _follow(self, leader: int, ballot: Ballot, effects: Effects) -> None:
        """Accept ``leader`` (owner of ``ballot`` >= our promise) as the current leader."""
        if ballot > self.promised:
            self._promise(ballot, effects)
        if self.role is not Role.FOLLOWER:
            self._become(Role.FOLLOWER, "StepDown")
        self.leader_hint = leader
        self.leader_heard_tick = self.now
        self.election_deadline = self.now + self._election_timeout()

    def _learn_commit(self, ballot: Ballot, leader_commit: int, truncate_index: int,
                      effects: Effects) -> None:
        """Advance over slots up to the leader's commit point whose entry carries the
        leader's ballot: only those are certainly the values it chose. Fetch the rest."""
        self.leader_commit_seen = max(self.leader_commit_seen, leader_commit)
        self.truncate_hint = max(self.truncate_hint, min(truncate_index, leader_commit))
        slot = self.commit_index
        while slot + 1 <= leader_commit:
            entry = self.log.get(slot + 1)
            if entry is None or entry.ballot != ballot:
                break
            slot += 1
        if slot > self.commit_index:
            self._commit_to(slot, effects)
        self._maybe_request_catchup(effects)

    def _maybe_request_catchup(self, effects: Effects) -> None:
        if (
            self.role is Role.FOLLOWER
            and self.leader_hint is not None
            and self.commit_index < self.leader_commit_seen
            and self.catchup_sent_tick is None
            and self.transfer is None
        ):
            self._request_catchup(self.leader_hint, effects)

    def _request_catchup(self, target: int, effects: Effects) -> None:
        """RequestCatchup: ask ``target`` for committed slots after our commit point."""
        if self.transfer is not None:
            # A transfer in progress brings us past the cut; its own retries go on. A
            # catch-up request now would start a fresh stream and waste what we staged.
            return
        self.catchup_sent_tick = self.now
        effects.send.append((target, CatchupRequest(self.promised, self.commit_index + 1)))
        self._trace(effects, "RequestCatchup", None, None, target=target)

    def handle_catchup_request(self, source: int, message: CatchupRequest, effects: Effects) -> None:
        """HandleCatchupRequest: any replica serves its committed slots, in bounded chunks,
        or its snapshot when the slots asked for are already dropped."""
        if message.from_slot < 1 or message.from_slot > self.commit_index:
            return self._drop("nothing_to_send")
        if message.from_slot <= self.log_start:
            # The slots asked for are cut: start a state transfer (a fresh, full stream).
            self._serve_transfer(source, SnapshotRequest(self.promised, 0, 0, None, None,
                                                         self.config.transfer_window), effects,
                                 newer_than=message.from_slot - 1)
            self._trace(effects, "HandleCatchupRequest", source, message)
            return
        entries = []
        size = 0
        # At most log_slots_max slots: the receiver refuses entries further than that
        # above its commit point (its memory bound), and would drop the whole reply.
        last = min(self.commit_index, message.from_slot - 1 + self.config.log_slots_max)
        for slot in range(message.from_slot, last + 1):
            entry = self.log[slot]
            entry_size = BATCH_OVERHEAD_BYTES + sum(command_size_bytes(c) for c in entry.batch)
            if entries and size + entry_size > self.config.catchup_bytes_max:
                break
            entries.append(entry)
            size += entry_size
        effects.send.append((source, CatchupReply(self.promised, tuple(entries), self.commit_index)))
        self._trace(effects, "HandleCatchupRequest", source, message)

    def handle_catchup_reply(self, source: int, message: CatchupReply, effects: Effects) -> None:
        """HandleCatchupReply: take committed entries that extend our committed prefix."""
        if self.role is Role.LEADER:
            # A leader re-proposed every open slot when elected; it never needs these.
            return self._drop("leader_needs_no_catchup")
        if not self._entries_in_range(message.entries):
            return self._drop("bad_entries")
        self.catchup_sent_tick = None
        taken = []
        slot = self.commit_index
        for entry in message.entries:
            if entry.slot != slot + 1 or entry.slot > message.commit_index:
                continue
            current = self.log.get(entry.slot)
            if current is not None and current.batch == entry.batch and current.ballot > entry.ballot:
                # Keep the higher ballot we accepted the same value in: lowering it could
                # hide from a later phase 1 that this acceptor was in the choosing quorum.
                entry = current
            taken.append(entry)
            slot = entry.slot
        if taken:
            for entry in taken:
                self.log[entry.slot] = entry
            effects.persist.append(SaveEntries(tuple(taken)))
            first_event = len(effects.trace)
            self._commit_to(slot, effects)
            self._trace(effects, "HandleCatchupReply", source, message, before=first_event)
        else:
            self._drop("catchup_not_contiguous")
        # Fetch up to the commit point the leader last announced, not the one this reply
        # carries: under load that point moves on with every batch, and chasing it would
        # cost a round trip per batch. The next heartbeat announces the next target.
        if self.commit_index < self.leader_commit_seen:
            self._request_catchup(source, effects)

    # ------------------------------------------------------- state transfer

    def handle_snapshot_request(self, source: int, message: SnapshotRequest,
                                effects: Effects) -> None:
        """HandleSnapshotRequest: send the next chunks of a transfer stream."""
        if not 1 <= message.credits <= self.config.transfer_window:
            return self._drop("bad_credits")
        sent_before = len(effects.send)
        self._serve_transfer(source, message, effects)
        if len(effects.send) > sent_before:
            # Traced only when it sent chunks: one without an image to serve sends nothing.
            self._trace(effects, "HandleSnapshotRequest", source, message)

    def _serve_transfer(self, source: int, request: SnapshotRequest, effects: Effects,
                        newer_than: int = 0) -> None:
        image = self._image(request.image_index, max(newer_than, request.image_index))
        cursor = request.cursor
        base, split = request.base, request.split
        if image.index != request.image_index:
            # Not the image asked for: a newer one, from its start. The receiver keeps what
            # it staged (the rows below ``split`` as of ``base``) when this image still has
            # every tombstone since ``base``; otherwise it must start over (a full stream).
            cursor = None
            base, split = resume_point(request.image_index, base, split, request.cursor)
            if split is None or base <= 0 or image.tombstone_horizon > base or image.index <= base:
                base, split = 0, None
        if image.index <= newer_than:
            return self._drop("no_newer_image")
        for _ in range(request.credits):
            rows, next_cursor = read_chunk(image, cursor, base, split,
                                           self.config.transfer_chunk_bytes,
                                           self.config.transfer_scan_rows_max)
            effects.send.append((source, SnapshotChunk(
                self.promised, image.index, image.digest, base, split, cursor, next_cursor, rows)))
            if next_cursor is None:
                break
            cursor = next_cursor

    def _image(self, index: int, newer_than: int) -> StateImage:
        """The open image at ``index``, else one opened within ``image_reuse_ticks`` that is
        newer than ``newer_than`` (so many receivers share one), else a new image of the
        current rows. At most ``images_max`` are open; the least recently used is closed."""
        if index in self.images:
            image, opened, _ = self.images[index]
        else:
            recent = [i for i, (_, opened, _) in self.images.items()
                      if i > newer_than and self.now - opened < self.config.image_reuse_ticks]
            if recent:
                image, opened, _ = self.images[max(recent)]
            else:
                while len(self.images) >= self.config.images_max:
                    oldest = min(self.images, key=lambda i: self.images[i][2])
                    self.images.pop(oldest)[0].close()
                image, opened = self.kvs.rows.image(), self.now
                if image.index in self.images:
                    image.close()
                    image, opened, _ = self.images[image.index]
        self.images[image.index] = (image, opened, self.now)
        return image

    def _close_idle_images(self) -> None:
        for index in [i for i, (_, _, used) in self.images.items()
                      if self.now - used >= self.config.image_idle_ticks]:
            self.images.pop(index)[0].close()

    def handle_snapshot_chunk(self, source: int, message: SnapshotChunk, effects: Effects) -> None:
        """HandleSnapshotChunk: stage a chunk of a transfer; install after the last one."""
        if self.role is Role.LEADER:
            return self._drop("leader_needs_no_catchup")
        transfer = self.transfer
        reset = False
        stream = (message.image_index, message.base, message.split)
        if transfer is not None and stream == (transfer.image_index, transfer.base, transfer.split):
            if message.cursor != transfer.cursor:
                # A duplicate of a chunk taken already, or one ahead of our cursor (an
                # earlier chunk was lost or reordered), which waits in the bounded buffer.
                if cursor_order(message.cursor) < cursor_order(transfer.cursor):
                    return self._drop("chunk_duplicate")
                if message.cursor in self.transfer_buffer or \
                        len(self.transfer_buffer) >= self.config.transfer_window:
                    return self._drop("chunk_not_next")
                self.transfer_buffer[message.cursor] = message
                self.transfer_heard_tick = self.now  # the stream is alive, only out of order
                if len(self.transfer_buffer) >= 2 and self.transfer_gap_asked != transfer.cursor:
                    # Two later chunks arrived and ours did not: it was lost, not reordered
                    # (TCP's fast retransmit reasons alike). Ask for it alone, once, now,
                    # instead of waiting for the retry timer.
                    self.transfer_gap_asked = transfer.cursor
                    effects.send.append((transfer.source, SnapshotRequest(
                        self.promised, transfer.image_index, transfer.base, transfer.split,
                        transfer.cursor, 1)))
                    self._trace(effects, "RequestSnapshot", None, None, target=transfer.source)
                return
        elif message.cursor is not None or message.image_index <= self.commit_index:
            return self._drop("stale_chunk")
        elif message.split is None:
            # The start of a full stream: begin (or begin again) from nothing. While a
            # transfer runs, only its source may restart it (the answer to our request
            # when it cannot serve what we staged); anything else would throw away what
            # we staged for a stream nobody asked for.
            if transfer is not None and (message.image_index <= transfer.image_index
                                         or source != transfer.source):
                return self._drop("stale_chunk")
            reset = True
        elif transfer is None or message.image_index <= transfer.image_index or \
                (message.base, message.split) != resume_point(
                    transfer.image_index, transfer.base, transfer.split, transfer.cursor):
            return self._drop("stale_chunk")
        if reset or transfer is None or stream != (transfer.image_index, transfer.base,
                                                   transfer.split):
            if reset:
                self.staging.clear()
                # A fresh stream answers a CatchupRequest, which asks for a whole window.
                self.transfer_credits = self.config.transfer_window
            self.transfer_buffer = {}
            self.transfer = Transfer(source, message.image_index, message.digest, message.base,
                                     message.split, None)
        self.transfer_heard_tick = self.now
        self.transfer_retries = 0
        self._take_chunk(message)
        while self.transfer is not None and self.transfer.cursor in self.transfer_buffer:
            self._take_chunk(self.transfer_buffer.pop(self.transfer.cursor))
        effects.persist.append(SaveStaged(self.transfer, reset, self.staging.digest,
                                          self.staging.take_changes()))
        self._trace(effects, "HandleSnapshotChunk", source, message)
        transfer = self.transfer
        if transfer.cursor is None:
            self._finish_transfer(effects)
        elif self.transfer_credits <= 0:
            self._request_chunks(effects, self.config.transfer_window)

    def _take_chunk(self, chunk: SnapshotChunk) -> None:
        """Stage one chunk: in the stream's full part, the staged rows in the chunk's range
        become exactly the chunk's rows; in the resumed part, each row replaces ours."""
        transfer = self.transfer
        assert chunk.cursor == transfer.cursor, "chunks are taken in stream order"
        stage_chunk(self.staging, transfer.split, chunk.cursor, chunk.next_cursor, chunk.rows)
        self.transfer = transfer._replace(cursor=chunk.next_cursor)
        self.transfer_credits -= 1

    def _finish_transfer(self, effects: Effects) -> None:
        transfer = self.transfer
        if self.staging.digest != transfer.digest:
            # Something staged is not the image: never install it. Start over.
            self._drop("transfer_digest_mismatch")
            self.transfer = None
            self.staging.clear()
            effects.persist.append(SaveStaged(None, True, 0, ()))
            self.leader_commit_seen = max(self.leader_commit_seen, transfer.image_index)
            self._request_catchup(transfer.source, effects)
            return
        if transfer.image_index <= self.commit_index:
            # We caught up through the log meanwhile: the staged rows are not needed.
            self._drop("transfer_overtaken")
            self.transfer = None
            self.staging.clear()
            effects.persist.append(SaveStaged(None, True, 0, ()))
            return
        self.install_snapshot(transfer, effects)

    def install_snapshot(self, transfer: Transfer, effects: Effects) -> None:
        """InstallSnapshot: the verified staged rows become the KVS at the image's slot."""
        index = transfer.image_index
        # Rows of the old store that were never persisted are replaced anyway.
        self.kvs.rows.take_changes()
        old = self.kvs.rows
        self.kvs = KeyValueStore(self.staging)
        self.kvs.rows.index = index
        self.kvs.rows.tombstone_horizon = index
        self.staging = old
        self.staging.clear()
        self.transfer = None
        self.transfer_buffer = {}
        effects.persist.append(SaveInstall(index, transfer.digest))
        self.transfers_installed += 1
        self.rows_persisted_index = index
        self.log_start = max(self.log_start, index)
        for slot in [s for s in self.log if s <= index]:
            del self.log[slot]
        self.applied_bytes = {}  # every slot applied before is at or below the image
        self.applied_bytes_total = 0
        self.commit_index = self.applied_index = index
        self._trace(effects, "InstallSnapshot", None, None)
        if self.leader_commit_seen > self.commit_index:
            self._request_catchup(transfer.source, effects)

    def _request_chunks(self, effects: Effects, credits: int) -> None:
        transfer = self.transfer
        self.transfer_credits = credits
        self.transfer_heard_tick = self.now
        effects.send.append((transfer.source, SnapshotRequest(
            self.promised, transfer.image_index, transfer.base, transfer.split, transfer.cursor,
            credits)))
        self._trace(effects, "RequestSnapshot", None, None, target=transfer.source)

    def _retry_transfer(self, effects: Effects) -> None:
        """No chunk for a while: ask again from our cursor; only the missing chunk when
        later ones wait in the buffer. After a few silent tries, ask another replica."""
        self.transfer_retries += 1
        if self.transfer_retries > self.config.transfer_retries_per_source:
            others = [r for r in self.peers if r != self.transfer.source]
            if self.leader_hint is not None and self.leader_hint != self.transfer.source:
                source = self.leader_hint
            else:
                source = others[self.rng.randrange(len(others))] if others else self.transfer.source
            self.transfer = self.transfer._replace(source=source)
            self.transfer_retries = 0
            self.transfer_buffer = {}
        self._request_chunks(effects, 1 if self.transfer_buffer else self.config.transfer_window)

    def _commit_to(self, slot: int, effects: Effects) -> None:
        assert slot > self.commit_index, "the commit point only moves forward"
        for s in range(self.commit_index + 1, slot + 1):
            assert s in self.log, "a committed slot is held"
        self.commit_index = slot
        self._apply_committed(effects)
        self._maybe_snapshot(effects)

    def _apply_committed(self, effects: Effects) -> None:
        """Apply committed slots in order; the leader answers the clients."""
        leading = self.role is Role.LEADER
        for slot in range(self.applied_index + 1, self.commit_index + 1):
            for command in self.log[slot].batch:
                result = self.kvs.apply(command, slot)
                effects.applied.append(Applied(slot, command, result))
                self.in_progress.discard((command.client_id, command.request_id))
                if leading:
                    effects.reply.append(
                        ClientReply(command.client_id, command.request_id, ReplyStatus.OK,
                                    result, self.replica_id)
                    )
            self.applied_index = slot
            self._hold_applied(slot)

    def _hold_applied(self, slot: int) -> None:
        size = BATCH_OVERHEAD_BYTES + sum(command_size_bytes(c) for c in self.log[slot].batch)
        self.applied_bytes[slot] = size
        self.applied_bytes_total += size

    def _release_applied(self, slot: int) -> None:
        self.applied_bytes_total -= self.applied_bytes.pop(slot, 0)

    def _maybe_snapshot(self, effects: Effects) -> None:
        """Every ``snapshot_slots`` applied slots, cut the log below what every replica has
        applied, or below our own applied point when the log has grown past
        ``log_slots_max`` slots or ``log_bytes_max`` bytes (a slow replica then receives
        the state by transfer). The KVS rows are persisted first, in the same batch, so
        they always cover the cut."""
        over_bytes = self.applied_bytes_total > self.config.log_bytes_max
        if self.applied_index - self.log_start < self.config.snapshot_slots and not over_bytes:
            return
        hint = self._leader_truncate_index() if self.role is Role.LEADER else self.truncate_hint
        log_start = max(self.log_start, min(hint, self.applied_index))
        forced = over_bytes or \
            self.applied_index - log_start > self.config.log_slots_max - self.config.window_slots
        if forced:
            log_start = self.applied_index
            if self.images and self.applied_bytes_total <= self.config.transfer_log_bytes_max:
                # A replica we are sending an image to will next need the slots after it:
                # keep them (up to transfer_log_slots_max and transfer_log_bytes_max), or
                # under load it would finish the transfer behind the cut again and start
                # over, never catching up.
                keep_from = max(min(self.images),
                                self.applied_index - self.config.transfer_log_slots_max)
                log_start = max(self.log_start, min(log_start, keep_from))
                if log_start - self.log_start < self.config.snapshot_slots:
                    return
        elif log_start - self.log_start < self.config.snapshot_slots:
            return  # cut in steps of snapshot_slots, not one record per slot
        self.kvs.rows.drop_tombstones_below(self.applied_index - self.config.tombstone_slots)
        self._persist_rows(effects)
        for slot in range(self.log_start + 1, log_start + 1):
            self.log.pop(slot, None)
            self._release_applied(slot)
        self.log_start = log_start
        effects.persist.append(SaveTruncate(log_start))
        self._trace(effects, "TruncateLog", None, None, slot=log_start)

    def _persist_rows(self, effects: Effects) -> None:
        """SaveRows: what applying committed slots changed in the KVS rows."""
        if self.applied_index == self.rows_persisted_index:
            return
        rows = self.kvs.rows
        effects.persist.append(SaveRows(self.applied_index, rows.digest, rows.tombstone_horizon,
                                        rows.take_changes()))
        self.rows_persisted_index = self.applied_index
        self.rows_persisted_tick = self.now

    # --------------------------------------------------------------- helpers

    def _promise(self, ballot: Ballot, effects: Effects) -> None:
        assert ballot >= self.promised, "a promise never goes back"
        if ballot > self.promised:
            self.promised = ballot
            effects.persist.append(SavePromise(ballot))

    def _become(self, role: Role, action: str) -> None:
        target = TRANSITIONS.get((self.role, action))
        assert target is role, f"no transition {self.role.name} --{action}--> {role.name}"
        if self.role is Role.LEADER:
            # Commands queued here were never proposed: clients retry at the next leader.
            self.pending.clear()
            self.pending_bytes = 0
            self.in_progress.clear()
            self.acks = {}
            self.accept_sent_tick = {}
            self.accept_retries = {}
            self.open_bytes = {}
        self.role = role

    def _election_timeout(self) -> int:
        return self.rng.randrange(self.config.election_ticks, 2 * self.config.election_ticks)

    def _leader_alive(self) -> bool:
        if self.role is Role.LEADER:
            return True
        return (
            self.leader_hint is not None
            and self.now - self.leader_heard_tick < self.config.election_ticks
        )

    def _entries_above(self, slot: int) -> tuple[Entry, ...]:
        return tuple(self.log[s] for s in sorted(self.log) if s > slot)

    def _entries_in_range(self, entries: tuple[Entry, ...]) -> bool:
        """Entries a peer reports must fit our memory bound and hold valid commands."""
        limit = self.commit_index + self.config.log_slots_max
        return all(
            1 <= entry.slot <= limit and all(valid_command(c) is None for c in entry.batch)
            for entry in entries
        )

    def _drop(self, reason: str) -> None:
        self.drops[reason] += 1

    def _finish_step(self, effects: Effects) -> None:
        # The KVS rows on disk are derived from the log (acknowledged writes are safe in a
        # quorum's log records), so saving them never delays a reply: they ride along with
        # records that must be written anyway, or go alone on a tick after
        # ``commit_hint_ticks``. The log is never cut above rows on disk (_maybe_snapshot
        # saves them first), so a restart replays what the rows miss.
        if self.applied_index > self.rows_persisted_index and (
            effects.persist or self.now - self.rows_persisted_tick >= self.config.commit_hint_ticks
        ):
            self._persist_rows(effects)
        # The commit point on disk is only a hint for a faster restart (the chosen values
        # are safe in the acceptors' logs either way), so it rides along with records
        # that must be written anyway and never costs a sync of its own, except on a
        # tick after ``commit_hint_ticks`` of silence.
        if self.commit_index > self.commit_persisted and (
            effects.persist or self.now - self.commit_persisted_tick >= self.config.commit_hint_ticks
        ):
            effects.persist.append(SaveCommit(self.commit_index))
            self.commit_persisted = self.commit_index
            self.commit_persisted_tick = self.now
        self.check_invariants()

    def check_invariants(self) -> None:
        """TigerBeetle-style: re-checked after every step; each assertion says one thing."""
        assert self.applied_index == self.commit_index, "committed slots are applied at once"
        assert self.log_start <= self.applied_index, "the log is cut only below applied slots"
        assert self.rows_persisted_index <= self.applied_index, "rows persisted are applied"
        assert self.kvs.rows.index <= self.applied_index, "the rows hold applied slots only"
        if self.transfer is not None:
            assert self.role is not Role.LEADER, "a leader never receives a transfer"
            assert len(self.transfer_buffer) <= self.config.transfer_window, "buffer bounded"
        else:
            assert not self.transfer_buffer, "no chunks buffered without a transfer"
        assert len(self.images) <= self.config.images_max, "open images are bounded"
        self.steps += 1
        assert self.log_start not in self.log and self.commit_index - self.log_start <= len(self.log) \
            or self.commit_index == self.log_start, "committed slots above the cut are held"
        if self.steps % self.config.invariant_full_scan_steps == 0:
            # The checks that walk the whole log (up to log_slots_max entries) run every
            # invariant_full_scan_steps steps: every step, they were a fifth of the
            # leader's CPU. The tests run them every step (the harness sets 1).
            assert all(slot > self.log_start for slot in self.log), "no entry below the cut"
            for slot in range(self.log_start + 1, self.commit_index + 1):
                assert slot in self.log, "every committed slot above the cut is held"
            assert set(self.applied_bytes) == set(range(self.log_start + 1, self.applied_index + 1)), \
                "the held bytes are counted for exactly the applied slots held"
            assert self.applied_bytes_total == sum(self.applied_bytes.values()), "bytes add up"
            # Committed entries may come from catch-up in a ballot we never promised; the
            # ones still open were accepted here, under our promise.
            assert all(entry.ballot <= self.promised for slot, entry in self.log.items()
                       if slot > self.commit_index), "no open entry was accepted above our promise"
        assert len(self.pending) <= self.config.pending_commands_max, "the queue is bounded"
        if self.role is Role.LEADER:
            assert self.promised.replica == self.replica_id, "a leader leads its own ballot"
            assert self.next_slot > self.commit_index, "the next slot is open"
            for slot in range(self.commit_index + 1, self.next_slot):
                assert self.log[slot].ballot == self.promised, "open slots carry our ballot"
                assert slot in self.acks, "open slots are tracked"
        else:
            assert not self.pending, "only a leader queues commands"
        if self.role is Role.CANDIDATE:
            assert self.promised.replica == self.replica_id, "a candidate runs its own ballot"
        # Committed slots held: at most log_slots_max after a cut plus snapshot_slots
        # until the next; uncommitted ones: Accepts beyond log_slots_max are refused.
        assert len(self.log) <= 2 * self.config.log_slots_max + self.config.snapshot_slots \
            + self.config.transfer_log_slots_max, "memory stays bounded"

    # ---------------------------------------------------------------- tracing

    def spec_state(self) -> dict:
        """This replica's state in the variables of spec/LowPaxos.tla."""
        return {
            "role": self.role.value,
            "promised": list(self.promised),
            "log": {
                str(slot): [list(entry.ballot), batch_id(entry.batch)]
                for slot, entry in sorted(self.log.items())
            },
            "commit_index": self.commit_index,
            "log_start": self.log_start,
        }

    def _trace(self, effects: Effects, action: str, source: int | None, message: object,
               slot: int | None = None, target: int | None = None,
               before: int | None = None) -> None:
        """Record one spec action. ``before`` puts the event ahead of the events from that
        position on: a handler whose step also sends a CatchupRequest comes first in the
        trace, as the RequestCatchup action follows the receive in the spec; the state
        is the same either way, since RequestCatchup changes no spec variable."""
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
        """Drivers that write traces describe sent messages with this (see below)."""
        return describe_message(message)

    _HANDLERS = {
        Prepare: handle_prepare,
        Promise: handle_promise,
        Accept: handle_accept,
        Accepted: handle_accepted,
        Reject: handle_reject,
        Heartbeat: handle_heartbeat,
        HeartbeatReply: handle_heartbeat_reply,
        CatchupRequest: handle_catchup_request,
        CatchupReply: handle_catchup_reply,
        SnapshotRequest: handle_snapshot_request,
        SnapshotChunk: handle_snapshot_chunk,
    }


def describe_message(message: object) -> dict:
    """A message as plain data for traces: batches appear as their batch ids."""
    fields: dict = {"type": type(message).__name__}
    for name in message.__slots__:  # type: ignore[attr-defined]
        value = getattr(message, name)
        if name == "batch":
            fields["value"] = batch_id(value)
        elif name == "entries":
            fields[name] = [[e.slot, list(e.ballot), batch_id(e.batch)] for e in value]
        elif name == "rows":
            fields[name] = len(value)
        elif isinstance(value, tuple):
            fields[name] = list(value)
        else:
            fields[name] = value
    return fields


__all__ = ["LowPaxosReplica", "Role", "TRANSITIONS", "batch_id", "describe_message"]
