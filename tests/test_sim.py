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
