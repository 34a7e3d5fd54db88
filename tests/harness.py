"""A hand-driven network for core unit tests: every message a core sends is recorded
and queued, and a test decides what is delivered, dropped or duplicated (500 Lines'
cluster tests record every message the same way)."""

from __future__ import annotations

import random
from collections import deque

from lowpaxos.core.api import ClientReply, ClientRequest, Command, Effects
from lowpaxos.protocols.registry import PROTOCOLS


class Cluster:
    def __init__(self, replicas: int = 3, seed: int = 0, **options) -> None:
        spec = PROTOCOLS["lowpaxos"]
        self.spec = spec
        options.setdefault("invariant_full_scan_steps", 1)  # every invariant, every step
        self.config = spec.make_config(replicas, **options)
        self.seed = seed
        self.durable = [spec.new_durable() for _ in range(replicas)]
        self.cores = [self._make(i) for i in range(replicas)]
        self.queue: deque[tuple[int, int, object]] = deque()
        self.sent: list[tuple[int, int, object]] = []
        self.replies: list[ClientReply] = []
        self.applied: list[tuple[int, object]] = []
        self.down: set[int] = set()
        self.cut: set[frozenset[int]] = set()
        self.request_ids: dict[int, int] = {}

    def _make(self, replica: int):
        rng = random.Random(self.seed * 1000 + replica)
        return self.spec.make_core(self.config, replica, rng, self.durable[replica].copy(), False)

    # Carrying out effects in the binding order: persist, send, reply, applied.
    def carry_out(self, replica: int, effects: Effects) -> Effects:
        for record in effects.persist:
            self.durable[replica].apply(record)
        for target, message in effects.send:
            self.sent.append((replica, target, message))
            self.queue.append((replica, target, message))
        self.replies.extend(effects.reply)
        self.applied.extend((replica, a) for a in effects.applied)
        return effects

    def tick(self, replica: int, count: int = 1) -> None:
        for _ in range(count):
            if replica not in self.down:
                self.carry_out(replica, self.cores[replica].on_tick())

    def tick_all(self, count: int = 1, deliver: bool = True) -> None:
        for _ in range(count):
            for replica in range(len(self.cores)):
                self.tick(replica)
            if deliver:
                self.deliver_all()

    def deliver_one(self) -> tuple[int, int, object] | None:
        if not self.queue:
            return None
        source, target, message = self.queue.popleft()
        if target in self.down or frozenset((source, target)) in self.cut:
            return (source, target, message)
        self.carry_out(target, self.cores[target].on_message(source, message))
        return (source, target, message)

    def deliver_all(self, limit: int = 100_000) -> int:
        count = 0
        while self.queue and count < limit:
            self.deliver_one()
            count += 1
        assert not self.queue, "delivery bounded: the cluster kept talking"
        return count

    def drop_all(self) -> list[tuple[int, int, object]]:
        dropped = list(self.queue)
        self.queue.clear()
        return dropped

    def take(self, kind: type) -> list[tuple[int, int, object]]:
        """Remove and return the queued messages of one type."""
        taken = [item for item in self.queue if isinstance(item[2], kind)]
        self.queue = deque(item for item in self.queue if not isinstance(item[2], kind))
        return taken

    def crash(self, replica: int) -> None:
        self.down.add(replica)

    def restart(self, replica: int) -> None:
        self.down.discard(replica)
        self.cores[replica] = self._make(replica)

    def elect(self, replica: int, max_rounds: int = 1000) -> None:
        """Make ``replica`` start an election now and run until it leads."""
        core = self.cores[replica]
        # Position the scenario: the others take the old leader as silent for long enough
        # and do not campaign themselves meanwhile.
        for other, peer in enumerate(self.cores):
            if other != replica and other not in self.down:
                peer.leader_heard_tick = -(10**9)
                peer.election_deadline = peer.now + 10**6
        self.carry_out(replica, _start_election(core))
        for _ in range(max_rounds):
            self.deliver_all()
            if core.role.name == "LEADER":
                return
            self.tick_all()
        raise AssertionError(f"replica {replica} did not become leader")

    def leader(self):
        leaders = [c for i, c in enumerate(self.cores) if c.role.name == "LEADER" and i not in self.down]
        return leaders[-1] if leaders else None

    def submit(self, replica: int, client: int, op: str, key: str, value: bytes | None = None,
               expected: bytes | None = None) -> Command:
        request_id = self.request_ids.get(client, 0) + 1
        self.request_ids[client] = request_id
        command = Command(client, request_id, op, key, value, expected)
        self.carry_out(replica, self.cores[replica].on_client_request(ClientRequest(command)))
        return command

    def ok_replies(self) -> list[ClientReply]:
        return [r for r in self.replies if r.status.value == "ok"]


def _start_election(core) -> Effects:
    effects = Effects()
    core.start_election(effects)
    core.check_invariants()
    return effects


# ---------------------------------------------------------------------------
# Probes: what the protocol-generic stateful test checks and measures of one
# protocol's cores, by protocol name. The fault schedules in test_stateful.py know
# nothing of LowPaxos; a protocol registered later (VR, EPaxos) adds its probe here.
# A probe has: REACH and reach (what the schedules produced), recovering(core) (up but
# without its state: counts as down for the crash budget), timeout_ticks(config) (the
# timeout that makes a replica act on its own: election, view change, recovery),
# wants_trace (whether the machine collects the spec-level trace events for it, and
# gives the probe the list: attach_trace), observe(cores) (safety, after every simulator event) and finish(sim, trace, where)
# (what is checked of the whole run, after liveness).


class ProbeBase:
    """What a probe has unless it says otherwise: no trace, nothing checked at the end."""

    wants_trace = False

    def attach_trace(self, trace: list[dict]) -> None:
        """The list the simulator appends the run's trace events to (wants_trace):
        ``observe`` may read what the last step added."""
        self.trace = trace

    def finish(self, sim, trace: list[dict] | None, where: str = "") -> None:
        """Checks of the whole run, after the clients finished and the replicas
        converged; nothing by default."""


class LowPaxosProbe(ProbeBase):
    """Safety and reach of LowPaxos cores, read after every simulator event.

    Safety: a slot's committed value never changes and is the same everywhere (the
    slots each live core holds up to its commit point, checked incrementally), and two
    replicas that applied the same prefix hold the same KVS digest.

    Reach (what the fault schedule produced, for the printed summary): elections
    started and won, rounds in which two candidates campaigned at once, slots a new
    leader re-proposed with a value from an earlier ballot (Paxos Made Simple §2.2,
    P2c: the case the classic phase-1 bugs get wrong), restarts whose disk held an
    open entry of an earlier ballot than their promise, and slots a replica accepted
    again under a higher ballot with a different value.
    """

    REACH = ("elections", "leaders", "competing_candidates", "reproposed_slots",
             "restarts", "restarts_with_old_ballot_entries", "reaccepted_other_value")

    def __init__(self, replicas: int) -> None:
        self.replicas = replicas
        self.chosen: dict[int, object] = {}
        self.digest_at: dict[int, tuple[int, str]] = {}
        self.reach = dict.fromkeys(self.REACH, 0)
        # Per replica: (the core object, its role, its promise) when last read. The core
        # itself, not its id(): a crashed core's id may be reused by the next one.
        self._seen: list[tuple[object, object, object] | None] = [None] * replicas
        self._checked: list[tuple[object, int] | None] = [None] * replicas
        self._open: list[dict[int, object]] = [{} for _ in range(replicas)]

    @staticmethod
    def recovering(core) -> bool:
        """Never: a restarted LowPaxos replica has its disk."""
        return False

    @staticmethod
    def timeout_ticks(config) -> int:
        """A follower's election timeout (drawn from [election_ticks, 2*election_ticks))."""
        return config.election_ticks

    def observe(self, cores: list) -> None:
        for replica, core in enumerate(cores):
            if core is None:
                self._seen[replica] = None
                continue
            seen = self._seen[replica]
            if seen is None or seen[0] is not core:
                self._seen[replica] = (core, None, None)
                self._open[replica] = {}
                if seen is not None or core.commit_index or core.log:
                    self._on_restart(core)
            self._check_committed(replica, core)
            self._track_roles(replica, core, cores)
            self._track_reaccepts(replica, core)

    def _on_restart(self, core) -> None:
        self.reach["restarts"] += 1
        if any(entry.ballot < core.promised for slot, entry in core.log.items()
               if slot > core.commit_index):
            self.reach["restarts_with_old_ballot_entries"] += 1

    def _check_committed(self, replica: int, core) -> None:
        checked = self._checked[replica]
        done = checked[1] if checked is not None and checked[0] is core else 0
        start = max(done, core.log_start)
        for slot in range(start + 1, core.commit_index + 1):
            batch = core.log[slot].batch
            known = self.chosen.setdefault(slot, batch)
            assert known == batch, (
                f"slot {slot}: replica {core.replica_id} committed {batch!r}, "
                f"but {known!r} was committed there before")
        if checked is None or checked[0] is not core or core.commit_index > done:
            self._checked[replica] = (core, core.commit_index)
            index, digest = core.applied_index, core.kvs.digest()
            first = self.digest_at.setdefault(index, (core.replica_id, digest))
            assert first[1] == digest, (
                f"replicas {first[0]} and {core.replica_id} applied slots up to {index} "
                f"but hold different states ({first[1]} != {digest})")

    def _track_roles(self, replica: int, core, cores: list) -> None:
        seen_core, role, ballot = self._seen[replica]
        if role is core.role and ballot == core.promised:
            return
        self._seen[replica] = (seen_core, core.role, core.promised)
        if core.role.name == "CANDIDATE" and ballot != core.promised:
            self.reach["elections"] += 1
            if any(other is not None and other is not core and other.role.name == "CANDIDATE"
                   for other in cores):
                self.reach["competing_candidates"] += 1
        elif core.role.name == "LEADER" and role is not None and role.name != "LEADER":
            self.reach["leaders"] += 1
            # Right after BecomeLeader the open slots are exactly the recovered ones.
            self.reach["reproposed_slots"] += sum(
                1 for slot in range(core.commit_index + 1, core.next_slot)
                if core.log[slot].batch)

    def _track_reaccepts(self, replica: int, core) -> None:
        if core.role.name == "LEADER":
            self._open[replica] = {}
            return
        held = self._open[replica]
        current = {slot: entry for slot, entry in core.log.items() if slot > core.commit_index}
        for slot, entry in current.items():
            before = held.get(slot)
            if before is not None and before.ballot < entry.ballot and before.batch != entry.batch:
                self.reach["reaccepted_other_value"] += 1
        self._open[replica] = current


PROBES = {"lowpaxos": LowPaxosProbe}


class VRProbe(ProbeBase):
    """Safety and reach of VR Revisited cores (impl/lowpaxos/protocols/vr), read after
    every simulator event.

    Safety: an op a replica executed (at or below its commit-number, above its log
    cut) never changes and is the same everywhere (§4 of the paper: committed ops
    survive view changes), and two replicas that executed the same ops hold the same
    KVS digest.

    Reach: view changes started (a replica entering a view-change status in a new
    view), view changes won (a new primary normal in its view), restarts, recoveries
    (a recovering replica back to normal by the nonce protocol, §4.3), log state
    transfers (a replica that joined a view without its log receiving it by NewState,
    §5.2); the rows transfers installed are counted by the machine for every protocol.
    """

    REACH = ("view_changes_started", "view_changes", "restarts", "recoveries",
             "log_state_transfers")

    def __init__(self, replicas: int) -> None:
        self.replicas = replicas
        self.chosen: dict[int, object] = {}
        self.digest_at: dict[int, tuple[int, str]] = {}
        self.reach = dict.fromkeys(self.REACH, 0)
        # Per replica: (the core object, view, status, awaiting state) when last read.
        self._seen: list[tuple | None] = [None] * replicas
        self._checked: list[tuple[object, int] | None] = [None] * replicas

    @staticmethod
    def recovering(core) -> bool:
        """Up but still without its state (diskless recovery, §4.3): for the crash budget
        it counts as down."""
        return core.status.name == "RECOVERING"

    @staticmethod
    def timeout_ticks(config) -> int:
        """A backup's view-change timeout (§4.2)."""
        return config.view_change_ticks

    def observe(self, cores: list) -> None:
        for replica, core in enumerate(cores):
            if core is None:
                self._seen[replica] = None
                continue
            seen = self._seen[replica]
            if seen is None or seen[0] is not core:
                if seen is not None or core.commit or core.log or self.recovering(core):
                    self.reach["restarts"] += 1
                seen = (core, core.view, core.status, core.awaiting_state())
                self._seen[replica] = seen
            self._check_committed(replica, core)
            self._track(replica, core, seen)

    def _check_committed(self, replica: int, core) -> None:
        checked = self._checked[replica]
        done = checked[1] if checked is not None and checked[0] is core else 0
        for op in range(max(done, core.log_start) + 1, core.commit + 1):
            batch = core.log[op]
            known = self.chosen.setdefault(op, batch)
            assert known == batch, (
                f"op {op}: replica {core.replica_id} executed {batch!r}, "
                f"but {known!r} was committed there before")
        if checked is None or checked[0] is not core or core.commit != done:
            self._checked[replica] = (core, core.commit)
            digest = core.kvs.digest()
            first = self.digest_at.setdefault(core.commit, (core.replica_id, digest))
            assert first[1] == digest, (
                f"replicas {first[0]} and {core.replica_id} executed ops up to {core.commit} "
                f"but hold different states ({first[1]} != {digest})")

    def _track(self, replica: int, core, seen: tuple) -> None:
        _, view, status, awaiting = seen
        now = (core, core.view, core.status, core.awaiting_state())
        if now[1:] == seen[1:]:
            return
        self._seen[replica] = now
        if core.status.name == "VIEW_CHANGE" and (status.name != "VIEW_CHANGE" or core.view > view):
            self.reach["view_changes_started"] += 1
        if core.is_primary() and (status.name != "NORMAL" or core.view > view):
            self.reach["view_changes"] += 1
        if status.name == "RECOVERING" and core.status.name == "NORMAL":
            self.reach["recoveries"] += 1
        if awaiting and not now[3] and core.view == view:
            self.reach["log_state_transfers"] += 1


PROBES["vr"] = VRProbe


def crash_budget(spec, config) -> int | None:
    """How many replicas may be down (or up but still recovering their state) at once:
    any number when the protocol keeps its state on disk, f when it does not (VR's
    disk = "none", the paper's §4.3 assumption). Read from the registry's per-protocol
    rows_durable, not from a protocol name."""
    if spec.rows_durable(config):
        return None
    return (config.replicas - 1) // 2


class EPaxosProbe(ProbeBase):
    """Safety and reach of EPaxos cores (impl/lowpaxos/protocols/epaxos), read after
    every simulator event; the whole run's dependency graph checked at the end.

    Safety, every step: a committed instance holds the same (batch, seq, deps) at every
    replica and never changes (SOSP 2013 §4.5 / TR §4.6, stability and agreement),
    read from the core's own instance (not from the trace) for every instance the step's
    trace events name, and for every instance a restarted core loaded; two
    replicas that executed the same instances (the same executed frontier vector: an
    instance space executes in order, so the executed set is a vector) hold the same
    KVS digest; the cores check their own invariants after every step (the machine's
    invariant calls check_invariants too).

    At the end (``finish``), over the spec-level trace of the run (the EPaxos contract's
    events): the networkx checker (lowpaxos.check.epaxos_graph.check_events:
    agreement, consistency of interfering instances, execution against the
    condensation, one order of interfering instances everywhere), and no replica ever
    dropped a Commit that disagreed with its committed value.

    Reach (from the trace): commits by path (fast, slow, recovered), recoveries started
    (StartRecovery), instances recovered concurrently (two replicas started recovery of
    one instance before anyone committed it: Sutra 2019's scenario), recoveries that
    committed a NOP (nobody held the batch: case 5), executed components of more than one
    instance (a dependency cycle), restarts.
    """

    REACH = ("fast_commits", "slow_commits", "recovered_commits", "recoveries_started",
             "concurrent_recoveries", "noop_commits", "cycles_executed", "restarts")
    wants_trace = True

    def __init__(self, replicas: int) -> None:
        self.replicas = replicas
        self.committed: dict[tuple[int, int], tuple[object, int]] = {}  # inst -> (value, replica)
        self.digest_at: dict[tuple[int, ...], tuple[int, str]] = {}
        self.reach = dict.fromkeys(self.REACH, 0)
        # Per replica: [the core object, its step count, its executed vector] when last read.
        self._seen: list[list | None] = [None] * replicas
        self.trace: list[dict] = []
        self._trace_read = 0  # events of self.trace already looked at

    @staticmethod
    def recovering(core) -> bool:
        """Never: a restarted EPaxos replica has its disk."""
        return False

    @staticmethod
    def timeout_ticks(config) -> int:
        """How long a replica waits on an uncommitted instance before it recovers it
        (drawn from [recovery_ticks, 2*recovery_ticks), TR §4.5)."""
        return config.recovery_ticks

    def observe(self, cores: list) -> None:
        # The instances the latest steps touched, as their trace events name them.
        trace = self.trace
        touched = set()
        while self._trace_read < len(trace):
            event = trace[self._trace_read]
            self._trace_read += 1
            state = event.get("state")
            if state and "inst" in state and state["status"] in ("committed", "executed"):
                touched.add((event["replica"], tuple(state["inst"])))
        for replica, inst in touched:
            core = cores[replica]
            instance = core.instances.get(inst) if core is not None else None
            if instance is not None:
                self._check_instance(replica, inst, instance)
        for replica, core in enumerate(cores):
            if core is None:
                continue
            seen = self._seen[replica]
            if seen is None or seen[0] is not core:
                if seen is not None or core.instances or core.executed_count:
                    self.reach["restarts"] += 1
                seen = self._seen[replica] = [core, -1, None]
                self._check_all(replica, core)  # what it loaded from its disk
            if core.steps == seen[1]:
                continue  # no step since the last read: nothing changed
            seen[1] = core.steps
            executed = tuple(core.executed)
            if executed != seen[2]:
                seen[2] = executed
                digest = core.kvs.digest()
                first = self.digest_at.setdefault(executed, (replica, digest))
                assert first[1] == digest, (
                    f"replicas {first[0]} and {replica} executed the instances up to "
                    f"{list(executed)} but hold different states ({first[1]} != {digest})")

    def _check_all(self, replica: int, core) -> None:
        for inst, instance in core.instances.items():
            self._check_instance(replica, inst, instance)

    def _check_instance(self, replica: int, inst, instance) -> None:
        if instance.status.value not in ("committed", "executed"):
            return
        value = (instance.batch, instance.seq, instance.deps)
        known = self.committed.get(inst)
        if known is None:
            self.committed[inst] = (value, replica)
        elif known[0] != value:
            assert False, (
                f"instance {inst}: replica {replica} holds it committed with "
                f"(batch {_batch_name(value[0])}, seq {value[1]}, deps {list(value[2])}), "
                f"replica {known[1]} with (batch {_batch_name(known[0][0])}, seq "
                f"{known[0][1]}, deps {list(known[0][2])})")

    def finish(self, sim, trace: list[dict] | None, where: str = "") -> None:
        from lowpaxos.check.epaxos_graph import check_events

        prefix = f"{where}: " if where else ""
        conflicting = sim.drop_counts().get("core:conflicting_commit", 0)
        assert conflicting == 0, f"{prefix}{conflicting} Commit(s) disagreed with a committed value"
        assert trace is not None, "the EPaxos probe needs the trace events"
        for replica, core in enumerate(sim.cores()):
            if core is not None:
                self._check_all(replica, core)
        verdict = check_events(trace, self.replicas)
        assert verdict["ok"], f"{prefix}dependency-graph check: {verdict['explanation']}"
        self._count_reach(trace, verdict)

    def _count_reach(self, trace: list[dict], verdict: dict) -> None:
        first_commit: set[tuple[int, int]] = set()
        recovering: dict[tuple[int, int], set[int]] = {}
        concurrent: set[tuple[int, int]] = set()
        for event in trace:
            action = event.get("action")
            state = event.get("state")
            if not state or "inst" not in state:
                continue  # a replica-wide event (Restart, Status, Collect)
            inst = tuple(state["inst"])
            if action == "Commit":
                path = event.get("path")
                if path in ("fast", "slow", "recovered"):
                    self.reach[f"{path}_commits"] += 1
                if path == "recovered" and state["batch"] == "noop":
                    self.reach["noop_commits"] += 1
            elif action == "StartRecovery":
                self.reach["recoveries_started"] += 1
                if inst not in first_commit:
                    started = recovering.setdefault(inst, set())
                    started.add(event["replica"])
                    if len(started) >= 2:
                        concurrent.add(inst)
            if state["status"] in ("committed", "executed"):
                first_commit.add(inst)
        self.reach["concurrent_recoveries"] += len(concurrent)
        self.reach["cycles_executed"] += int(verdict["counts"].get("largest_component", 0) > 1)


def _batch_name(batch) -> str:
    from lowpaxos.protocols.common import batch_id

    return "none" if batch is None else batch_id(batch)


PROBES["epaxos"] = EPaxosProbe
