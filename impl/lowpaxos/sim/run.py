"""One complete simulated run: a safety phase with faults, a liveness phase without,
then the verdicts (linearizable history, equal replica states) and the numbers.

The safety phase runs the workload while the fault plan crashes replicas, cuts
links and loses, duplicates and delays messages. The liveness phase heals the
network, restarts every replica and stops all faults, then runs until every
client's requests are answered; a correct protocol must get there (FoundationDB
and TigerBeetle's VOPR split their runs the same way). Both phases are bounded
in virtual time, in events and in wall-clock time.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import time
from dataclasses import dataclass
from typing import Any

from lowpaxos.sim.faults import FaultPlan
from lowpaxos.sim.simulator import SimOptions, Simulator


# Checks over a run's spec-level trace events, per protocol: "module:function", called
# as function(events, replicas) -> a dict whose "ok" is the verdict. Imported only for a
# run of that protocol (networkx is needed by EPaxos's checker alone). A run of such a
# protocol records its trace events in memory (which turns the cores' tracing on).
GRAPH_CHECKS = {"epaxos": "lowpaxos.check.epaxos_graph:check_events"}


@dataclass(frozen=True, slots=True)
class RunLimits:
    safety_us: int  # length of the safety phase (faults happen within it)
    liveness_us_max: int  # virtual time allowed for every client to finish afterwards
    settle_us_max: int  # virtual time allowed for replicas to converge after that
    events_max: int = 50_000_000
    wall_s_max: float = 600.0
    check_time_limit_s: float = 60.0


def percentile(sorted_values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile of an ascending list; None when it is empty."""
    if not sorted_values:
        return None
    rank = min(len(sorted_values), max(1, math.ceil(fraction * len(sorted_values))))
    return sorted_values[rank - 1]


def converged(sim: Simulator) -> bool:
    digests = sim.kvs_digests()
    return None not in digests and len(set(digests)) == 1


def run(spec: Any, config: Any, options: SimOptions, plan: FaultPlan, limits: RunLimits,
        protocol: str = "?") -> dict:
    """Run the simulation and return its results as plain data (the CLI's JSON)."""
    from lowpaxos.check.linearizability import check_history

    started = time.monotonic()
    wall_deadline = started + limits.wall_s_max
    graph_check = None
    events: list[dict] = []
    if protocol in GRAPH_CHECKS:
        module, _, function = GRAPH_CHECKS[protocol].partition(":")
        graph_check = getattr(importlib.import_module(module), function)
        options = dataclasses.replace(options, trace_events=_recorder(events, options.trace_events))
    sim = Simulator(spec, config, options, plan)

    sim.run_until(limits.safety_us, events_max=limits.events_max)
    safety_end_us = sim.now_us

    sim.end_faults()
    remaining_s = max(0.0, wall_deadline - time.monotonic())
    liveness_ok = sim.run_until_quiet(
        sim.now_us + limits.liveness_us_max,
        events_max=max(0, limits.events_max - sim.events),
        wall_s_max=remaining_s,
    )
    remaining_s = max(0.0, wall_deadline - time.monotonic())
    settled = sim.run_while(
        lambda: not converged(sim),
        sim.now_us + limits.settle_us_max,
        events_max=max(0, limits.events_max - sim.events),
        wall_s_max=remaining_s,
        check_every_events=256,
    )
    simulated_s = time.monotonic() - started
    for core in sim.cores():
        if core is not None:
            core.check_invariants()

    history = sim.history_operations()  # ordered by stamps that never tie
    check_started = time.monotonic()
    verdict = check_history(history, time_limit_s=limits.check_time_limit_s)
    check_s = time.monotonic() - check_started
    graph_verdict = None
    if graph_check is not None:
        graph_started = time.monotonic()
        graph_verdict = dict(graph_check(events, options.replicas))
        graph_verdict["seconds"] = round(time.monotonic() - graph_started, 3)
        graph_verdict["events"] = len(events)
    metrics = sim.protocol_metrics()

    acknowledged = [r for r in sim.history if r.response_us is not None]
    latencies_ms = sorted((r.response_us - r.invoke_us) / 1000 for r in acknowledged)
    committed = len(acknowledged)
    per_op = max(committed, 1)
    digests = sim.kvs_digests()
    result = {
        "protocol": protocol,
        "replicas": options.replicas,
        "clients": options.clients,
        "seed": options.seed,
        "latency": options.topology.name,
        "tick_us": options.tick_us,
        "ops_requested": options.ops,
        "ops_issued": sim.ops_issued,
        "committed": committed,
        "unknown_outcome": sim.ops_issued - committed,
        "replica_messages": sim.replica_messages,
        "replica_bytes": sim.replica_bytes,
        "replica_messages_per_op": round(sim.replica_messages / per_op, 3),
        "replica_bytes_per_op": round(sim.replica_bytes / per_op, 1),
        "client_messages": sim.client_messages,
        "client_bytes": sim.client_bytes,
        "commit_latency_ms_p50": percentile(latencies_ms, 0.50),
        "commit_latency_ms_p99": percentile(latencies_ms, 0.99),
        "linearizable": verdict.linearizable,
        "linearizability": verdict.explanation,
        # Keys whose check ran out of time: a nonzero count makes the run fail
        # (linearizable is then None unless another key failed).
        "linearizability_undecided_keys": len(verdict.keys_undecided),
        "kvs_converged": None not in digests and len(set(digests)) == 1,
        "kvs_digests": digests,
        "liveness_completed": liveness_ok,
        "settled": settled,
        "faults_planned": plan.describe(),
        "faults_injected": dict(sorted(sim.faults_injected.items())),
        "drops": dict(sorted(sim.drop_counts().items())),
        "applied": sim.applied,
        "trace_digest": sim.trace_digest,
        "events": sim.events,
        "virtual_time_ms": round(sim.now_us / 1000, 3),
        "safety_phase_ms": round(safety_end_us / 1000, 3),
        "wall_s": round(simulated_s, 3),
        "check_s": round(check_s, 3),
        "events_per_second": round(sim.events / simulated_s) if simulated_s > 0 else None,
        "protocol_metrics": metrics,
    }
    result.update(derived_metrics(metrics, options.tick_us))
    if graph_verdict is not None:
        result["graph_check"] = graph_verdict
    return result


def healthy(result: dict) -> bool:
    """The run passed: linearizable (decided), equal replicas, every request answered,
    and the protocol's graph check (if it has one) passed."""
    graph = result.get("graph_check")
    return (result["linearizable"] is True and result["kvs_converged"]
            and result["liveness_completed"] and (graph is None or graph.get("ok") is True))


def derived_metrics(metrics: dict, tick_us: int) -> dict:
    """Figures from the cores' protocol_metrics (summed over replicas), where the
    protocol reports them (EPaxos, docs/benchmarks.md): the fast-path ratio (SOSP 2013
    §4.3: instances committed after one round trip, of all committed by their leader or
    a recoverer), the largest strongly connected component executed, and the longest
    and mean commit-to-execute delay in virtual milliseconds."""
    derived: dict = {}
    paths = ("fast_commits", "slow_commits", "recovered_commits")
    if all(name in metrics for name in paths):
        total = sum(metrics[name] for name in paths)
        derived["fast_path_ratio"] = round(metrics["fast_commits"] / total, 4) if total else None
    if "largest_component" in metrics:
        derived["largest_component"] = metrics["largest_component"]
    if "execute_delay_max_ticks" in metrics:
        derived["execute_delay_max_ms"] = round(metrics["execute_delay_max_ticks"] * tick_us
                                                / 1000, 3)
    if metrics.get("executed_count") and "execute_delay_sum_ticks" in metrics:
        derived["execute_delay_mean_ms"] = round(
            metrics["execute_delay_sum_ticks"] * tick_us / 1000 / metrics["executed_count"], 3)
    return derived


def _recorder(events: list[dict], then):
    """A trace_events sink that keeps every event in ``events`` and passes it on."""

    def record(event: dict) -> None:
        events.append(event)
        if then is not None:
            then(event)

    return record
