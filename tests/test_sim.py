"""The simulator: same seed, same run; the network knobs and crashes do what they say;
and the real LowPaxos core ends linearizable with equal replicas under faults."""

from __future__ import annotations

import dataclasses
import json
import random
from collections import Counter
from dataclasses import dataclass

import pytest

from lowpaxos.cli import main
from lowpaxos.core.api import ClientReply, ClientRequest, Effects, ReplyStatus
from lowpaxos.kvs import KeyValueStore
from lowpaxos.protocols.lowpaxos.durable import DurableState
from lowpaxos.protocols.lowpaxos.messages import Accept, Ballot, Entry, SaveEntries
from lowpaxos.sim import Crash, FaultPlan, Partition, RunLimits, SimOptions, Simulator, run
from lowpaxos.sim.topology import load

BALLOT = Ballot(1, 0)


class EchoCore:
    """A trivial single-leader core: replica 0 applies, persists and acknowledges at
    once and pushes each command to the followers; no safety under faults (a fake)."""

    def __init__(self, config, replica_id, rng, durable=None, trace=False):
        self.replica_id = replica_id
        self.replicas = config.replicas
        self.rng = rng
        self.kvs = KeyValueStore()
        self.log: dict[int, Entry] = {}
        self.received: list[int] = []  # volatile: slots heard of in this incarnation
        self.ticks = 0  # volatile
        if durable is not None:
            for slot in sorted(durable.entries):
                self._apply(durable.entries[slot])

    def _apply(self, entry: Entry) -> None:
        self.log[entry.slot] = entry
        for command in entry.batch:
            self.kvs.apply(command, entry.slot)

    def on_tick(self) -> Effects:
        self.ticks += 1
        return Effects()

    def on_client_request(self, request: ClientRequest) -> Effects:
        command = request.command
        if self.replica_id != 0:
            return Effects(reply=[ClientReply(command.client_id, command.request_id,
                                              ReplyStatus.NOT_LEADER, None, 0)])
        slot = len(self.log) + 1
        entry = Entry(slot, BALLOT, (command,))
        self._apply(entry)
        result = self.kvs.session_result(command.client_id, command.request_id)[1]
        return Effects(
            persist=[SaveEntries((entry,))],
            send=[(peer, Accept(BALLOT, slot, entry.batch, slot, 0))
                  for peer in range(1, self.replicas)],
            reply=[ClientReply(command.client_id, command.request_id, ReplyStatus.OK, result, 0)],
        )

    def on_message(self, source: int, message) -> Effects:
        self.received.append(message.slot)
        # Followers persist only even slots: the odd ones live in memory alone, so a
        # crash must lose exactly those.
        entry = Entry(message.slot, message.ballot, message.batch)
        if message.slot not in self.log:
            self._apply(entry)
        persist = [SaveEntries((entry,))] if message.slot % 2 == 0 else []
        return Effects(persist=persist)

    def drop_counts(self) -> dict[str, int]:
        return {}

    def check_invariants(self) -> None:
        pass


@dataclass(frozen=True)
class EchoConfig:
    replicas: int


class EchoSpec:
    name = "echo"

    @staticmethod
    def make_core(config, replica_id, rng, durable=None, trace=False):
        return EchoCore(config, replica_id, rng, durable, trace)

    new_durable = DurableState

    @staticmethod
    def make_config(replicas, **options):
        return EchoConfig(replicas)


def echo_sim(seed: int = 1, plan: FaultPlan | None = None, **options) -> Simulator:
    settings = dict(replicas=3, clients=4, ops=60, seed=seed)
    settings.update(options)
    return Simulator(EchoSpec, EchoConfig(settings["replicas"]), SimOptions(**settings), plan)


def test_same_seed_same_trace_and_different_seed_different_trace():
    """Two runs with one seed produce the same event lines (equal digests); another seed
    changes them."""
    digests = []
    for seed in (7, 7, 8):
        sim = echo_sim(seed, FaultPlan(loss=0.1, dup=0.1, reorder=0.2))
        assert sim.run_until_quiet(time_us_max=10_000_000)
        digests.append(sim.trace_digest)
    assert digests[0] == digests[1]
    assert digests[0] != digests[2]


def test_no_faults_every_request_is_acknowledged_and_replicated():
    """Without faults every client request is answered once and every follower applies it."""
    sim = echo_sim()
    assert sim.run_until_quiet(time_us_max=10_000_000)
    assert sim.ops_issued == 60
    assert all(record.response_us is not None for record in sim.history)
    sim.run_until(sim.now_us + 10_000)
    assert len(set(sim.kvs_digests())) == 1
    assert sim.replica_messages == 2 * 60  # one Accept to each of two followers per request


def test_loss_drops_messages():
    """With loss 1.0 nothing arrives and nothing commits; with 0.3 about 30% is lost."""
    sim = echo_sim(plan=FaultPlan(loss=1.0))
    sim.run_until(200_000)
    assert sim.drop_counts()["net:loss"] == sim.client_messages + sim.replica_messages
    assert not any(record.response_us for record in sim.history)
    sim = echo_sim(plan=FaultPlan(loss=0.3), ops=400)
    sim.run_until_quiet(time_us_max=60_000_000)
    sent = sim.client_messages + sim.replica_messages
    assert 0.2 < sim.drop_counts()["net:loss"] / sent < 0.4


def test_dup_duplicates_messages():
    """With dup 1.0 each follower receives every Accept exactly twice (the echo leader
    also logs duplicated client requests again, so it holds more than 60 slots)."""
    sim = echo_sim(plan=FaultPlan(dup=1.0))
    assert sim.run_until_quiet(time_us_max=10_000_000)
    sim.run_until(sim.now_us + 10_000)
    slots = len(sim.replicas[0].core.log)
    assert slots > 60
    follower = sim.replicas[1].core
    assert Counter(follower.received) == {slot: 2 for slot in range(1, slots + 1)}


def test_reorder_delays_some_messages_past_later_ones():
    """With reorder 1.0 and no jitter, a follower sees Accepts out of send order."""
    sim = echo_sim(plan=FaultPlan(reorder=1.0, reorder_delay_us_max=5_000))
    assert sim.run_until_quiet(time_us_max=10_000_000)
    sim.run_until(sim.now_us + 10_000)
    received = sim.replicas[1].core.received
    assert sorted(received) == list(range(1, 61))
    assert received != sorted(received)


def test_partition_cuts_links_until_healed():
    """A follower cut off from the leader hears nothing until heal(); clients keep their links."""
    sim = echo_sim(ops=20)
    sim.partition([[0, 1], [2]])
    assert sim.run_until_quiet(time_us_max=10_000_000)
    sim.run_until(sim.now_us + 10_000)
    assert sim.replicas[1].core.received
    assert sim.replicas[2].core.received == []
    assert sim.drop_counts()["net:partition"] == 20
    sim.heal()
    scripted = echo_sim(ops=40, plan=FaultPlan(partitions=(Partition(0, ((0,), (1, 2)), 10**9),)))
    scripted.run_until_quiet(time_us_max=10_000_000)
    assert scripted.replicas[1].core.received == []


def test_crash_loses_unpersisted_state_and_keeps_the_disk():
    """A crash throws away everything the core did not persist; the restarted core sees
    exactly the durable records (the echo follower persists only even slots)."""
    sim = echo_sim(ops=10, clients=1)
    assert sim.run_until_quiet(time_us_max=10_000_000)
    sim.run_until(sim.now_us + 5_000)
    before = sim.replicas[1].core
    assert sorted(before.log) == list(range(1, 11)) and before.ticks > 0
    assert sim.crash(1) and not sim.crash(1)
    assert sim.live_replicas() == [0, 2]
    assert sim.restart(1) and not sim.restart(1)
    after = sim.replicas[1].core
    assert after is not before
    assert sorted(after.log) == [2, 4, 6, 8, 10]
    assert after.received == [] and after.ticks == 0
    # Messages to a crashed replica are dropped, and its tick chain stops.
    sim.crash(2)
    sim.run_until(sim.now_us + 50_000)
    assert sim.replicas[2].core is None


def test_scripted_crash_plan_runs_and_restarts():
    """A FaultPlan crash happens at its time and the replica comes back after its downtime."""
    sim = echo_sim(plan=FaultPlan(crashes=(Crash(5_000, 2, 20_000),)))
    sim.run_until(10_000)
    assert sim.replicas[2].core is None
    sim.run_until(30_000)
    assert sim.replicas[2].core is not None
    assert sim.faults_injected["crash"] == 1


def test_hand_control_of_the_network():
    """pending_messages, deliver_now, drop and duplicate let a test drive delivery."""
    sim = echo_sim(ops=1, clients=1)
    while not sim.pending_messages():
        assert sim.step()
    (request,) = sim.pending_messages()
    assert request.type_name == "ClientRequest"
    copy_id = sim.duplicate(request.msg_id)
    sim.drop(copy_id)
    sim.deliver_now(request.msg_id)
    pending = sim.pending_messages()
    assert sorted(flight.type_name for flight in pending) == ["Accept", "Accept", "ClientReply"]
    for flight in pending:
        sim.deliver_now(flight.msg_id)
    assert sim.history[0].response_us == sim.now_us
    assert sim.drop_counts()["net:dropped_by_hand"] == 1


def test_wan_topology_places_replicas_round_robin():
    """The shipped WAN matrix loads, one-way is half the RTT, and sites are assigned in turn."""
    wan = load("wan")
    assert wan.sites == ("CA", "VA", "OR", "JP", "EU")
    assert wan.one_way_us[0][1] == 42_500
    sim = Simulator(EchoSpec, EchoConfig(5), SimOptions(replicas=5, clients=7, topology=wan))
    assert sim.node_site == [0, 1, 2, 3, 4] + [0, 1, 2, 3, 4, 0, 1]


# ---- Workloads and summaries for leaderless protocols (EPaxos, issue 9) ----


class LeaderlessCore(EchoCore):
    """Every replica takes client commands, applies them at once and tells the others
    (no ordering between replicas: a fake). Replies carry no leader hint, as EPaxos's;
    it reports protocol_metrics and, when traced, one trace event per command."""

    def __init__(self, config, replica_id, rng, durable=None, trace=False):
        super().__init__(config, replica_id, rng, durable, trace)
        self.trace = trace
        self.requests = 0  # volatile: a restarted core starts again from 0

    def is_leader(self) -> bool:
        return True

    def on_client_request(self, request: ClientRequest) -> Effects:
        command = request.command
        self.requests += 1
        slot = 1_000_000 * self.replica_id + self.requests
        entry = Entry(slot, BALLOT, (command,))
        self._apply(entry)
        result = self.kvs.session_result(command.client_id, command.request_id)[1]
        trace = [{"action": "Propose", "replica": self.replica_id}] if self.trace else []
        return Effects(
            persist=[SaveEntries((entry,))],
            send=[(peer, Accept(BALLOT, slot, entry.batch, slot, 0))
                  for peer in range(self.replicas) if peer != self.replica_id],
            reply=[ClientReply(command.client_id, command.request_id, ReplyStatus.OK, result,
                               None)],
            trace=trace,
        )

    def protocol_metrics(self) -> dict:
        return {"fast_commits": self.requests, "slow_commits": 1, "recovered_commits": 0,
                "largest_component": 10 + self.replica_id + self.requests,
                "execute_delay_max_ticks": self.replica_id + 1,
                "execute_delay_sum_ticks": self.requests, "executed_count": self.requests}


class LeaderlessSpec(EchoSpec):
    name = "leaderless"

    @staticmethod
    def make_core(config, replica_id, rng, durable=None, trace=False):
        return LeaderlessCore(config, replica_id, rng, durable, trace)


def requests_by_replica(lines: list[str]) -> dict[int, Counter]:
    """Which replicas each client sent its requests to, from the event lines."""
    seen: dict[int, Counter] = {}
    for line in lines:
        parts = line.split()
        if len(parts) > 3 and parts[1].startswith("c") and parts[2] in ("invoke", "retry",
                                                                         "timeout"):
            target = line.split("-> ClientRequest>r")[1].split(":")[0]
            seen.setdefault(int(parts[1][1:]), Counter())[int(target)] += 1
    return seen




@pytest.mark.parametrize("latency", ["lan", "wan"])
def test_leaderless_clients_keep_the_replica_they_chose(latency):
    """Replies without a leader hint leave a client where it is: each client sends every
    request to the one replica it chose, on the WAN the replica of its own site, and the
    clients spread over the replicas."""
    lines: list[str] = []
    options = SimOptions(replicas=5, clients=10, ops=200, seed=3, topology=load(latency),
                         print_events=lines.append)
    sim = Simulator(LeaderlessSpec, EchoConfig(5), options)
    assert sim.run_until_quiet(time_us_max=600_000_000)
    chosen = requests_by_replica(lines)
    assert len(chosen) == 10 and sum(sum(c.values()) for c in chosen.values()) == 200
    for client_id, targets in chosen.items():
        assert len(targets) == 1, (client_id, targets)
        if latency == "wan":
            client = sim.client_by_id[client_id]
            assert sim.node_site[next(iter(targets))] == client.site
    assert len({next(iter(t)) for t in chosen.values()}) >= 3


def test_conflicts_put_that_share_on_one_hot_key_and_the_rest_on_private_keys():
    """--conflicts PCT: about PCT% of commands on the shared key, every other key used by
    one client alone; 0 and 100 are exact."""
    for percent, low, high in ((0, 0, 0), (25, 0.18, 0.32), (100, 1, 1)):
        sim = echo_sim(seed=4, ops=400, clients=8, keys=5, conflicts=percent)
        assert sim.run_until_quiet(time_us_max=10_000_000)
        hot = [r for r in sim.history if r.key == "hot"]
        assert low <= len(hot) / 400 <= high, (percent, len(hot))
        for record in sim.history:
            if record.key != "hot":
                assert record.key.startswith(f"c{record.client_id}.k"), record
    with pytest.raises(ValueError, match="percentage"):
        SimOptions(conflicts=101)


def test_cli_conflicts_runs_every_protocol_and_rejects_a_bad_rate(capsys):
    """`lowpaxos sim --conflicts 50` is linearizable for LowPaxos; a rate outside 0..100
    is a usage error (exit 2), not a traceback."""
    code = main(["sim", "--clients", "4", "--ops", "100", "--conflicts", "50", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["linearizable"] is True and result["protocol_metrics"] == {}
    with pytest.raises(SystemExit) as exit_info:
        main(["sim", "--conflicts", "150"])
    assert exit_info.value.code == 2
    assert "not a percentage" in capsys.readouterr().err


def test_protocol_metrics_sum_counts_and_max_maxima_over_every_core():
    """protocol_metrics over the replicas: counts summed, maxima (name with "max" or
    "largest") maxed, and a crashed core's figures kept."""
    sim = Simulator(LeaderlessSpec, EchoConfig(3), SimOptions(clients=6, ops=90, seed=2))
    assert sim.run_until_quiet(time_us_max=10_000_000)
    before = [core.requests for core in sim.cores()]
    assert sum(before) == 90
    sim.crash(2)
    sim.restart(2)
    metrics = sim.protocol_metrics()
    assert metrics["fast_commits"] == 90 and metrics["slow_commits"] == 4  # 3 live + 1 retired
    assert metrics["largest_component"] == max(10 + r + before[r] for r in range(3))
    assert metrics["execute_delay_max_ticks"] == 3
    from lowpaxos.sim.run import derived_metrics

    derived = derived_metrics(metrics, tick_us=2_000)
    assert derived == {"fast_path_ratio": round(90 / 94, 4),
                       "largest_component": metrics["largest_component"],
                       "execute_delay_max_ms": 6.0, "execute_delay_mean_ms": 2.0}


def graph_check_fails(events, replicas):
    """A stand-in dependency-graph checker that rejects every run."""
    return {"ok": False, "explanation": f"rejected {len(events)} events of {replicas} replicas"}


def graph_check_passes(events, replicas):
    return {"ok": True, "seen": [event["action"] for event in events][:3]}


@pytest.mark.parametrize("check, passes", [("graph_check_passes", True),
                                           ("graph_check_fails", False)])
def test_a_protocol_s_graph_check_sees_the_trace_and_its_verdict_decides_the_run(
        monkeypatch, capsys, check, passes):
    """A protocol with a graph check (GRAPH_CHECKS: EPaxos's networkx checker) gets the
    run's trace events, recorded in memory; its verdict goes into the summary and a
    failed one fails the run, as a linearizability failure does."""
    import importlib

    from lowpaxos.sim import cli
    from lowpaxos.sim.run import healthy

    # The module (lowpaxos.sim exports its run function under the same name).
    run_module = importlib.import_module("lowpaxos.sim.run")

    monkeypatch.setitem(run_module.GRAPH_CHECKS, "leaderless", f"tests.test_sim:{check}")
    options = SimOptions(replicas=3, clients=4, ops=40, seed=1)
    limits = RunLimits(safety_us=50_000, liveness_us_max=10_000_000, settle_us_max=1_000_000)
    result = run_module.run(LeaderlessSpec, EchoConfig(3), options, FaultPlan(), limits,
                            protocol="leaderless")
    graph = result["graph_check"]
    assert graph["events"] == 40 and graph["ok"] is passes
    assert result["linearizable"] is True and healthy(result) is passes
    assert result["fast_path_ratio"] is not None
    text = cli.summary(result)
    assert ("dependency-graph check:  yes" in text) is passes
    if not passes:
        assert "rejected 40 events of 3 replicas" in text


def test_peer_order_from_the_latency_matrix():
    """The thrifty order a protocol's config gets on the WAN: each replica's peers from
    the closest site to the farthest (CA: OR 21 ms, VA 85, JP 127, EU 150)."""
    from lowpaxos.sim.topology import peer_order

    assert peer_order(load("wan"), 5)[0] == (2, 1, 3, 4)
    assert peer_order(load("wan"), 5)[3] == (2, 0, 1, 4)
    assert peer_order(load("lan"), 3) == ((1, 2), (0, 2), (0, 1))


# ---- History stamps ----


class StaleReadCore(EchoCore):
    """The echo leader, but the first get after a put that overwrote a value answers with
    the value before it: a client that writes and reads back at once gets its previous
    value (a fake bug that only the order of a reply and the next call exposes)."""

    def __init__(self, config, replica_id, rng, durable=None, trace=False):
        super().__init__(config, replica_id, rng, durable, trace)
        self.current: dict[str, bytes] = {}
        self.previous: dict[str, bytes] = {}

    def on_client_request(self, request: ClientRequest) -> Effects:
        command = request.command
        if self.replica_id == 0 and command.op == "get":
            seen = self.previous.pop(command.key, self.current.get(command.key))
            return Effects(reply=[ClientReply(command.client_id, command.request_id,
                                              ReplyStatus.OK, seen, 0)])
        if self.replica_id == 0 and command.op == "put":
            if command.key in self.current:
                self.previous[command.key] = self.current[command.key]
            self.current[command.key] = command.value
        return super().on_client_request(request)


class StaleReadSpec(EchoSpec):
    name = "stale-read"

    @staticmethod
    def make_core(config, replica_id, rng, durable=None, trace=False):
        return StaleReadCore(config, replica_id, rng, durable, trace)


def test_stamps_order_a_clients_next_call_after_its_previous_reply():
    """A client sends its next request in the event that delivers the previous reply: both
    carry the same virtual microsecond, but the stamps put the call after the reply, and
    no two stamps of a run are equal."""
    sim = echo_sim(ops=200, clients=4, plan=FaultPlan(loss=0.05))
    assert sim.run_until_quiet(time_us_max=60_000_000)
    pairs = 0
    for client_id in range(1, 5):
        records = [r for r in sim.history if r.client_id == client_id]
        for previous, following in zip(records, records[1:]):
            if previous.response_us == following.invoke_us:
                pairs += 1
                assert following.invoke_stamp > previous.response_stamp
    assert pairs >= 150
    stamps = [r.invoke_stamp for r in sim.history] + [r.response_stamp for r in sim.history]
    assert len(set(stamps)) == len(stamps)
    events = sorted((r.invoke_us, r.invoke_stamp) for r in sim.history)
    assert [stamp for _, stamp in events] == sorted(stamp for _, stamp in events)


def test_read_of_an_older_value_after_own_write_is_rejected_through_the_simulator():
    """A core that answers a get with the value before the latest put: one client writes
    and reads back its previous value, and the history the simulator records fails."""
    sim = Simulator(StaleReadSpec, EchoConfig(3),
                    SimOptions(replicas=3, clients=1, ops=30, seed=3, keys=1,
                               op_mix=(("put", 0.5), ("get", 0.5))))
    assert sim.run_until_quiet(time_us_max=10_000_000)
    from lowpaxos.check import check_history

    result = check_history(sim.history_operations(), time_limit_s=10)
    assert result.linearizable is False, result.explanation
    involved = {o.op for o in result.ops_involved}
    assert involved == {"put", "get"}
    # Each get the checker blames was invoked at the microsecond of its client's
    # previous reply: the tie that used to pass.
    records = {r.invoke_stamp: r for r in sim.history}
    blamed = [records[o.invoke] for o in result.ops_involved if o.op == "get"]
    assert any(any(p.response_us == r.invoke_us for p in sim.history) for r in blamed)
    # The stamps alone catch it: with every operation under its own client id (so the
    # checker's one-operation-per-client rule does not apply), the stamped history still
    # fails, and the same history stamped in microseconds passes (ties overlap).
    alone = [dataclasses.replace(o, client_id=i) for i, o in enumerate(sim.history_operations())]
    assert check_history(alone, time_limit_s=10).linearizable is False
    in_us = [dataclasses.replace(o, invoke=r.invoke_us, response=r.response_us)
             for o, r in zip(alone, sim.history)]
    assert check_history(in_us, time_limit_s=10).linearizable is True


# ---- The real LowPaxos core ----


def real_run(seed: int, plan: FaultPlan, ops: int = 400, clients: int = 8) -> dict:
    from lowpaxos.protocols.registry import PROTOCOLS

    spec = PROTOCOLS["lowpaxos"]
    options = SimOptions(replicas=3, clients=clients, ops=ops, seed=seed, keys=5)
    limits = RunLimits(safety_us=300_000, liveness_us_max=30_000_000, settle_us_max=2_000_000,
                       wall_s_max=30.0)
    return run(spec, spec.make_config(3), options, plan, limits, protocol="lowpaxos")


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_lowpaxos_under_faults_is_linearizable_and_converges(seed):
    """Crashes, a partition, loss, duplication and reordering in the safety phase; after
    the liveness phase every request is answered, the history is linearizable and every
    replica's KVS digest is equal."""
    plan = FaultPlan.random(random.Random(seed), replicas=3, window_us=300_000, tick_us=1_000,
                            crashes=2, partitions=1, loss=0.05, dup=0.05, reorder=0.1)
    result = real_run(seed, plan)
    assert result["liveness_completed"], result
    assert result["committed"] == 400
    assert result["linearizable"] is True, result["linearizability"]
    assert result["kvs_converged"], result["kvs_digests"]


def test_lowpaxos_run_is_deterministic():
    """The real core under faults replays exactly from its seed."""
    plan = FaultPlan.random(random.Random(5), replicas=3, window_us=300_000, tick_us=1_000,
                            crashes=1, loss=0.02, reorder=0.05)
    first, second = real_run(5, plan, ops=200), real_run(5, plan, ops=200)
    assert first["trace_digest"] == second["trace_digest"]
    assert first["events"] == second["events"]


def test_cli_json(capsys):
    """`lowpaxos sim --json` prints one JSON object with the promised keys and exits 0."""
    code = main(["sim", "--replicas", "3", "--clients", "4", "--ops", "200", "--seed", "1",
                 "--loss", "0.01", "--crashes", "1", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0
    for key in ("committed", "replica_messages_per_op", "replica_bytes_per_op",
                "commit_latency_ms_p50", "commit_latency_ms_p99", "linearizable",
                "trace_digest"):
        assert key in result
    assert result["committed"] == 200 and result["linearizable"] is True
    assert result["linearizability_undecided_keys"] == 0
    main(["sim", "--clients", "2", "--ops", "20"])
    assert "linearizable:            yes" in capsys.readouterr().out



@pytest.mark.parametrize("protocol, options", [("vr", ["disk=none"]), ("vr", ["disk=sync"]),
                                               ("lowpaxos", ["window_slots=4"])])
def test_cli_runs_every_registered_protocol_with_its_options(capsys, protocol, options):
    """`--protocol NAME --protocol-option NAME=VALUE` reaches the protocol's config; a
    field the config lacks or a malformed option is a clear error (exit 2)."""
    arguments = [item for option in options for item in ("--protocol-option", option)]
    code = main(["sim", "--protocol", protocol, "--clients", "4", "--ops", "100", "--seed", "3",
                 "--crashes", "1", "--loss", "0.01", "--json", *arguments])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["committed"] == 100 and result["linearizable"] is True
    assert main(["sim", "--protocol", protocol, "--protocol-option", "no_such_field=1"]) == 2
    assert "no_such_field" in capsys.readouterr().err
    assert main(["sim", "--protocol", protocol, "--protocol-option", "window"]) == 2
    assert "NAME=VALUE" in capsys.readouterr().err

def test_cli_undecided_check_is_counted_and_fails(capsys, monkeypatch):
    """A check that runs out of time is no pass: `lowpaxos sim` exits 1, --json counts
    the undecided keys, and the summary says UNDECIDED with the checker's explanation."""
    import lowpaxos.check.linearizability as linearizability
    from lowpaxos.check import CheckResult

    def out_of_time(history, time_limit_s):
        return CheckResult(None, "k0", "undecided: the search ran out of its 60 s on 1 of 1 "
                           "keys: 'k0' (20 operations)", 0, 0, keys_undecided=("k0",))

    monkeypatch.setattr(linearizability, "check_history", out_of_time)
    code = main(["sim", "--clients", "2", "--ops", "20", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 1
    assert result["linearizable"] is None
    assert result["linearizability_undecided_keys"] == 1
    assert main(["sim", "--clients", "2", "--ops", "20"]) == 1
    out = capsys.readouterr().out
    assert "UNDECIDED on 1 keys" in out and "ran out of its 60 s" in out


# ---- EPaxos in the simulator (issue 9) ----


def epaxos_run(seed: int, plan: FaultPlan, replicas: int = 3, conflicts: float = 50,
               ops: int = 300) -> dict:
    from lowpaxos.protocols.registry import PROTOCOLS

    spec = PROTOCOLS["epaxos"]
    options = SimOptions(replicas=replicas, clients=8, ops=ops, seed=seed, keys=3,
                         conflicts=conflicts)
    limits = RunLimits(safety_us=300_000, liveness_us_max=30_000_000, settle_us_max=2_000_000,
                       wall_s_max=60.0)
    return run(spec, spec.make_config(replicas), options, plan, limits, protocol="epaxos")


@pytest.mark.parametrize("seed, replicas", [(1, 3), (2, 3), (3, 5)])
def test_epaxos_under_faults_is_linearizable_converges_and_passes_the_graph_check(seed,
                                                                                  replicas):
    """EPaxos at 50% conflicts with crashes (recovery of the crashed replicas'
    instances), a partition, loss, duplication and reordering: every request answered,
    the history linearizable, equal replicas, the networkx check ok over the trace,
    and the summary's EPaxos figures filled in."""
    plan = FaultPlan.random(random.Random(seed), replicas=replicas, window_us=300_000,
                            tick_us=1_000, crashes=2, partitions=1, loss=0.05, dup=0.05,
                            reorder=0.1)
    result = epaxos_run(seed, plan, replicas)
    assert result["liveness_completed"] and result["committed"] == 300, result["drops"]
    assert result["linearizable"] is True, result["linearizability"]
    assert result["kvs_converged"], result["kvs_digests"]
    assert result["graph_check"]["ok"] is True, result["graph_check"]["explanation"]
    assert result["graph_check"]["events"] > 300
    metrics = result["protocol_metrics"]
    assert metrics["fast_commits"] + metrics["slow_commits"] + metrics["recovered_commits"] > 0
    assert 0 <= result["fast_path_ratio"] <= 1 and result["largest_component"] >= 1
    assert result["execute_delay_max_ms"] >= 0


def test_epaxos_fast_path_without_conflicts_and_slow_paths_with_them():
    """No faults: with no conflicts every instance commits on the fast path (SOSP 2013
    §4.3); with every command on one key some take the slow path."""
    quiet = epaxos_run(4, FaultPlan(), conflicts=0)
    hot = epaxos_run(4, FaultPlan(), conflicts=100)
    assert quiet["fast_path_ratio"] == 1.0, quiet["protocol_metrics"]
    assert hot["fast_path_ratio"] < 1.0, hot["protocol_metrics"]
    for result in (quiet, hot):
        assert result["linearizable"] is True and result["graph_check"]["ok"] is True


def test_epaxos_run_is_deterministic():
    plan = FaultPlan.random(random.Random(6), replicas=3, window_us=300_000, tick_us=1_000,
                            crashes=1, loss=0.02, reorder=0.05)
    first, second = epaxos_run(6, plan, ops=150), epaxos_run(6, plan, ops=150)
    assert first["trace_digest"] == second["trace_digest"]
    assert first["protocol_metrics"] == second["protocol_metrics"]


def test_cli_fills_epaxos_peer_order_from_the_wan_matrix(capsys):
    """On the WAN the CLI gives EPaxos's config its peers by proximity (the thrifty
    PreAccept goes to the closest fast quorum; LowPaxos's thrifty Accept likewise); on
    the LAN, and for a protocol without the field, nothing is filled."""
    from lowpaxos.protocols.registry import PROTOCOLS
    from lowpaxos.sim.cli import topology_options
    from lowpaxos.sim.topology import peer_order

    wan = load("wan")
    assert topology_options(PROTOCOLS["epaxos"], 5, wan, {}) == {
        "peer_order": peer_order(wan, 5)}
    assert topology_options(PROTOCOLS["epaxos"], 5, load("lan"), {}) == {}
    # LowPaxos's thrifty phase 2 has the field too (its closest followers); VR has not.
    assert topology_options(PROTOCOLS["lowpaxos"], 5, wan, {}) == {
        "peer_order": peer_order(wan, 5)}
    assert topology_options(PROTOCOLS["vr"], 5, wan, {}) == {}
    code = main(["sim", "--protocol", "epaxos", "--replicas", "5", "--clients", "5", "--ops",
                 "60", "--latency", "wan", "--conflicts", "2", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["graph_check"]["ok"] is True
