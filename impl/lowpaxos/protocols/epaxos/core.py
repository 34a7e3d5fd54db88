"""The EPaxos replica (Moraru, Andersen, Kaminsky, SOSP 2013; CMU-PDL-13-111) as a
sans-I/O core, with the recovery fixed after Sutra (2019) and EPaxos* (Ryabinin,
Gotsman, Sutra, OPODIS 2025).

Theory of operation
-------------------
Every replica leads instances in its own instance space: the i-th instance of
replica R is ``(R, i)``. An instance holds a batch of client commands and two
attributes: ``seq`` (1 + the highest seq of the interfering instances known) and
``deps``, a vector (``deps[R] = d``: depends on every (R, j), j <= d). Two commands
interfere when they touch a common key and one writes (dbsize and scan read every
key); two commands of one client interfere too (both write its session row, see
``Conflicts``). Each replica keeps per instance the promised ``ballot`` and the
``vballot`` of the value held: two variables, never one (Sutra 2019).

* Phase 1, PreAccept (SOSP §4.3, Figure 2): the command leader L picks the next
  instance, computes seq and deps from its conflict tables (deps[L] = i - 1: the
  instances of one space are chained), persists and sends PreAccept to the other
  members of the fast quorum (thrifty, the closest first). An acceptor merges its
  own conflicts, persists, and answers PreAcceptOK with ``unchanged`` when it added
  nothing (at the initial ballot).
* Fast path: 2F replicas (L included; ``config.fast_quorum_size``) agree, all at the
  initial ballot and unchanged: L commits after one round trip. Otherwise the slow
  path: seq = max, deps = union over a majority's replies, then Phase 2 (Accept to
  all, F AcceptOKs plus L's own) and Commit.
* Commit: persisted, then sent to every replica. A client's reply leaves when its
  command executes at the replica the client asked.
* Execution (SOSP §4.3.2, graph.py): once everything a committed instance depends on
  transitively is committed, the strongly connected components (iterative Tarjan)
  execute in reverse topological order, inside one by (seq, replica, instance).
* Recovery (TR §4.5, explicit prepare, separate ballots): an instance this replica
  waits on stays uncommitted past a randomized timeout: Prepare at a higher ballot;
  with F + 1 PrepareOKs (its own included) the recoverer decides by the five cases
  of ``decide_recovery``. With fast quorum 2F the third case needs no TryPreAccept
  (docs/epaxos.md gives the argument).
* Frontiers (Status): every few ticks a replica tells the others how far it has
  executed and committed each instance space. Each re-sends Commits of its own
  instances the other lacks, and every replica collects (drops from memory and
  disk, after saving the KVS rows) the instances that every replica has executed.

Handlers carry the names of spec/EPaxos.tla's actions (the contract of issue 9);
each first drops bad or stale input with a counted reason, then changes state, and
the replica re-checks its invariants after every step.
"""

from __future__ import annotations

import random
from collections import Counter, deque

from lowpaxos.core.api import Applied, ClientReply, ClientRequest, Command, Effects, ReplyStatus
from lowpaxos.kvs import KeyValueStore, valid_command
from lowpaxos.protocols.common import batch_id, command_size_bytes, take_batch
from lowpaxos.protocols.epaxos.config import EPaxosConfig
from lowpaxos.protocols.epaxos.durable import EPaxosDurableState, vector
from lowpaxos.protocols.epaxos.graph import plan_execution
from lowpaxos.protocols.epaxos.messages import (
    INSTANCE_MAX,
    NOP,
    Accept,
    AcceptOK,
    Ballot,
    Batch,
    Commit,
    Deps,
    Inst,
    InstanceRecord,
    InstanceStatus,
    Nack,
    PreAccept,
    PreAcceptOK,
    Prepare,
    PrepareOK,
    SaveCollect,
    SaveInstance,
    SaveRows,
    Status,
    initial_ballot,
    instance_key,
)

NONE = InstanceStatus.NONE
PREACCEPTED = InstanceStatus.PREACCEPTED
ACCEPTED = InstanceStatus.ACCEPTED
COMMITTED = InstanceStatus.COMMITTED
EXECUTED = InstanceStatus.EXECUTED
DONE = frozenset({COMMITTED, EXECUTED})

# Every status change an instance may make; any other change is a bug. A higher ballot
# may replace a pre-accepted or accepted value (recovery, TR §4.5); a committed value
# never changes (SOSP §4.5, stability).
TRANSITIONS: frozenset[tuple[InstanceStatus, InstanceStatus]] = frozenset({
    (NONE, PREACCEPTED), (NONE, ACCEPTED), (NONE, COMMITTED),
    (PREACCEPTED, PREACCEPTED), (PREACCEPTED, ACCEPTED), (PREACCEPTED, COMMITTED),
    (ACCEPTED, PREACCEPTED), (ACCEPTED, ACCEPTED), (ACCEPTED, COMMITTED),
    (COMMITTED, EXECUTED),
})

# Tombstones serve state transfer, which EPaxos does not do (collection waits for every
# replica instead): drop them all when the rows are saved.
TOMBSTONES_ALL = 1 << 62
ALL_KEYS = "*"
READ_OPS = frozenset({"get", "strlen", "mget", "dbsize", "scan"})


class Instance:
    """One instance as this replica holds it (mutable; durable as an InstanceRecord)."""

    __slots__ = ("inst", "status", "ballot", "vballot", "batch", "seq", "deps", "unchanged",
                 "commit_tick")

    def __init__(self, inst: Inst, status: InstanceStatus, ballot: Ballot, vballot: Ballot,
                 batch: Batch | None, seq: int, deps: Deps, unchanged: bool) -> None:
        self.inst = inst
        self.status = status
        self.ballot = ballot
        self.vballot = vballot
        self.batch = batch
        self.seq = seq
        self.deps = deps
        self.unchanged = unchanged
        self.commit_tick = 0

    def record(self) -> InstanceRecord:
        status = COMMITTED if self.status is EXECUTED else self.status
        return InstanceRecord(self.inst, status.value, self.ballot, self.vballot, self.batch,
                              self.seq, self.deps, self.unchanged)


class Drive:
    """Volatile bookkeeping of an instance this replica drives, as its command leader or
    as a recoverer: the phase, the ballot, the value proposed and the replies so far."""

    __slots__ = ("inst", "ballot", "phase", "recovery", "batch", "seq", "deps", "initial",
                 "replies", "sent_tick")

    def __init__(self, inst: Inst, ballot: Ballot, phase: str, recovery: bool, now: int) -> None:
        self.inst = inst
        self.ballot = ballot
        self.phase = phase  # "preaccept", "accept" or "prepare"
        self.recovery = recovery
        self.batch: Batch | None = None
        self.seq = 0
        self.deps: Deps = ()
        self.initial: tuple[int, Deps] | None = None  # the leader's attributes (fast path)
        self.replies: dict[int, object] = {}
        self.sent_tick = now


def footprint(batch: Batch) -> tuple[set[str], set[str], bool, bool, set[int]]:
    """(keys read, keys written, reads every key, writes some key, clients) of a batch."""
    reads: set[str] = set()
    writes: set[str] = set()
    read_all = False
    for command in batch:
        op = command.op
        if op in ("dbsize", "scan"):
            read_all = True
        elif op == "mget":
            reads.update(command.keys)
        elif op == "mset":
            writes.update(key for key, _ in command.pairs)
        elif op in READ_OPS:
            reads.add(command.key)
        else:
            writes.add(command.key)
    return reads, writes, read_all, bool(writes), {command.client_id for command in batch}


def batch_keys(batch: Batch) -> dict:
    """The trace's "keys" of a batch: what it reads and writes ("*": every key) and the
    clients whose session rows it writes (one client's instances interfere, Conflicts),
    so that checkers decide interference from the trace alone."""
    reads, writes, read_all, _, clients = footprint(batch)
    read = sorted(reads | ({ALL_KEYS} if read_all else set()))
    return {"read": read, "write": sorted(writes), "clients": sorted(clients)}


class Conflicts:
    """The conflict tables (SOSP §4.3; the reference implementation's per-key maps):
    for each key, per instance space R, the highest instance of R that reads it and
    the highest that writes it, and the highest seq of each kind. Instances of one
    client also interfere with each other: each writes the client's session row (the
    KVS's at-most-once table, kvs.py), which must see one order of them everywhere,
    or a replica that saw a later request first would skip an earlier one as stale.

    Entries are never dropped: there is one per key and client ever touched, the order
    of the KVS's own rows; and an instance that depends on every earlier interfering
    one, collected or not, keeps the consistency property checkable from the trace
    (SOSP §4.5). A restarted replica has lost the entries of collected instances:
    ``floor`` (its collected frontier at the restart) stands for them in the batches it
    proposes, each depending on all of them (they executed everywhere, so this orders
    nothing new). Only the leader applies it: the leader's deps reach every committed
    value of its instance, and an acceptor adding the floor would only turn replies
    "changed" and cost the fast path."""

    def __init__(self, replicas: int, floor: tuple[int, ...] | None = None) -> None:
        self.replicas = replicas
        self.floor = tuple(floor) if floor is not None and any(floor) else None
        self.read_inst: dict[str, list[int]] = {}
        self.write_inst: dict[str, list[int]] = {}
        self.read_seq: dict[str, int] = {}
        self.write_seq: dict[str, int] = {}
        self.read_all_inst = [0] * replicas
        self.read_all_seq = 0
        self.write_any_inst = [0] * replicas
        self.write_any_seq = 0
        self.client_inst: dict[int, list[int]] = {}
        self.client_seq: dict[int, int] = {}

    def attributes(self, batch: Batch, skip: int, floor: bool = False
                   ) -> tuple[int, list[int]]:
        """(1 + the highest seq, deps) of the interfering instances known, instance space
        ``skip`` left out (its leader's own chain covers it; TR §4.3); ``floor``: the
        leader's, above the collected instances this replica no longer has entries for."""
        reads, writes, read_all, write_any, clients = footprint(batch)
        deps = [0] * self.replicas
        top = 0
        zero = (0,) * self.replicas
        if floor and self.floor is not None and batch:
            deps = list(self.floor)

        def merge(numbers) -> None:
            for replica, number in enumerate(numbers):
                if number > deps[replica]:
                    deps[replica] = number

        for key in writes:
            merge(self.write_inst.get(key, zero))
            merge(self.read_inst.get(key, zero))
            top = max(top, self.write_seq.get(key, 0), self.read_seq.get(key, 0))
        if writes:
            merge(self.read_all_inst)
            top = max(top, self.read_all_seq)
        for key in reads:
            merge(self.write_inst.get(key, zero))
            top = max(top, self.write_seq.get(key, 0))
        if read_all:
            merge(self.write_any_inst)
            top = max(top, self.write_any_seq)
        for client in clients:
            merge(self.client_inst.get(client, zero))
            top = max(top, self.client_seq.get(client, 0))
        deps[skip] = 0
        return (top + 1 if batch else 0), deps

    def record(self, inst: Inst, batch: Batch, seq: int) -> None:
        replica, number = inst
        reads, writes, read_all, write_any, clients = footprint(batch)

        def raise_to(table: dict, key) -> None:
            numbers = table.get(key)
            if numbers is None:
                numbers = table[key] = [0] * self.replicas
            if number > numbers[replica]:
                numbers[replica] = number

        for key in reads:
            raise_to(self.read_inst, key)
            self.read_seq[key] = max(self.read_seq.get(key, 0), seq)
        for key in writes:
            raise_to(self.write_inst, key)
            self.write_seq[key] = max(self.write_seq.get(key, 0), seq)
        if read_all:
            self.read_all_inst[replica] = max(self.read_all_inst[replica], number)
            self.read_all_seq = max(self.read_all_seq, seq)
        if write_any:
            self.write_any_inst[replica] = max(self.write_any_inst[replica], number)
            self.write_any_seq = max(self.write_any_seq, seq)
        for client in clients:
            raise_to(self.client_inst, client)
            self.client_seq[client] = max(self.client_seq.get(client, 0), seq)

    def size(self) -> int:
        return len(self.read_inst) + len(self.write_inst) + len(self.client_inst)


class EPaxosReplica:
    """One EPaxos replica (see the module docstring)."""

    def __init__(self, config: EPaxosConfig, replica_id: int, rng: random.Random,
                 durable: EPaxosDurableState | None = None, trace: bool = False) -> None:
        config.validate()
        assert 0 <= replica_id < config.replicas, "replica id within the cluster"
        self.config = config
        self.replica_id = replica_id
        self.rng = rng
        self.trace_on = trace
        self.replicas = n = config.replicas
        self.f = config.f
        self.peers = tuple(r for r in range(n) if r != replica_id)
        # Thrifty (SOSP §4.3): the other members of our fast quorum, the closest first.
        self.fast_peers_needed = max(config.fast_quorum_size - 1, 0)
        self.fast_targets = config.peers_by_proximity(replica_id)[:self.fast_peers_needed]
        self.drops: Counter[str] = Counter()
        self.now = 0
        self.steps = 0
        durable = durable if durable is not None else EPaxosDurableState()

        self.kvs = KeyValueStore(durable.open_store())
        self.executed = list(vector(durable.executed, n))
        self.executed_count = durable.executed_count
        self.collected = list(vector(durable.collected, n))
        self.rows_persisted_count = self.executed_count
        self.rows_persisted_tick = 0
        self.conflicts = Conflicts(n, tuple(self.collected))
        self.instances: dict[Inst, Instance] = {}
        own_top = max(self.collected[replica_id], self.executed[replica_id])
        for record in durable.entries.values():
            inst = record.inst
            if inst[1] <= self.collected[inst[0]]:
                continue
            status = InstanceStatus(record.status)
            if status is COMMITTED and inst[1] <= self.executed[inst[0]]:
                status = EXECUTED  # the saved rows hold its effects
            instance = Instance(inst, status, record.ballot, record.vballot, record.batch,
                                record.seq, record.deps, record.unchanged)
            self.instances[inst] = instance
            if record.batch is not None:
                self.conflicts.record(inst, record.batch, record.seq)
            if inst[0] == replica_id:
                own_top = max(own_top, inst[1])
        self.next_number = own_top + 1
        self.committed_frontier = list(self.executed)
        for replica in range(n):
            self._advance_committed(replica)

        # Volatile state.
        self.drives: dict[Inst, Drive] = {}
        self.nack_round: dict[Inst, int] = {}  # highest ballot round heard in a Nack
        self.recovery_deadline: dict[Inst, int] = {}  # instances we wait on
        self.waiters: dict[Inst, set[Inst]] = {}  # blocked inst -> committed ones waiting
        self.own_open: set[int] = set()  # own instances proposed here, not committed
        self.proposed: dict[Inst, Batch] = {}  # own instances proposed, not executed
        self.pending: deque[Command] = deque()
        self.pending_bytes = 0
        self.in_progress: set[tuple[int, int]] = set()  # requests to answer on execution
        self.peer_executed = {peer: [0] * n for peer in self.peers}
        self.peer_committed = {peer: [0] * n for peer in self.peers}
        self.status_sent_tick = -(10**9)
        self.execute_on_first_tick = True  # committed instances above the saved rows
        # Metrics (protocol_metrics, info_fields).
        self.fast_commits = 0
        self.slow_commits = 0
        self.recovered_commits = 0
        self.recoveries_started = 0
        self.largest_component = 0
        self.execute_delay_max_ticks = 0
        self.execute_delay_sum_ticks = 0
        self.executed_here = 0
        for inst, instance in self.instances.items():
            if instance.status not in DONE:
                self._watch(inst)
        self.check_invariants()

    # ------------------------------------------------------------------ inputs

    def on_tick(self) -> Effects:
        effects = Effects()
        self.now += 1
        if self.execute_on_first_tick:
            # A restart: execute what was committed above the saved rows (traced here,
            # not in the constructor, so the Execute events reach the trace).
            self.execute_on_first_tick = False
            for inst in sorted(i for i, x in self.instances.items() if x.status is COMMITTED):
                self._execute_from(inst, effects)
        self._flush(effects, partial=True)
        self._retry_drives(effects)
        self._start_due_recoveries(effects)
        if self.now - self.status_sent_tick >= self.config.status_ticks:
            self.send_status(effects)
        self._finish_step(effects)
        return effects

    def on_client_request(self, request: ClientRequest) -> Effects:
        effects = Effects()
        self.handle_request(request, effects)
        self._finish_step(effects)
        return effects

    def on_message(self, source: int, message: object) -> Effects:
        effects = Effects()
        if not isinstance(source, int) or isinstance(source, bool) or source not in self.peers:
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

    # The status drivers read (core/api.py) under the names every protocol shares.

    def is_leader(self) -> bool:
        """Every EPaxos replica takes client commands itself (no forwarding)."""
        return True

    @property
    def leader_hint(self) -> int | None:
        """None: clients keep the replica they chose."""
        return None

    @property
    def commit_index(self) -> int:
        """The number of instances executed here (rises only while the core lives)."""
        return self.executed_count

    def info_fields(self) -> list[tuple[str, object]]:
        return [
            ("role", "replica"),
            ("leader_hint", ""),
            ("commit_index", self.executed_count),
            ("kvs_index", self.executed_count),
            ("kvs_digest", self.kvs.digest()),
            ("kvs_keys", self.kvs.rows.live_count(0)),
            ("log_start", sum(self.collected)),
            ("epaxos_executed", ",".join(map(str, self.executed))),
            ("epaxos_collected", ",".join(map(str, self.collected))),
            ("epaxos_instances_in_memory", len(self.instances)),
            ("epaxos_fast_commits", self.fast_commits),
            ("epaxos_slow_commits", self.slow_commits),
            ("epaxos_recovered_commits", self.recovered_commits),
            ("epaxos_recoveries", self.recoveries_started),
            ("epaxos_largest_scc", self.largest_component),
            ("epaxos_execute_delay_max_ticks", self.execute_delay_max_ticks),
            ("pending_commands", len(self.pending)),
        ]

    def protocol_metrics(self) -> dict[str, int | float]:
        """This incarnation's figures; the simulator sums counts and maxes maxima."""
        return {
            "fast_commits": self.fast_commits,
            "slow_commits": self.slow_commits,
            "recovered_commits": self.recovered_commits,
            "recoveries_started": self.recoveries_started,
            "largest_component": self.largest_component,
            "execute_delay_max_ticks": self.execute_delay_max_ticks,
            "execute_delay_sum_ticks": self.execute_delay_sum_ticks,
            "executed_count": self.executed_here,
        }

    # ------------------------------------------------------------- client path

    def handle_request(self, request: ClientRequest, effects: Effects) -> None:
        """A client command: answered from the session table if it already executed,
        else queued for the next instance this replica leads."""
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
        executed, result = self.kvs.session_result(command.client_id, command.request_id)
        if executed:
            effects.reply.append(ClientReply(command.client_id, command.request_id,
                                             ReplyStatus.OK, result, None))
            return
        if self.kvs.is_stale(command.client_id, command.request_id):
            return self._drop("stale_request")
        key = (command.client_id, command.request_id)
        if key in self.in_progress:
            return self._drop("duplicate_request")
        if len(self.pending) >= self.config.pending_commands_max:
            effects.reply.append(ClientReply(command.client_id, command.request_id,
                                             ReplyStatus.BUSY, None, None))
            return
        self.pending.append(command)
        self.pending_bytes += command_size_bytes(command)
        self.in_progress.add(key)
        self._flush(effects, partial=not self.config.batching)

    def _flush(self, effects: Effects, partial: bool) -> None:
        """Propose queued commands while the window has room: full batches always, a
        partial one only when ``partial`` (a tick, or batching off)."""
        while self.pending and len(self.own_open) < self.config.window_instances:
            batch, taken = take_batch(self.pending, self.pending_bytes, self.config.batching,
                                      self.config.batch_bytes_max, partial)
            if batch is None:
                return
            self.pending_bytes -= taken
            self.propose(batch, effects)

    def propose(self, batch: Batch, effects: Effects) -> None:
        """Propose (SOSP §4.3 Phase 1, steps 1-3): the next instance of our space, with
        seq and deps from our conflict tables, persisted, then PreAccept to the fast
        quorum's other members (thrifty)."""
        assert batch, "a proposed instance holds at least one command"
        inst = (self.replica_id, self.next_number)
        self.next_number += 1
        ballot = initial_ballot(inst)
        seq, deps = self.conflicts.attributes(batch, skip=self.replica_id, floor=True)
        deps[self.replica_id] = inst[1] - 1  # the chain: one space executes in order
        deps = tuple(deps)
        instance = Instance(inst, PREACCEPTED, ballot, ballot, batch, seq, deps, True)
        self.instances[inst] = instance
        self.conflicts.record(inst, batch, seq)
        effects.persist.append(SaveInstance(instance.record()))
        self.own_open.add(inst[1])
        self.proposed[inst] = batch
        drive = Drive(inst, ballot, "preaccept", False, self.now)
        drive.batch, drive.seq, drive.deps = batch, seq, deps
        drive.initial = (seq, deps)
        self.drives[inst] = drive
        message = PreAccept(ballot, inst, batch, seq, deps)
        targets = self.fast_targets if self.config.thrifty else self.peers
        for peer in targets:
            effects.send.append((peer, message))
        self._trace(effects, "Propose", None, None, inst, keys=batch_keys(batch))
        self._preaccept_progress(drive, effects)  # N = 1 commits at once

    # ---------------------------------------------------------------- Phase 1

    def handle_pre_accept(self, source: int, message: PreAccept, effects: Effects) -> None:
        """HandlePreAccept (SOSP §4.3 Phase 1, steps 4-6): merge our conflicts into the
        attributes, persist, answer PreAcceptOK; a promise of a higher ballot: Nack."""
        admitted, instance = self._admit_proposal(source, message, "HandlePreAccept", effects)
        if not admitted:
            return
        inst = message.inst
        if instance is not None and instance.vballot == message.ballot \
                and instance.status is not NONE:
            if instance.status is ACCEPTED:
                return self._drop("stale_phase")  # Accept at this ballot came first
            # A retry: answer with what we hold (it is persisted).
            self._drop("duplicate_pre_accept")
            effects.send.append((source, PreAcceptOK(message.ballot, inst, instance.seq,
                                                     instance.deps, instance.unchanged)))
            self._trace(effects, "HandlePreAccept", source, message, inst)
            return
        seq, deps = self.conflicts.attributes(message.batch, skip=inst[0])
        seq = max(seq, message.seq)
        deps = tuple(max(a, b) for a, b in zip(deps, message.deps))
        # The leader's own space is its business: deps[L] stays as it sent (TR §4.3).
        deps = deps[:inst[0]] + (message.deps[inst[0]],) + deps[inst[0] + 1:]
        unchanged = (message.ballot == initial_ballot(inst) and seq == message.seq
                     and deps == message.deps)
        instance = self._set(inst, PREACCEPTED, message.ballot, message.ballot, message.batch,
                             seq, deps, unchanged, effects)
        effects.send.append((source, PreAcceptOK(message.ballot, inst, seq, deps, unchanged)))
        self._trace(effects, "HandlePreAccept", source, message, inst)

    def _admit_proposal(self, source: int, message: PreAccept | Accept, action: str,
                        effects: Effects) -> tuple[bool, Instance | None]:
        """The filter PreAccept and Accept share: a valid ballot, instance and value for an
        instance not yet collected; below our promise, a Nack; already committed, its
        Commit (a recoverer's phase needs no more). Returns whether the handler goes on,
        and the instance we hold (None: none yet)."""
        inst = message.inst
        if not self._valid_ballot(message.ballot, source) or not self._valid_inst(inst):
            return False, None
        if not self._valid_value(message.batch, message.seq, message.deps, inst):
            return False, None
        if self._collected(inst):
            self._drop("collected_instance")
            return False, None
        instance = self.instances.get(inst)
        if instance is None:
            return True, None
        if message.ballot < instance.ballot:
            effects.send.append((source, Nack(inst, instance.ballot)))
            self._trace(effects, action, source, message, inst)
            self._drop("stale_ballot")
            return False, instance
        if instance.status in DONE:
            effects.send.append((source, self._commit_message(instance)))
            self._trace(effects, action, source, message, inst)
            self._drop("already_committed")
            return False, instance
        return True, instance

    def handle_pre_accept_ok(self, source: int, message: PreAcceptOK, effects: Effects) -> None:
        """HandlePreAcceptOK (SOSP §4.3 Phase 1, steps 7-10): the fast path when the fast
        quorum agrees unchanged at the initial ballot, else the slow path."""
        inst = message.inst
        if not self._valid_inst(inst) or not self._valid_deps(message.deps, inst):
            return self._drop("bad_pre_accept_ok")
        drive = self.drives.get(inst)
        if drive is None or drive.phase != "preaccept" or drive.ballot != message.ballot:
            return self._drop("stale_reply")
        if source in drive.replies:
            return self._drop("duplicate_reply")
        drive.replies[source] = message
        self._trace(effects, "HandlePreAcceptOK", source, message, inst)
        self._preaccept_progress(drive, effects)

    def _preaccept_progress(self, drive: Drive, effects: Effects, timed_out: bool = False) -> None:
        instance = self.instances[drive.inst]
        if instance.ballot != drive.ballot:
            return self._abandon(drive)  # we promised a higher ballot: never commit here
        replies = list(drive.replies.values())
        if not drive.recovery and drive.ballot == initial_ballot(drive.inst):
            agree = all(r.unchanged and (r.seq, r.deps) == drive.initial for r in replies)
            if agree and len(replies) >= self.fast_peers_needed:
                # Fast path (SOSP §4.3): the fast quorum holds the leader's attributes.
                self._commit(drive.inst, drive.batch, drive.seq, drive.deps, "fast", effects)
                return
            if agree and not timed_out and len(replies) < self.fast_peers_needed:
                return  # the fast path is still possible: wait for the fast quorum
        if len(replies) < self.f:
            return
        # Slow path: the union over a majority (ourselves included), then Phase 2.
        if timed_out:
            # No reply completes the quorum here, so no handler logged the step: log it
            # (before the Accept, as HandlePreAcceptOK logs the instance before its quorum).
            self._trace(effects, "PreAcceptTimeout", None, None, drive.inst,
                        replies=len(replies))
        seq = max([instance.seq] + [r.seq for r in replies])
        deps = list(instance.deps)
        for reply in replies:
            deps = [max(a, b) for a, b in zip(deps, reply.deps)]
        self._start_accept(drive, instance.batch, seq, tuple(deps), effects)

    # ---------------------------------------------------------------- Phase 2

    def _start_accept(self, drive: Drive, batch: Batch, seq: int, deps: Deps,
                      effects: Effects) -> None:
        """Phase 2 (SOSP §4.3, Paxos-Accept): accept the value ourselves, persist, send
        Accept to every replica."""
        inst = drive.inst
        self._set(inst, ACCEPTED, drive.ballot, drive.ballot, batch, seq, deps, False, effects)
        drive.phase = "accept"
        drive.batch, drive.seq, drive.deps = batch, seq, deps
        drive.replies = {}
        drive.sent_tick = self.now
        message = Accept(drive.ballot, inst, batch, seq, deps)
        for peer in self.peers:
            effects.send.append((peer, message))
        self._accept_progress(drive, effects)

    def handle_accept(self, source: int, message: Accept, effects: Effects) -> None:
        """HandleAccept (SOSP §4.3 Phase 2): accept unless a higher ballot is promised."""
        admitted, _ = self._admit_proposal(source, message, "HandleAccept", effects)
        if not admitted:
            return
        inst = message.inst
        self._set(inst, ACCEPTED, message.ballot, message.ballot, message.batch, message.seq,
                  message.deps, False, effects)
        effects.send.append((source, AcceptOK(message.ballot, inst)))
        self._trace(effects, "HandleAccept", source, message, inst)

    def handle_accept_ok(self, source: int, message: AcceptOK, effects: Effects) -> None:
        """HandleAcceptOK: F AcceptOKs and our own accept commit the instance."""
        inst = message.inst
        if not self._valid_inst(inst):
            return self._drop("bad_accept_ok")
        drive = self.drives.get(inst)
        if drive is None or drive.phase != "accept" or drive.ballot != message.ballot:
            return self._drop("stale_reply")
        if source in drive.replies:
            return self._drop("duplicate_reply")
        drive.replies[source] = message
        self._trace(effects, "HandleAcceptOK", source, message, inst)
        self._accept_progress(drive, effects)

    def _accept_progress(self, drive: Drive, effects: Effects) -> None:
        if self.instances[drive.inst].ballot != drive.ballot:
            return self._abandon(drive)
        if len(drive.replies) >= self.f:
            self._commit(drive.inst, drive.batch, drive.seq, drive.deps,
                         "recovered" if drive.recovery else "slow", effects)

    # ------------------------------------------------------------------ commit

    def _commit(self, inst: Inst, batch: Batch, seq: int, deps: Deps, path: str,
                effects: Effects) -> None:
        """Commit (SOSP §4.3): persist, then tell every replica; then execute."""
        instance = self.instances[inst]
        self._set(inst, COMMITTED, instance.ballot, instance.vballot, batch, seq, deps,
                  instance.unchanged, effects)
        self.drives.pop(inst, None)
        message = Commit(inst, batch, seq, deps)
        for peer in self.peers:
            effects.send.append((peer, message))
        if path == "fast":
            self.fast_commits += 1
        elif path == "slow":
            self.slow_commits += 1
        else:
            self.recovered_commits += 1
        self._trace(effects, "Commit", None, None, inst, path=path, keys=batch_keys(batch))
        self._committed(inst, effects)

    def handle_commit(self, source: int, message: Commit, effects: Effects) -> None:
        """HandleCommit: the value is chosen; persist it and execute what we can."""
        inst = message.inst
        if not self._valid_inst(inst):
            return
        if not self._valid_value(message.batch, message.seq, message.deps, inst):
            return
        if self._collected(inst):
            return self._drop("collected_instance")
        instance = self.instances.get(inst)
        if instance is not None and instance.status in DONE:
            if (instance.batch, instance.seq, instance.deps) != \
                    (message.batch, message.seq, message.deps):
                # Two values committed for one instance: impossible unless a replica (or
                # this core) is faulty. Counted; tests require the count to stay 0.
                return self._drop("conflicting_commit")
            return self._drop("duplicate_commit")
        ballot = instance.ballot if instance is not None else initial_ballot(inst)
        vballot = instance.vballot if instance is not None else initial_ballot(inst)
        self._set(inst, COMMITTED, ballot, vballot, message.batch, message.seq, message.deps,
                  False, effects)
        self.drives.pop(inst, None)
        self._trace(effects, "HandleCommit", source, message, inst,
                    keys=batch_keys(message.batch))
        self._committed(inst, effects)

    def _commit_message(self, instance: Instance) -> Commit:
        return Commit(instance.inst, instance.batch, instance.seq, instance.deps)

    def _committed(self, inst: Inst, effects: Effects) -> None:
        instance = self.instances[inst]
        instance.commit_tick = self.now
        self.recovery_deadline.pop(inst, None)
        self.nack_round.pop(inst, None)
        if inst[0] == self.replica_id:
            self.own_open.discard(inst[1])
        self._advance_committed(inst[0])
        self._execute_from(inst, effects)
        if inst[0] == self.replica_id:
            self._flush(effects, partial=not self.config.batching)

    def _advance_committed(self, replica: int) -> None:
        frontier = max(self.committed_frontier[replica], self.collected[replica])
        while True:
            following = self.instances.get((replica, frontier + 1))
            if following is None or following.status not in DONE:
                break
            frontier += 1
        self.committed_frontier[replica] = frontier

    # --------------------------------------------------------------- execution

    def _node(self, inst: Inst) -> tuple[int, Deps] | None:
        instance = self.instances.get(inst)
        if instance is None or instance.status is not COMMITTED:
            return None
        return instance.seq, instance.deps

    def _execute_from(self, start: Inst, effects: Effects) -> None:
        """Execute (SOSP §4.3.2) ``start`` and whatever then becomes executable: a
        committed instance whose plan stopped at an uncommitted one waits on it."""
        # Bounded: an instance enters ``work`` once as the start, else once per instance
        # that executes and had it waiting.
        work = [start]
        while work:
            inst = work.pop()
            instance = self.instances.get(inst)
            if instance is None or instance.status is not COMMITTED:
                continue
            components, blocked = plan_execution(inst, self._node, self.executed)
            if blocked is not None:
                self.waiters.setdefault(blocked, set()).add(inst)
                self._watch(blocked)
                continue
            for component in components:
                self.largest_component = max(self.largest_component, len(component))
                for member in component:
                    self._execute(member, effects)
                    work.extend(self.waiters.pop(member, ()))
            for replica in range(self.replicas):
                self._advance_executed(replica)

    def _execute(self, inst: Inst, effects: Effects) -> None:
        instance = self.instances[inst]
        assert instance.status is COMMITTED, "only committed instances execute"
        version = instance_key(inst)
        for command in instance.batch:
            result = self.kvs.apply(command, version)
            effects.applied.append(Applied(inst, command, result))
            key = (command.client_id, command.request_id)
            if key in self.in_progress:
                self.in_progress.discard(key)
                effects.reply.append(ClientReply(command.client_id, command.request_id,
                                                 ReplyStatus.OK, result, None))
        self.kvs.rows.index = self.executed_count + 1
        self._transition(instance, EXECUTED)
        instance.status = EXECUTED
        self.executed_count += 1
        self.executed_here += 1
        delay = self.now - instance.commit_tick
        self.execute_delay_max_ticks = max(self.execute_delay_max_ticks, delay)
        self.execute_delay_sum_ticks += delay
        proposed = self.proposed.pop(inst, None)
        if proposed is not None and proposed != instance.batch:
            # Recovery replaced our batch (a NOP): propose its commands again, unless they
            # executed elsewhere meanwhile (the session table answers those).
            for command in reversed(proposed):
                key = (command.client_id, command.request_id)
                if key not in self.in_progress:
                    continue
                if len(self.pending) >= self.config.pending_commands_max:
                    self.in_progress.discard(key)
                    effects.reply.append(ClientReply(command.client_id, command.request_id,
                                                     ReplyStatus.BUSY, None, None))
                    continue
                self.pending.appendleft(command)
                self.pending_bytes += command_size_bytes(command)
        # "order": the position in this replica's execution sequence, counted from the
        # saved rows on (a restart continues it).
        self._trace(effects, "Execute", None, None, inst, order=self.executed_count - 1,
                    keys=batch_keys(instance.batch))

    def _advance_executed(self, replica: int) -> None:
        frontier = self.executed[replica]
        while True:
            following = self.instances.get((replica, frontier + 1))
            if following is None or following.status is not EXECUTED:
                break
            frontier += 1
        self.executed[replica] = frontier

    # ---------------------------------------------------------------- recovery

    def _watch(self, inst: Inst) -> None:
        """Wait on ``inst``: recover it unless it commits within the timeout (TR §4.5)."""
        if inst not in self.recovery_deadline and not self._collected(inst):
            ticks = self.config.recovery_ticks
            self.recovery_deadline[inst] = self.now + self.rng.randrange(ticks, 2 * ticks)

    def _start_due_recoveries(self, effects: Effects) -> None:
        started = 0
        for inst, deadline in list(self.recovery_deadline.items()):
            instance = self.instances.get(inst)
            if self._collected(inst) or (instance is not None and instance.status in DONE):
                del self.recovery_deadline[inst]
                continue
            if self.now < deadline or inst in self.drives:
                continue
            if started >= self.config.recoveries_started_per_tick_max:
                break
            started += 1
            ticks = self.config.recovery_ticks
            self.recovery_deadline[inst] = self.now + self.rng.randrange(ticks, 2 * ticks)
            self.start_recovery(inst, effects)

    def start_recovery(self, inst: Inst, effects: Effects) -> None:
        """StartRecovery (TR §4.5, explicit prepare): promise a ballot above every one
        known for the instance, persist, and send Prepare to every replica."""
        instance = self.instances.get(inst)
        top = max(instance.ballot.round if instance is not None else 0,
                  self.nack_round.get(inst, 0))
        ballot = Ballot(top + 1, self.replica_id)
        if instance is None:
            initial = initial_ballot(inst)
            instance = self._set(inst, NONE, ballot, initial, None, 0, (0,) * self.replicas,
                                 False, effects)
        else:
            instance.ballot = ballot
            effects.persist.append(SaveInstance(instance.record()))
        drive = Drive(inst, ballot, "prepare", True, self.now)
        self.drives[inst] = drive
        self.recoveries_started += 1
        message = Prepare(ballot, inst)
        for peer in self.peers:
            effects.send.append((peer, message))
        self._trace(effects, "StartRecovery", None, None, inst)
        self._recovery_progress(drive, effects)

    def handle_prepare(self, source: int, message: Prepare, effects: Effects) -> None:
        """HandlePrepare (TR §4.5): promise a higher ballot, persist, report what we
        hold with its vballot; a committed instance is reported as committed."""
        inst = message.inst
        if not self._valid_ballot(message.ballot, source) or not self._valid_inst(inst):
            return
        if self._collected(inst):
            return self._drop("collected_instance")
        instance = self.instances.get(inst)
        if instance is not None and instance.status in DONE:
            effects.send.append((source, self._prepare_ok(message.ballot, instance)))
            self._trace(effects, "HandlePrepare", source, message, inst)
            return
        if instance is not None and message.ballot < instance.ballot:
            effects.send.append((source, Nack(inst, instance.ballot)))
            self._trace(effects, "HandlePrepare", source, message, inst)
            return self._drop("stale_ballot")
        if instance is None:
            instance = self._set(inst, NONE, message.ballot, initial_ballot(inst), None, 0,
                                 (0,) * self.replicas, False, effects)
        elif message.ballot > instance.ballot:
            instance.ballot = message.ballot
            effects.persist.append(SaveInstance(instance.record()))
        else:
            self._drop("duplicate_prepare")  # the same ballot again: the same answer
        drive = self.drives.get(inst)
        if drive is not None and drive.ballot != instance.ballot:
            self._abandon(drive)
        self._watch(inst)
        effects.send.append((source, self._prepare_ok(message.ballot, instance)))
        self._trace(effects, "HandlePrepare", source, message, inst)

    def _prepare_ok(self, ballot: Ballot, instance: Instance) -> PrepareOK:
        status = COMMITTED if instance.status is EXECUTED else instance.status
        return PrepareOK(ballot, instance.inst, status.value, instance.batch, instance.seq,
                         instance.deps, instance.vballot, instance.unchanged)

    def handle_prepare_ok(self, source: int, message: PrepareOK, effects: Effects) -> None:
        """HandlePrepareOK: with F + 1 answers (ours included), decide_recovery."""
        inst = message.inst
        if not self._valid_inst(inst) or not self._valid_prepare_ok(message, inst):
            return self._drop("bad_prepare_ok")
        drive = self.drives.get(inst)
        if drive is None or drive.phase != "prepare" or drive.ballot != message.ballot:
            return self._drop("stale_reply")
        if source in drive.replies:
            return self._drop("duplicate_reply")
        drive.replies[source] = message
        self._trace(effects, "HandlePrepareOK", source, message, inst)
        self._recovery_progress(drive, effects)

    def _recovery_progress(self, drive: Drive, effects: Effects) -> None:
        instance = self.instances[drive.inst]
        if instance.ballot != drive.ballot:
            return self._abandon(drive)
        if len(drive.replies) + 1 < self.config.quorum:
            return
        replies = dict(drive.replies)
        replies[self.replica_id] = self._prepare_ok(drive.ballot, instance)
        self.decide_recovery(drive, replies, effects)

    def decide_recovery(self, drive: Drive, replies: dict[int, PrepareOK],
                        effects: Effects) -> None:
        """The recoverer's choice from a majority's PrepareOKs (TR §4.5, with separate
        ballots after Sutra 2019), in this order:

        1. some replica has it committed: commit that value;
        2. some has it accepted: the value of the highest vballot, Phase 2 at our ballot;
        3. at least F replicas other than the leader L pre-accepted it at the initial
           ballot, unchanged: it may have committed on the fast path (which needs 2F - 1
           of the 2F non-leaders), so Phase 2 with that value (the leader's own);
        4. some holds the batch (pre-accepted otherwise): Phase 1 again at our ballot
           with it (fresh attributes; never the fast path), then Phase 2;
        5. nobody holds it: Phase 2 with NOP, which interferes with nothing.
        """
        inst = drive.inst
        leader, number = inst
        answers = list(replies.values())
        committed = [r for r in answers if r.status == COMMITTED.value]
        if committed:
            chosen = committed[0]
            self._commit(inst, chosen.batch, chosen.seq, chosen.deps, "recovered", effects)
            return
        accepted = [r for r in answers if r.status == ACCEPTED.value]
        if accepted:
            chosen = max(accepted, key=lambda r: r.vballot)
            self._start_accept(drive, chosen.batch, chosen.seq, chosen.deps, effects)
            return
        initial = initial_ballot(inst)
        witnesses = [r for source, r in replies.items()
                     if source != leader and r.status == PREACCEPTED.value
                     and r.vballot == initial and r.unchanged]
        if witnesses and len(witnesses) >= self.f:
            chosen = witnesses[0]
            self._start_accept(drive, chosen.batch, chosen.seq, chosen.deps, effects)
            return
        held = [r for r in answers if r.status == PREACCEPTED.value and r.batch is not None]
        if held:
            seq = max(r.seq for r in held)
            deps = [0] * self.replicas
            for reply in held:
                deps = [max(a, b) for a, b in zip(deps, reply.deps)]
            self._start_recovery_preaccept(drive, held[0].batch, seq, tuple(deps), effects)
            return
        deps = [0] * self.replicas
        deps[leader] = number - 1
        self._start_accept(drive, NOP, 0, tuple(deps), effects)

    def _start_recovery_preaccept(self, drive: Drive, batch: Batch, seq: int, deps: Deps,
                                  effects: Effects) -> None:
        """Recovery case 4: Phase 1 at our ballot with the held batch, to every replica."""
        inst = drive.inst
        own_seq, own_deps = self.conflicts.attributes(batch, skip=inst[0])
        seq = max(seq, own_seq)
        deps = tuple(deps[r] if r == inst[0] else max(deps[r], own_deps[r])
                     for r in range(self.replicas))
        self._set(inst, PREACCEPTED, drive.ballot, drive.ballot, batch, seq, deps, False,
                  effects)
        drive.phase = "preaccept"
        drive.batch, drive.seq, drive.deps = batch, seq, deps
        drive.replies = {}
        drive.sent_tick = self.now
        message = PreAccept(drive.ballot, inst, batch, seq, deps)
        for peer in self.peers:
            effects.send.append((peer, message))
        self._preaccept_progress(drive, effects)

    def handle_nack(self, source: int, message: Nack, effects: Effects) -> None:
        """HandleNack: a replica promised a higher ballot; whoever holds it drives now.
        We stop, and recover later ourselves if the instance stays uncommitted."""
        inst = message.inst
        if not self._valid_inst(inst) or not self._valid_ballot(message.ballot, None):
            return self._drop("bad_nack")
        drive = self.drives.get(inst)
        if drive is None or message.ballot <= drive.ballot:
            return self._drop("stale_reply")
        self.nack_round[inst] = max(self.nack_round.get(inst, 0), message.ballot.round)
        self._abandon(drive)
        self._trace(effects, "HandleNack", source, message, inst)

    def _abandon(self, drive: Drive) -> None:
        if self.drives.get(drive.inst) is drive:
            del self.drives[drive.inst]
        self._watch(drive.inst)

    def _retry_drives(self, effects: Effects) -> None:
        """Messages of a phase unanswered for a while go again to the replicas that have
        not answered (thrifty PreAccept: to every peer); a leader that has a majority
        but not the fast quorum takes the slow path."""
        for drive in list(self.drives.values()):
            if self.drives.get(drive.inst) is not drive:
                continue
            retry = {"preaccept": self.config.preaccept_retry_ticks,
                     "accept": self.config.accept_retry_ticks,
                     "prepare": self.config.prepare_retry_ticks}[drive.phase]
            if self.now - drive.sent_tick < retry:
                continue
            drive.sent_tick = self.now
            inst = drive.inst
            if self.instances[inst].ballot != drive.ballot:
                self._abandon(drive)  # a higher ballot was promised since
                continue
            if drive.phase == "preaccept":
                self._preaccept_progress(drive, effects, timed_out=True)
                if self.drives.get(inst) is not drive or drive.phase != "preaccept":
                    continue
                message = PreAccept(drive.ballot, inst, drive.batch, drive.seq, drive.deps)
                action = "RetryPreAccept"
            elif drive.phase == "accept":
                message = Accept(drive.ballot, inst, drive.batch, drive.seq, drive.deps)
                action = "RetryAccept"
            else:
                message = Prepare(drive.ballot, inst)
                action = "RetryPrepare"
            for peer in self.peers:
                if peer not in drive.replies:
                    effects.send.append((peer, message))
            self._trace(effects, action, None, None, inst)

    # ------------------------------------------------ frontiers and collection

    def send_status(self, effects: Effects) -> None:
        """SendStatus: our executed and committed frontiers to every peer."""
        self.status_sent_tick = self.now
        message = Status(tuple(self.executed), tuple(self.committed_frontier))
        for peer in self.peers:
            effects.send.append((peer, message))
        self._trace(effects, "SendStatus", None, None, None)

    def handle_status(self, source: int, message: Status, effects: Effects) -> None:
        """HandleStatus: note the peer's frontiers; re-send Commits of our own instances
        it lacks (bounded); collect what every replica has executed."""
        if not (_is_vector(message.executed, self.replicas)
                and _is_vector(message.committed, self.replicas)):
            return self._drop("bad_status")
        known = self.peer_executed[source]
        self.peer_executed[source] = [max(a, b) for a, b in zip(known, message.executed)]
        self.peer_committed[source] = list(message.committed)
        self._trace(effects, "HandleStatus", source, message, None)
        first = max(message.committed[self.replica_id], self.collected[self.replica_id]) + 1
        resent = 0
        number = first
        while resent < self.config.commit_resend_max and number < self.next_number:
            instance = self.instances.get((self.replica_id, number))
            number += 1
            if instance is None or instance.status not in DONE:
                continue
            if self.now - instance.commit_tick < self.config.status_ticks:
                continue  # its Commit may still be on the way
            effects.send.append((source, self._commit_message(instance)))
            resent += 1
        if resent:
            self._trace(effects, "ResendCommit", None, None, None, target=source)
        self._maybe_collect(effects)

    def _maybe_collect(self, effects: Effects) -> None:
        """Collect (the contract's checkpoints): every instance that every replica has
        executed leaves memory and the durable log, after the rows that hold its
        effects are saved. A replica that never reports blocks this (docs/epaxos.md)."""
        target = [min([self.executed[r]] + [self.peer_executed[p][r] for p in self.peers])
                  for r in range(self.replicas)]
        gained = sum(t - c for t, c in zip(target, self.collected))
        if gained < self.config.collect_instances:
            return
        self._persist_rows(effects)
        effects.persist.append(SaveCollect(tuple(target)))
        for inst in [inst for inst in self.instances if inst[1] <= target[inst[0]]]:
            del self.instances[inst]
            self.recovery_deadline.pop(inst, None)
            self.waiters.pop(inst, None)
            self.nack_round.pop(inst, None)
        self.collected = target
        self._trace(effects, "Collect", None, None, None)

    def _persist_rows(self, effects: Effects) -> None:
        if self.executed_count == self.rows_persisted_count:
            return
        rows = self.kvs.rows
        rows.drop_tombstones_below(TOMBSTONES_ALL)
        effects.persist.append(SaveRows(tuple(self.executed), self.executed_count, rows.digest,
                                        TOMBSTONES_ALL, rows.take_changes()))
        self.rows_persisted_count = self.executed_count
        self.rows_persisted_tick = self.now

    # ----------------------------------------------------------------- helpers

    def _set(self, inst: Inst, status: InstanceStatus, ballot: Ballot, vballot: Ballot,
             batch: Batch | None, seq: int, deps: Deps, unchanged: bool,
             effects: Effects) -> Instance:
        """Change one instance and persist it (in the same step, before any send)."""
        instance = self.instances.get(inst)
        if instance is None:
            instance = Instance(inst, NONE, ballot, vballot, None, 0, deps, False)
            self.instances[inst] = instance
        if status is not instance.status or status is not NONE:
            self._transition(instance, status)
        instance.status = status
        instance.ballot = ballot
        instance.vballot = vballot
        instance.batch = batch
        instance.seq = seq
        instance.deps = deps
        instance.unchanged = unchanged
        effects.persist.append(SaveInstance(instance.record()))
        drive = self.drives.get(inst)
        if drive is not None and drive.ballot != ballot:
            self._abandon(drive)  # we promised another's higher ballot: our phase is over
        if batch is not None:
            self.conflicts.record(inst, batch, seq)
        if status in (PREACCEPTED, ACCEPTED) and inst not in self.drives:
            self._watch(inst)
        return instance

    def _transition(self, instance: Instance, status: InstanceStatus) -> None:
        if instance.status is NONE and status is NONE:
            return
        assert (instance.status, status) in TRANSITIONS, \
            f"no transition {instance.status.value} -> {status.value} for {instance.inst}"

    def _collected(self, inst: Inst) -> bool:
        return inst[1] <= self.collected[inst[0]]

    def _valid_inst(self, inst: object) -> bool:
        if (type(inst) is not tuple or len(inst) != 2 or type(inst[0]) is not int
                or type(inst[1]) is not int or not 0 <= inst[0] < self.replicas
                or not 1 <= inst[1] <= INSTANCE_MAX):
            self._drop("bad_instance")
            return False
        return True

    def _valid_ballot(self, ballot: object, source: int | None) -> bool:
        if (not isinstance(ballot, Ballot) or type(ballot.round) is not int
                or type(ballot.replica) is not int or ballot.round < 0
                or not 0 <= ballot.replica < self.replicas):
            self._drop("bad_ballot")
            return False
        if source is not None and ballot.replica != source:
            # A ballot is its owner's: only it sends PreAccept, Accept or Prepare at it.
            self._drop("ballot_not_sender")
            return False
        return True

    def _valid_deps(self, deps: object, inst: Inst | None) -> bool:
        if not _is_vector(deps, self.replicas):
            self._drop("bad_deps")
            return False
        if inst is not None and deps[inst[0]] >= inst[1]:
            self._drop("bad_deps")  # an instance never depends on itself or later ones
            return False
        return True

    def _valid_value(self, batch: object, seq: object, deps: object, inst: Inst) -> bool:
        if type(batch) is not tuple or any(valid_command(c) is not None for c in batch):
            self._drop("bad_batch")
            return False
        if type(seq) is not int or seq < 0:
            self._drop("bad_seq")
            return False
        return self._valid_deps(deps, inst)

    def _valid_prepare_ok(self, message: PrepareOK, inst: Inst) -> bool:
        if message.status not in (NONE.value, PREACCEPTED.value, ACCEPTED.value,
                                  COMMITTED.value):
            return False
        if message.status != NONE.value:
            if message.batch is None or type(message.batch) is not tuple or any(
                    valid_command(c) is not None for c in message.batch):
                return False
            if not self._valid_deps(message.deps, inst):
                return False
        return self._valid_ballot(message.vballot, None)

    def _drop(self, reason: str) -> None:
        self.drops[reason] += 1

    def _finish_step(self, effects: Effects) -> None:
        if self.executed_count > self.rows_persisted_count and (
                effects.persist
                or self.now - self.rows_persisted_tick >= self.config.rows_persist_ticks):
            self._persist_rows(effects)
        self.check_invariants()

    def check_invariants(self) -> None:
        """Re-checked after every step; each assertion says one thing."""
        assert all(c <= e for c, e in zip(self.collected, self.executed)), \
            "only executed instances are collected"
        assert all(e <= c for e, c in zip(self.executed, self.committed_frontier)), \
            "executed instances are committed"
        assert self.rows_persisted_count <= self.executed_count, "saved rows are executed"
        assert len(self.own_open) <= self.config.window_instances, "the window is bounded"
        assert len(self.pending) <= self.config.pending_commands_max, "the queue is bounded"
        assert self.next_number > self.committed_frontier[self.replica_id], \
            "our next instance is above our committed ones"
        for inst, drive in self.drives.items():
            assert drive.inst == inst, "a drive is filed under its instance"
            assert self.instances[inst].status not in DONE, "committed instances need no drive"
        self.steps += 1
        if self.steps % self.config.invariant_full_scan_steps == 0:
            self._check_instances()

    def _check_instances(self) -> None:
        for inst, instance in self.instances.items():
            replica, number = inst
            assert number > self.collected[replica], "collected instances are not held"
            assert instance.vballot <= instance.ballot, "the value's ballot is promised"
            assert (instance.status is EXECUTED) == (number <= self.executed[replica]), \
                "the executed instances are exactly those at or below the frontier"
            if instance.status is not NONE:
                assert instance.batch is not None, "a value has a batch"
                assert len(instance.deps) == self.replicas, "deps are a vector of length N"
                assert instance.deps[replica] >= number - 1 or not instance.batch and \
                    instance.deps[replica] == number - 1, "each space is chained"
                assert instance.deps[replica] < number, "no instance depends on itself"

    # ---------------------------------------------------------------- tracing

    def instance_state(self, inst: Inst) -> dict:
        """The state of one instance in spec/EPaxos.tla's variables (the contract)."""
        instance = self.instances.get(inst)
        if instance is None:
            initial = initial_ballot(inst)
            return {"inst": list(inst), "status": NONE.value, "ballot": list(initial),
                    "vballot": list(initial), "batch": None, "seq": 0,
                    "deps": [0] * self.replicas, "unchanged": False}
        return {"inst": list(inst), "status": instance.status.value,
                "ballot": list(instance.ballot), "vballot": list(instance.vballot),
                "batch": None if instance.batch is None else batch_id(instance.batch),
                "seq": instance.seq, "deps": list(instance.deps),
                "unchanged": instance.unchanged}

    def spec_state(self) -> dict:
        """The replica's frontiers (a Restart event's state)."""
        return {"executed": list(self.executed), "committed": list(self.committed_frontier),
                "collected": list(self.collected), "instances": len(self.instances)}

    def _trace(self, effects: Effects, action: str, source: int | None, message: object,
               inst: Inst | None, **extra) -> None:
        if not self.trace_on:
            return
        event: dict = {"action": action, "replica": self.replica_id}
        if inst is not None:
            event["state"] = self.instance_state(inst)
        if source is not None:
            event["source"] = source
        if message is not None:
            event["message"] = describe_message(message)
        event.update(extra)
        effects.trace.append(event)

    @staticmethod
    def describe_message(message: object) -> dict:
        return describe_message(message)

    _HANDLERS = {
        PreAccept: handle_pre_accept,
        PreAcceptOK: handle_pre_accept_ok,
        Accept: handle_accept,
        AcceptOK: handle_accept_ok,
        Commit: handle_commit,
        Prepare: handle_prepare,
        PrepareOK: handle_prepare_ok,
        Nack: handle_nack,
        Status: handle_status,
    }


def _is_vector(values: object, length: int) -> bool:
    """A deps or frontier vector: ``length`` instance numbers."""
    return (type(values) is tuple and len(values) == length
            and all(type(v) is int and 0 <= v <= INSTANCE_MAX for v in values))


def describe_message(message: object) -> dict:
    """A message as plain data for traces: batches as batch ids, inst and ballots as lists."""
    fields: dict = {"type": type(message).__name__}
    for name in message.__slots__:  # type: ignore[attr-defined]
        value = getattr(message, name)
        if name == "batch":
            fields[name] = None if value is None else batch_id(value)
        elif isinstance(value, tuple):
            fields[name] = list(value)
        else:
            fields[name] = value
    return fields


__all__ = ["Conflicts", "EPaxosReplica", "TRANSITIONS", "describe_message", "footprint"]
