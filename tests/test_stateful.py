"""Hypothesis explores fault schedules against a simulated cluster, checking safety
after every simulator event and, at the end, liveness on a healed network and
linearizability of what clients saw.

The schedules favour what breaks Paxos (issue 12): a replica isolated or crashed
while its messages are in flight (in a leader-based protocol, the leader with its
Accepts: a leader change with accepts in flight), a crash between taking a message
and replying to it, every pending message of one kind delivered in a shuffled order
(promises in every order, competing candidates' prepares), messages held back and
replayed after the cluster moved on (stale messages after a new ballot), and
crash-restart cycles while the others go on (restarts from lagging disk state).
The rules name no protocol message: they act on replicas and on messages in flight,
so the same machine serves LowPaxos, VR (VARIANTS: VR in both disk modes; the
diskless one keeps at most f replicas down or recovering, crash_budget) and EPaxos
(3 keys, so most commands interfere). Two replicas' clocks may run ahead together
(time_out_together), so both time out on the same thing at once: competing candidates,
or two replicas recovering one EPaxos instance. What is checked and measured of a
protocol's cores comes from its probe (tests/harness.py, PROBES); EPaxos's also checks
the run's dependency graph with networkx at the end. Seeded sender cuts and one
scripted EPaxos schedule complete the sweeps (docs/testing.md).

The sync rules drive the deterministic simulator (impl/lowpaxos/sim); a failure
prints the program of rules that reproduces it. A module-end summary prints what the
schedules reached (elections, re-proposed slots, restarts with old-ballot entries).
"""

from __future__ import annotations

import dataclasses
import heapq
import random
from collections import Counter, defaultdict

import pytest
from hypothesis import event, settings, strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, initialize, invariant, precondition,
                                 rule)

from lowpaxos.check.linearizability import check_history
from lowpaxos.protocols.registry import PROTOCOLS
from lowpaxos.sim.faults import hostile_plan
from lowpaxos.sim.simulator import SimOptions, Simulator
from tests.harness import PROBES, crash_budget

REPLICAS = 3
TICK_US = 1_000
LIVENESS_US_MAX = 60_000_000
HELD_MAX = 8  # messages held back for a later replay, at most

# Config shapes, one drawn per example. A small log, window and cut interval, so that
# truncation, state transfers and back-pressure happen within a short run; values
# and chunks sized so that the state is many chunks (about one row per chunk) and
# transfers get interrupted. The second cuts the log after every slot and keeps only
# a window's worth beyond it, so lagging replicas and candidates sit at the cut's edge.
CONFIGS = {
    "lowpaxos": [
        dict(window_slots=4, snapshot_slots=8, log_slots_max=24, pending_commands_max=16,
             batch_bytes_max=300, transfer_chunk_bytes=64, transfer_window=2),
        dict(window_slots=2, snapshot_slots=1, log_slots_max=3, pending_commands_max=8,
             batch_bytes_max=200, transfer_chunk_bytes=64, transfer_window=2),
    ],
    # VR: the same two shapes in VR's settings (log_slots_max holds snapshot_slots +
    # window_slots, VRConfig.validate).
    "vr": [
        dict(window_slots=4, snapshot_slots=8, log_slots_max=24, pending_commands_max=16,
             batch_bytes_max=300, transfer_chunk_bytes=64, transfer_window=2),
        dict(window_slots=2, snapshot_slots=1, log_slots_max=3, pending_commands_max=8,
             batch_bytes_max=200, transfer_chunk_bytes=64, transfer_window=2),
    ],
    # EPaxos: a window of 4 own instances with the usual timers; then a window of 2,
    # short timers (recoveries start after 30 to 60 ticks, so a leader cut off or crashed
    # mid-instance is recovered within a short run, often by two replicas at once) and
    # collection after every executed instance, so that Commits, Prepares and PreAccepts
    # of collected instances arrive late.
    "epaxos": [
        dict(window_instances=4, pending_commands_max=16, batch_bytes_max=300,
             collect_instances=8, invariant_full_scan_steps=50),
        dict(window_instances=2, pending_commands_max=8, batch_bytes_max=200,
             collect_instances=1, rows_persist_ticks=5, status_ticks=5, commit_resend_max=2,
             preaccept_retry_ticks=5, accept_retry_ticks=5, prepare_retry_ticks=10,
             recovery_ticks=30, invariant_full_scan_steps=50),
    ],
}
SHAPES = 2
assert all(len(shapes) == SHAPES for shapes in CONFIGS.values())
# Every core checks its invariants after every step, its per-entry scan included
# (invariant_full_scan_steps=1), unless a shape says otherwise. EPaxos's scan walks
# every instance held, and while a replica is down nothing is collected: at 1 the scan
# took 43% of the EPaxos machine's time (73 of 172 s profiled, 10 examples), so it runs
# every 10th step there; the probe's agreement and digest checks still run every event.


def config_options(protocol: str, options: dict, shape: int) -> dict:
    return {"invariant_full_scan_steps": 1, **options, **CONFIGS[protocol][shape]}

# What runs under the same rules: (protocol, config options) by name. VR in both disk
# modes: "none" is the paper's diskless replicas, where the crash rules keep at most f
# replicas down or recovering at once (crash_budget, from the registry's rows_durable).
VARIANTS = {
    "lowpaxos": ("lowpaxos", {}),
    "vr-sync": ("vr", {"disk": "sync"}),
    "vr-none": ("vr", {"disk": "none"}),
    "epaxos": ("epaxos", {}),
}

# What the schedules reached, summed over the examples of this run (printed at the end):
# the Hypothesis machine's examples and the seeded hostile runs apart.
# Keys the machine's clients touch, by protocol (12 unless listed): few keys for a
# protocol whose commits depend on conflicts, so that most commands interfere.
MACHINE_KEYS: dict[str, int] = {"epaxos": 3}

REACH_TOTAL: defaultdict[str, Counter] = defaultdict(Counter)  # by variant
REACH_HOSTILE: defaultdict[str, Counter] = defaultdict(Counter)
REACH_SENDER_CUT: defaultdict[str, Counter] = defaultdict(Counter)


class ClusterMachine(RuleBasedStateMachine):
    """One simulated cluster per example; rules are faults and the passage of time.
    ``variant`` (a key of VARIANTS) names the protocol and its options; the TestCase
    classes below differ in that alone."""

    variant = "lowpaxos"

    def __init__(self) -> None:
        super().__init__()
        self.sim: Simulator | None = None
        self.held: list = []  # InFlight messages taken off the wire, to replay later

    @initialize(shape=st.integers(0, SHAPES - 1), seed=st.integers(0, 2**16))
    def start(self, shape, seed):
        protocol, options = VARIANTS[self.variant]
        spec = PROTOCOLS[protocol]
        config = spec.make_config(REPLICAS, **config_options(protocol, options, shape))
        self.probe = PROBES[protocol](REPLICAS)
        self.budget = crash_budget(spec, config)
        self.shape = shape
        self.timeout_ticks = self.probe.timeout_ticks(config)
        # The spec-level trace events, for a probe that checks them at the end (the
        # EPaxos dependency-graph checker); tracing stays off for the others.
        self.trace: list[dict] | None = [] if self.probe.wants_trace else None
        if self.trace is not None:
            self.probe.attach_trace(self.trace)
        # The probe reads the cores after every event the simulator logs (every
        # delivery, tick, client step and fault), so a violation is caught at the step
        # that made it, even inside a long run of events.
        self.sim = Simulator(spec, config, SimOptions(
            replicas=REPLICAS, clients=4, ops=10_000, keys=MACHINE_KEYS.get(protocol, 12),
            value_bytes=40, seed=seed, tick_us=TICK_US, print_events=self._observe,
            trace_events=self.trace.append if self.trace is not None else None))

    def _observe(self, line: str) -> None:
        self.probe.observe(self.sim.cores())

    def _may_crash(self) -> bool:
        """Whether one more replica may go down: always when state is on disk; while
        fewer than f are down or recovering when it is not (crash_budget)."""
        return self.budget is None or impaired(self.sim, self.probe) < self.budget

    def _replica_traffic(self) -> list:
        return [f for f in self.sim.pending_messages()
                if f.source < REPLICAS and f.target < REPLICAS]

    def _pick_by_kind(self, pick: int):
        """A replica message in flight, every kind pending equally likely: periodic
        traffic (heartbeats, status) outnumbers the rare kinds (a leader's Accepts and
        Commits, a recoverer's Prepares), which the faults aimed at senders need most."""
        pending = self._replica_traffic()
        kinds = sorted({f.type_name for f in pending})
        kind = kinds[pick % len(kinds)]
        of_kind = [f for f in pending if f.type_name == kind]
        return of_kind[(pick // len(kinds)) % len(of_kind)]

    # ---- the passage of time and the workload ----

    @rule(events=st.integers(1, 60))
    def run_events(self, events):
        for _ in range(events):
            if not self.sim.step():
                break

    @rule(ms=st.integers(1, 400))
    def advance_time(self, ms):
        self.sim.run_until(self.sim.now_us + ms * 1000, events_max=20_000)

    # ---- the network by hand ----

    @precondition(lambda self: self.sim.pending_messages())
    @rule(pick=st.integers(0, 10_000))
    def deliver_out_of_order(self, pick):
        pending = self.sim.pending_messages()
        self.sim.deliver_now(pending[pick % len(pending)].msg_id)

    @precondition(lambda self: self._replica_traffic())
    @rule(pick=st.integers(0, 10_000), order=st.randoms(use_true_random=False))
    def deliver_all_of_a_kind(self, pick, order):
        """Every pending replica message of one kind (all promises, all prepares, ...),
        in a shuffled order: promises in every order, prepares of competing candidates."""
        pending = self._replica_traffic()
        kind = self._pick_by_kind(pick).type_name
        chosen = [f.msg_id for f in pending if f.type_name == kind]
        order.shuffle(chosen)
        for msg_id in chosen:
            if msg_id in {f.msg_id for f in self.sim.pending_messages()}:
                self.sim.deliver_now(msg_id)

    @precondition(lambda self: self.sim.pending_messages())
    @rule(pick=st.integers(0, 10_000))
    def drop_message(self, pick):
        pending = self.sim.pending_messages()
        self.sim.drop(pending[pick % len(pending)].msg_id)

    @precondition(lambda self: self._replica_traffic())
    @rule(pick=st.integers(0, 10_000))
    def drop_all_from_a_sender(self, pick):
        """Everything one replica has in flight is lost: its proposal reaches nobody."""
        pending = self._replica_traffic()
        source = self._pick_by_kind(pick).source
        for flight in pending:
            if flight.source == source:
                self.sim.drop(flight.msg_id)

    @precondition(lambda self: self.sim.pending_messages())
    @rule(pick=st.integers(0, 10_000))
    def duplicate_message(self, pick):
        pending = self.sim.pending_messages()
        self.sim.duplicate(pending[pick % len(pending)].msg_id)

    @precondition(lambda self: self._replica_traffic() and len(self.held) < HELD_MAX)
    @rule(pick=st.integers(0, 10_000))
    def hold_message(self, pick):
        """Take a replica message off the wire; replay_held delivers it much later."""
        flight = self._pick_by_kind(pick)
        self.held.append(flight)
        self.sim.drop(flight.msg_id)

    @precondition(lambda self: self.held)
    @rule(pick=st.integers(0, 10_000))
    def replay_held(self, pick):
        """Deliver a held message now, after whatever happened meanwhile (a new ballot,
        a restart): the stale message a slow network hands over late."""
        flight = self.held.pop(pick % len(self.held))
        # The simulator has no public call to put bytes back on the wire; _launch is the
        # one its own network uses, and the message then takes the usual delivery path
        # (a partition cuts it, a crashed target drops it).
        msg_id = self.sim._launch(flight.source, flight.target, flight.data, flight.type_name)
        self.sim.deliver_now(msg_id)

    @rule(isolated=st.integers(0, REPLICAS - 1))
    def partition(self, isolated):
        rest = tuple(r for r in range(REPLICAS) if r != isolated)
        self.sim.partition(((isolated,), rest))

    @precondition(lambda self: self._replica_traffic())
    @rule(pick=st.integers(0, 10_000))
    def isolate_a_sender(self, pick):
        """Cut off a replica that has messages in flight (they are cut too): in a
        leader-based protocol, most often the leader with its Accepts under way."""
        self.partition(self._pick_by_kind(pick).source)

    @rule(a=st.integers(0, REPLICAS - 1), b=st.integers(0, REPLICAS - 1))
    def bridge(self, a, b):
        """Cut one link only: the replicas on either side still reach the others, so two
        candidates that cannot hear each other may both reach the one between them."""
        if a != b:
            self.sim.cut_links = {(min(a, b), max(a, b))}

    @rule()
    def split_everyone(self):
        """Every replica alone: each times out and campaigns, with rising rounds."""
        self.sim.partition(tuple((r,) for r in range(REPLICAS)))

    @rule()
    def heal(self):
        self.sim.heal()

    # ---- clocks ----

    @rule(a=st.integers(0, REPLICAS - 1), b=st.integers(0, REPLICAS - 1),
          quarters=st.integers(1, 8))
    def time_out_together(self, a, b, quarters):
        """Two replicas' clocks run ahead together: each ticks up to twice its timeout
        (a quarter of a timeout at a time), alternately, with nothing delivered in
        between, so both time out on the same thing at once and their messages cross:
        two candidates of one round (LowPaxos, VR), two replicas recovering the same
        instance (EPaxos explicit prepare, concurrently: Sutra 2019's scenario)."""
        if a == b:
            return
        # A tick outside the simulator's tick chain: _run_core is how the simulator
        # runs its own ticks (there is no public call for an extra one); the effects
        # are carried out and logged as usual.
        for _ in range(max(1, self.timeout_ticks * quarters // 4)):
            for replica in (a, b):
                core = self.sim.cores()[replica]
                if core is not None:
                    self.sim._run_core(self.sim.replicas[replica], "tick", core.on_tick)

    # ---- replicas ----

    @precondition(lambda self: self._may_crash())
    @rule(replica=st.integers(0, REPLICAS - 1))
    def crash(self, replica):
        self.sim.crash(replica)

    @rule(replica=st.integers(0, REPLICAS - 1))
    def restart(self, replica):
        self.sim.restart(replica)

    @precondition(lambda self: self._may_crash() and self._replica_traffic())
    @rule(pick=st.integers(0, 10_000))
    def crash_a_sender(self, pick):
        """Crash a replica whose messages are still in flight; they arrive after it died."""
        self.sim.crash(self._pick_by_kind(pick).source)

    @precondition(lambda self: self._may_crash() and self._replica_traffic())
    @rule(pick=st.integers(0, 10_000))
    def crash_after_taking(self, pick):
        """Deliver a message, lose every reply to it, crash the receiver: what it
        persisted stays, what it meant to tell the others is gone (a crash between
        accepting and replying)."""
        flight = self._pick_by_kind(pick)
        newest = max(f.msg_id for f in self.sim.pending_messages())
        self.sim.deliver_now(flight.msg_id)
        for reply in self.sim.pending_messages():
            if reply.msg_id > newest and reply.source == flight.target:
                self.sim.drop(reply.msg_id)
        self.sim.crash(flight.target)

    @precondition(lambda self: self._may_crash())
    @rule(replica=st.integers(0, REPLICAS - 1), ms=st.integers(1, 600))
    def crash_and_restart_later(self, replica, ms):
        """Down while the others go on, then back from its lagging disk."""
        self.sim.crash(replica)
        self.sim.run_until(self.sim.now_us + ms * 1000, events_max=20_000)
        self.sim.restart(replica)

    # ---- safety after every step ----

    @invariant()
    def cores_consistent(self):
        if self.sim is None:
            return
        for core in self.sim.cores():
            if core is not None:
                core.check_invariants()
        self.probe.observe(self.sim.cores())

    def teardown(self) -> None:
        """Liveness on a healed network, then every acknowledged write is everywhere
        and the history is linearizable."""
        sim = self.sim
        if sim is None:
            return
        sim.end_faults()
        # Stop issuing new work: the clients finish what is outstanding.
        sim.options = dataclasses.replace(sim.options, ops=sim.ops_issued)
        finished = sim.run_until_quiet(sim.now_us + LIVENESS_US_MAX, events_max=3_000_000,
                                       wall_s_max=120)
        assert finished, "clients did not finish on a healed network"
        settled = sim.run_while(lambda: len(set(sim.kvs_digests())) != 1,
                                sim.now_us + LIVENESS_US_MAX, events_max=1_000_000,
                                wall_s_max=60)
        assert settled, f"replicas did not converge: {sim.kvs_digests()}"
        self.probe.observe(sim.cores())
        # What the probe checks of the whole run (EPaxos: the dependency graph).
        self.probe.finish(sim, self.trace)
        # Stamps, not microseconds: only truly concurrent operations tie (issue 12).
        history = sim.history_operations()
        verdict = check_history(history, time_limit_s=60)
        assert verdict.linearizable is True, verdict.explanation
        # What the schedule reached, for `pytest --hypothesis-show-statistics` and the
        # module summary.
        totals = REACH_TOTAL[self.variant]
        totals["examples"] += 1
        totals[f"examples_config_{self.shape}"] += 1
        for name, count in self.probe.reach.items():
            totals[name] += count
            if count:
                totals[f"examples_with_{name}"] += 1
            event(f"{name}: {min(count, 5)}{'+' if count >= 5 else ''}")
        if any(hasattr(core, "transfers_installed") for core in sim.cores()):
            installs = sum(core.transfers_installed for core in sim.cores())
            totals["transfers_installed"] += installs
            totals["examples_with_transfers_installed"] += bool(installs)
            event(f"transfers installed (replicas): {installs}")


def impaired(sim: Simulator, probe) -> int:
    """Replicas down, or up but still recovering their state (the probe says)."""
    return sum(1 for core in sim.cores() if core is None or probe.recovering(core))


def machine_for(variant: str, examples_share: float):
    """The one machine for ``variant``, with a share of the profile's examples."""
    machine = type(f"ClusterMachine_{variant.replace('-', '_')}", (ClusterMachine,),
                   {"variant": variant})
    case = machine.TestCase
    case.settings = settings(max_examples=max(1, round(settings.default.max_examples
                                                        * examples_share)))
    return case


TestCluster = ClusterMachine.TestCase
# VR in both disk modes, with fewer examples than LowPaxos (the time budget of make
# test; docs/testing.md gives the numbers).
VR_EXAMPLES_SHARE = 0.4
TestClusterVRSync = machine_for("vr-sync", VR_EXAMPLES_SHARE)
TestClusterVRDiskless = machine_for("vr-none", VR_EXAMPLES_SHARE)
# EPaxos (3 replicas, 3 keys: most commands interfere), within its 60 s of make test.
EPAXOS_EXAMPLES_SHARE = 0.4
TestClusterEPaxos = machine_for("epaxos", EPAXOS_EXAMPLES_SHARE)


# ---- Seeded hostile schedules: the simulator's own network and fault plan ----

# Seeds of the CI sweep (enough for the mutants of docs/testing.md): each a 1.5 s (virtual) safety phase under hostile_plan, with
# the probe checking every event, then liveness, convergence and linearizability.
HOSTILE_SEEDS = {"lowpaxos": range(120), "vr-sync": range(40), "vr-none": range(40),
                 "epaxos": range(30)}
HOSTILE_WINDOW_US = 1_500_000


def hostile_run(seed: int, variant: str = "lowpaxos") -> dict:
    """One seeded run under a hostile plan; returns the probe's reach. Fails (assert)
    on any safety, liveness or linearizability violation, naming the seed."""
    rng = random.Random(seed)
    protocol, options = VARIANTS[variant]
    spec = PROTOCOLS[protocol]
    shapes = CONFIGS[protocol]
    config = spec.make_config(REPLICAS, **config_options(protocol, options,
                                                         seed % len(shapes)))
    plan, cuts = hostile_plan(rng, REPLICAS, HOSTILE_WINDOW_US, TICK_US,
                              election_ticks=PROBES[protocol].timeout_ticks(config))
    budget = crash_budget(spec, config)
    crashes = ()
    if budget is not None:
        # The plan's crashes ignore who else is down; here each is made between runs of
        # events only if the budget allows it then (and its restart is then scheduled).
        crashes, plan = plan.crashes, dataclasses.replace(plan, crashes=())
    probe = PROBES[protocol](REPLICAS)
    trace: list[dict] | None = [] if probe.wants_trace else None
    if trace is not None:
        probe.attach_trace(trace)
    cell: list[Simulator] = []
    sim = Simulator(spec, config, SimOptions(
        replicas=REPLICAS, clients=rng.choice((3, 6)), ops=1_000_000, keys=rng.choice((2, 6)),
        value_bytes=40, seed=seed, tick_us=TICK_US,
        print_events=lambda line: probe.observe(cell[0].cores()),
        trace_events=trace.append if trace is not None else None), plan)
    cell.append(sim)
    where = (f"{variant} seed {seed} ({plan.describe()}, {len(cuts)} link cuts, "
             f"{len(crashes)} budgeted crashes)")
    # The simulator's FaultPlan knows group partitions only; any set of links (a bridge)
    # is cut here, through its cut_links, between runs of events; so are budgeted crashes.
    timeline = []  # (time, order, kind, value)
    for order, cut in enumerate(cuts):
        timeline.append((cut.time_us, 2 * order, "cut", cut.links))
        timeline.append((cut.time_us + cut.duration_us, 2 * order + 1, "heal_links", None))
    for crash in crashes:
        timeline.append((crash.time_us, len(timeline), "crash", crash))
    heapq.heapify(timeline)
    while timeline:
        time_us, _, kind, value = heapq.heappop(timeline)
        if time_us >= HOSTILE_WINDOW_US:
            break
        sim.run_until(time_us, events_max=2_000_000)
        if kind == "cut":
            sim.cut_links = set(value)
        elif kind == "heal_links":
            sim.cut_links = set()
        elif kind == "crash":
            if sim.cores()[value.replica] is not None and impaired(sim, probe) < budget:
                sim.crash(value.replica)
                heapq.heappush(timeline, (time_us + value.downtime_us, len(timeline) + 10**6,
                                          "restart", value.replica))
        else:
            sim.restart(value)
    sim.cut_links = set()
    sim.run_until(HOSTILE_WINDOW_US, events_max=2_000_000)
    return settle_and_check(sim, probe, trace, where)


def settle_and_check(sim: Simulator, probe, trace: list[dict] | None, where: str) -> dict:
    """The end of a seeded run: every replica up on a clean network, the clients finish,
    the replicas converge, the probe's whole-run checks, linearizability; the reach."""
    sim.end_faults()
    sim.options = dataclasses.replace(sim.options, ops=sim.ops_issued)
    assert sim.run_until_quiet(sim.now_us + LIVENESS_US_MAX, events_max=3_000_000,
                               wall_s_max=120), f"{where}: clients did not finish when healed"
    assert sim.run_while(lambda: len(set(sim.kvs_digests())) != 1,
                         sim.now_us + LIVENESS_US_MAX, events_max=1_000_000, wall_s_max=60), \
        f"{where}: replicas did not converge: {sim.kvs_digests()}"
    probe.observe(sim.cores())
    probe.finish(sim, trace, where)
    history = sim.history_operations()
    verdict = check_history(history, time_limit_s=60)
    assert verdict.linearizable is True, f"{where}: {verdict.explanation}"
    reach = dict(probe.reach)
    if any(hasattr(core, "transfers_installed") for core in sim.cores()):
        reach["transfers_installed"] = sum(core.transfers_installed for core in sim.cores())
    return reach


# ---- Seeded sender cuts: a replica cut off the moment it sends one kind of message ----

# Seeds per variant. Each run cuts SENDER_CUTS replicas off, one after another, each at
# the very step it sends a message of a chosen kind (kinds in rotation, by name, over
# those seen so far; none is named here), for three timeouts, with a timeout of calm
# after each: a leader cut off with its second-phase messages and its commit all in
# flight, a recoverer cut off with its prepares, an acceptor with its replies. A fault
# plan's random times almost never fall inside one message's flight time.
SENDER_CUT_SEEDS = {"epaxos": range(2)}
SENDER_CUTS = 8


def sender_cut_run(seed: int, variant: str) -> dict:
    protocol, options = VARIANTS[variant]
    spec = PROTOCOLS[protocol]
    config = spec.make_config(REPLICAS, **config_options(protocol, options, seed % SHAPES))
    timeout_us = PROBES[protocol].timeout_ticks(config) * TICK_US
    probe = PROBES[protocol](REPLICAS)
    trace: list[dict] | None = [] if probe.wants_trace else None
    if trace is not None:
        probe.attach_trace(trace)
    lines: list[str] = []
    cell: list[Simulator] = []

    def observe(line: str) -> None:
        lines.append(line)
        probe.observe(cell[0].cores())

    sim = Simulator(spec, config, SimOptions(
        replicas=REPLICAS, clients=3, ops=1_000_000, keys=MACHINE_KEYS.get(protocol, 12),
        value_bytes=40, seed=seed, tick_us=TICK_US, print_events=observe,
        trace_events=trace.append if trace is not None else None))
    cell.append(sim)
    kinds: set[str] = set()
    cuts = []
    sim.run_until(timeout_us, events_max=2_000_000)
    for cut in range(SENDER_CUTS):
        target = None
        give_up_us = sim.now_us + 2 * timeout_us  # the kind may not be sent again soon
        for _ in range(200_000):
            if sim.now_us > give_up_us:
                break
            lines.clear()
            if not sim.step():
                break
            sender, sent = sent_by(lines)
            kinds.update(sent)
            wanted = sorted(kinds)[(seed + cut) % len(kinds)] if kinds else None
            if sender is not None and wanted in sent:
                target = (sender, wanted)
                break
        if target is None:
            continue
        cuts.append(f"r{target[0]} at its {target[1]}")
        sim.partition(((target[0],), tuple(r for r in range(REPLICAS) if r != target[0])))
        sim.run_until(sim.now_us + 3 * timeout_us, events_max=2_000_000)
        sim.heal()
        sim.run_until(sim.now_us + timeout_us // 2, events_max=2_000_000)
    return settle_and_check(sim, probe, trace,
                            f"{variant} seed {seed} (sender cuts: {', '.join(cuts)})")


def sent_by(lines: list[str]) -> tuple[int | None, set[str]]:
    """The replica whose step logged ``lines`` and the kinds of the replica messages it
    put on the wire (the simulator's event line: "t=T rN what ... -> Kind>rM:mID ...")."""
    for line in lines:
        head, _, sends = line.partition(" -> ")
        words = head.split()
        if len(words) < 2 or not words[1][:1] == "r" or not words[1][1:].isdigit():
            continue
        kinds = {word.split(">")[0] for word in sends.split()
                 if ">r" in word and ":m" in word}
        if kinds:
            return int(words[1][1:]), kinds
    return None, set()


@pytest.mark.parametrize("variant,seed", [
    pytest.param(variant, seed, id=f"{variant}-{seed}")
    for variant, seeds in SENDER_CUT_SEEDS.items() for seed in seeds])
def test_sender_cut_schedule(variant, seed):
    """A replica cut off at the step it sends a message of one kind (every kind in turn),
    for three timeouts: safety at every event, then liveness, convergence, the probe's
    whole-run checks and linearizability."""
    reach = sender_cut_run(seed, variant)
    totals = REACH_SENDER_CUT[variant]
    totals["examples"] += 1
    for name, count in reach.items():
        totals[name] += count
        totals[f"examples_with_{name}"] += bool(count)


@pytest.mark.parametrize("variant,seed", [
    pytest.param(variant, seed, id=f"{variant}-{seed}")
    for variant, seeds in HOSTILE_SEEDS.items() for seed in seeds])
def test_hostile_schedule(variant, seed):
    """A seeded run under hostile_plan (leaders cut off with proposals in flight, every
    replica alone, crash-restarts, loss, duplication, reordering past new ballots) keeps
    every committed slot and applied state equal everywhere at every event, finishes
    on a healed network, converges and is linearizable."""
    reach = hostile_run(seed, variant)
    totals = REACH_HOSTILE[variant]
    totals["examples"] += 1
    for name, count in reach.items():
        totals[name] += count
        totals[f"examples_with_{name}"] += bool(count)


def reach_line(title: str, totals: Counter) -> str | None:
    """One line of what a set of examples reached: totals, per example, examples with any."""
    examples = totals["examples"]
    if not examples:
        return None
    parts = [f"{examples} examples"]
    names = [key for key in totals if key != "examples" and not key.startswith("examples_")]
    for name in names:
        parts.append(f"{name} {totals[name]} ({totals[name] / examples:.1f}/example,"
                     f" in {totals['examples_with_' + name]})")
    return f"{title}: " + "; ".join(parts)


@pytest.fixture(scope="module", autouse=True)
def print_reach(request):
    """After the module: what the schedules reached over all examples of this run."""
    yield
    lines = [line for variant in VARIANTS
             for line in (reach_line(f"{variant} stateful reach", REACH_TOTAL[variant]),
                          reach_line(f"{variant} hostile-plan reach", REACH_HOSTILE[variant]),
                          reach_line(f"{variant} sender-cut reach", REACH_SENDER_CUT[variant]))
             if line]
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None or not lines:
        return
    # Past the capture, so that `make test` prints it too.
    with capture.global_and_fixture_disabled():
        reporter.write_line("")
        for line in lines:
            reporter.write_line(line)


# ---- Scripted schedules: a fault the seeded sweeps did not reach, written out ----


def test_epaxos_leader_lost_with_its_accepts_commits_nothing_alone():
    """EPaxos, SOSP 2013 §4.3 Phase 2: a slow-path leader commits only with F AcceptOKs
    besides its own. Schedule: replicas 1 and 2 each hold an instance on key k that
    nobody else has seen (their PreAccepts lost); replica 0 proposes on k, replica 1's
    PreAcceptOK reports the extra dependency, so replica 0 takes the slow path; every
    Accept (and anything else) it sends is lost and it crashes. Replicas 1 and 2
    recover its instance: case 4, a fresh Phase 1 that now also finds replica 2's
    instance. When replica 0 comes back, every replica must hold one committed value.
    The seeded sweeps never cut a slow-path leader off inside the flight time of its
    Accepts with the attributes differing (docs/testing.md, EPaxos mutants)."""
    from tests.test_epaxos_core import Cluster, m

    cluster = Cluster(3, batching=False)
    cluster.request(1, "put", "k", b"y", client=2)
    cluster.take()  # replica 1's PreAccept lost
    cluster.request(2, "put", "k", b"z", client=3)
    cluster.take()  # replica 2's PreAccept lost
    cluster.request(0, "put", "k", b"x", client=1)
    assert cluster.deliver_matching(m.PreAccept, source=0) == 1
    assert cluster.deliver_matching(m.PreAcceptOK, target=0) == 1
    sent = cluster.take(source=0)
    assert {type(message) for _, _, message in sent} >= {m.Accept}, "the slow path"
    cluster.crash(0)
    inst = (0, 1)
    for _ in range(2_000):
        cluster.tick(1)
        cluster.tick(2)
        cluster.settle()
        if cluster.committed(1, inst) and cluster.committed(2, inst):
            break
    assert cluster.committed(1, inst) is not None, "replicas 1 and 2 recover the instance"
    cluster.restart(0)
    for _ in range(2_000):  # replica 0 learns it by recovering its own instance (case 1)
        cluster.tick_all()
        cluster.settle()
        if cluster.committed(0, inst):
            break
    values = {cluster.committed(replica, inst) for replica in range(3)}
    assert len(values) == 1, f"instance {inst} committed with different values: {values}"
    assert sum(core.drops.get("conflicting_commit", 0) for core in cluster.cores) == 0
