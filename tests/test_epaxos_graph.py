"""EPaxos execution planning (protocols/epaxos/graph.py) against networkx, and the
dependency-graph checker (check/epaxos_graph.py) on hand-built traces (issue 9).

Part 1 generates vector-dependency graphs with Hypothesis and compares the planner's
components and their order with networkx's strongly_connected_components, condensation
and topological_sort, and the reduced edges with the full vector edges; mutated
planners (order by arrival inside a component, components in topological order, no
chain edge) are shown to fail the same comparison. Part 2 builds small traces by hand:
a good one passes, each check has a bad trace that fails it, malformed input exits 2
with FILE:LINE; a 100,000-event trace is checked in seconds.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import networkx as nx
import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st

from lowpaxos.check import epaxos_graph as checker
from lowpaxos.cli import main as cli_main
from lowpaxos.protocols.epaxos import graph as planner_module
from lowpaxos.protocols.epaxos.graph import (execution_key, flatten, full_successors,
                                             largest_component, plan_execution,
                                             reduced_successors)

ROOT = Path(__file__).resolve().parent.parent

# ---------------------------------------------------------------------------------------
# Part 1: the planner against networkx


@st.composite
def vector_graphs(draw, all_committed: bool = False, dense: bool = False):
    """A replica's view of committed instances: N replicas, a few instances each, deps
    vectors with the chain (deps[R] >= i - 1 for (R, i), sometimes above: recovery's
    fresh Phase 1), deps reaching past what is known (uncommitted), an executed frontier
    per replica, seqs from a small range so that ties happen. `dense`: deps near the top
    of each instance space, so that components of several instances are common."""
    replicas = draw(st.integers(2, 4))
    counts = [draw(st.integers(0, 6)) for _ in range(replicas)]
    frontier = [draw(st.integers(0, count)) for count in counts]
    nodes = {}
    for r in range(replicas):
        for i in range(frontier[r] + 1, counts[r] + 1):
            if not all_committed and draw(st.integers(0, 9)) == 0:
                continue  # not committed here
            deps = []
            for other in range(replicas):
                if other == r:
                    deps.append(i - 1 + draw(st.sampled_from((0, 0, 0, 0, 1, 2))))
                elif dense:  # near the top of each instance space: many cycles
                    deps.append(draw(st.integers(max(0, counts[other] - 2), counts[other])))
                else:
                    deps.append(draw(st.integers(0, counts[other] + (0 if all_committed else 1))))
            if all_committed:
                deps = [min(d, counts[other]) for other, d in enumerate(deps)]
            nodes[(r, i)] = (draw(st.integers(1, 4)), tuple(deps))
    if not nodes:
        nodes[(0, frontier[0] + 1)] = (1, tuple([frontier[0]] + frontier[1:]))
        counts[0] = max(counts[0], frontier[0] + 1)
    start = draw(st.sampled_from(sorted(nodes)))
    return nodes, tuple(frontier), start


def full_graph(nodes, frontier) -> nx.DiGraph:
    """The vector semantics plus the chain, over not-done instances; uncommitted ones are
    nodes without edges."""
    graph = nx.DiGraph()
    for inst, (_, deps) in nodes.items():
        graph.add_node(inst)
        for target in full_successors(inst, deps, frontier):
            graph.add_edge(inst, target)
    return graph


def plan_errors(nodes, frontier, start, planner=plan_execution) -> list[str]:
    """Everything wrong with `planner`'s plan for `start`, judged by networkx."""
    components, blocked = planner(start, nodes.get, frontier)
    graph = full_graph(nodes, frontier)
    reachable = nx.descendants(graph, start) | {start}
    uncommitted = {inst for inst in reachable if inst not in nodes}
    if uncommitted:
        if components or blocked not in uncommitted:
            return [f"expected a block on one of {sorted(uncommitted)}, got {blocked} "
                    f"with {components}"]
        return []
    if blocked is not None:
        return [f"blocked on {blocked}, but everything reachable is committed"]
    errors = []
    sub = graph.subgraph(reachable)
    expected = {frozenset(c) for c in nx.strongly_connected_components(sub)}
    got = [frozenset(c) for c in components]
    if set(got) != expected or len(got) != len(expected):
        errors.append(f"components {sorted(map(sorted, got))} != networkx "
                      f"{sorted(map(sorted, expected))}")
        return errors
    condensed = nx.condensation(sub, scc=[set(c) for c in got])
    mapping = condensed.graph["mapping"]
    index_of = {mapping[next(iter(c))]: position for position, c in enumerate(got)}
    # Reverse topological order: a component after every component it depends on.
    topological = list(nx.topological_sort(condensed))
    for source, target in condensed.edges:
        if index_of[target] > index_of[source]:
            errors.append(f"component {sorted(got[index_of[source]])} runs before its "
                          f"dependency {sorted(got[index_of[target]])} (networkx order "
                          f"{[sorted(condensed.nodes[c]['members']) for c in reversed(topological)]})")
    for component in components:
        keys = [execution_key(inst, nodes[inst][0]) for inst in component]
        if keys != sorted(keys):
            errors.append(f"component {component} not in (seq, replica, instance) order")
    if flatten(components)[-1:] and start not in components[-1]:
        errors.append(f"start {start} is not in the last component")
    return errors


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(vector_graphs())
def test_plan_matches_networkx(graph):
    """The planner's components, their order and the order inside each match networkx's
    SCCs and condensation of the full vector graph; blocks exactly when an uncommitted
    instance is reachable."""
    nodes, frontier, start = graph
    assert plan_errors(nodes, frontier, start) == []


@settings(max_examples=300, deadline=None)
@given(vector_graphs(all_committed=True))
def test_reduced_edges_have_the_reachability_of_full_edges(graph):
    """Reduced edges (to (R, deps[R]) and the chain edge) reach exactly what the full
    vector edges reach, so SCCs and the condensation's order are the same."""
    nodes, frontier, _ = graph
    full = full_graph(nodes, frontier)
    reduced = nx.DiGraph()
    for inst, (_, deps) in nodes.items():
        reduced.add_node(inst)
        for target in reduced_successors(inst, deps, frontier):
            assert full.has_edge(inst, target), "a reduced edge must be a full edge"
            reduced.add_edge(inst, target)
    for inst in nodes:
        assert nx.descendants(reduced, inst) == nx.descendants(full, inst)
    assert ({frozenset(c) for c in nx.strongly_connected_components(reduced)}
            == {frozenset(c) for c in nx.strongly_connected_components(full)})


def by_arrival(start, node, frontier):
    """Mutant: inside a component by instance number (arrival), not by seq."""
    components, blocked = plan_execution(start, node, frontier)
    return [sorted(c, key=lambda inst: (inst[1], inst[0])) for c in components], blocked


def topological(start, node, frontier):
    """Mutant: components in topological order (dependents first)."""
    components, blocked = plan_execution(start, node, frontier)
    return list(reversed(components)), blocked


def without_chain(start, node, frontier):
    """Mutant: reduced edges without the chain edge (unsound when deps[R] >= i)."""
    original = planner_module.reduced_successors

    def no_chain(inst, deps, frontier):
        return [(r, d) for r, d in enumerate(deps) if d > frontier[r]]

    planner_module.reduced_successors = no_chain
    try:
        return plan_execution(start, node, frontier)
    finally:
        planner_module.reduced_successors = original


@pytest.mark.parametrize("mutant", [by_arrival, topological, without_chain],
                         ids=lambda m: m.__name__)
def test_mutated_planner_fails_the_networkx_comparison(mutant):
    """Hypothesis finds a generated graph on which each mutated planner's plan is
    rejected by the same networkx comparison that the real planner passes."""
    example = find(vector_graphs(dense=True), lambda g: plan_errors(*g, planner=mutant) != [],
                   settings=settings(max_examples=3000, database=None, deadline=None,
                                     derandomize=True, phases=[Phase.generate]))
    assert plan_errors(*example) == []  # the real planner is right on it


def test_plan_on_a_component_and_a_block():
    """A hand-checked plan: (0,2) and (1,1) depend on each other (one component, run
    by seq), after (0,1); a dependency that is not committed blocks the plan."""
    nodes = {(0, 1): (1, (0, 0)), (0, 2): (3, (1, 1)), (1, 1): (2, (2, 0))}
    components, blocked = plan_execution((0, 2), nodes.get, (0, 0))
    assert blocked is None
    assert components == [[(0, 1)], [(1, 1), (0, 2)]]
    assert largest_component(components) == 2
    assert plan_execution((0, 2), nodes.get, (1, 0)) == ([[(1, 1), (0, 2)]], None)
    assert plan_execution((0, 2), nodes.get, (2, 1)) == ([], None)  # done
    nodes[(0, 2)] = (3, (1, 2))  # depends on (1, 2): not committed here
    assert plan_execution((0, 2), nodes.get, (0, 0)) == ([], (1, 2))


def test_plan_of_100000_instances_needs_no_recursion():
    """A chain of 100,000 instances and one component of 100,001 plan iteratively."""
    size = 100_000
    chain = {(0, i): (i, (i - 1, 0)) for i in range(1, size + 1)}
    started = time.monotonic()
    components, blocked = plan_execution((0, size), chain.get, (0, 0))
    assert blocked is None and len(components) == size and components[0] == [(0, 1)]
    ring = {(0, i): (1, (i - 1, 1)) for i in range(1, size + 1)}
    ring[(1, 1)] = (1, (size, 0))
    components, blocked = plan_execution((1, 1), ring.get, (0, 0))
    assert blocked is None and largest_component(components) == size + 1
    assert components[0][:2] == [(0, 1), (0, 2)]
    assert time.monotonic() - started < 20


# ---------------------------------------------------------------------------------------
# Part 2: the checker on hand-built traces

META = {"meta": {"protocol": "epaxos", "replicas": 3, "source": "test"}}


def state(inst, status, batch, seq, deps):
    return {"inst": list(inst), "status": status, "ballot": [0, inst[0]],
            "vballot": [0, inst[0]], "batch": batch, "seq": seq, "deps": list(deps),
            "unchanged": True}


# The good trace's instances: batch, seq, deps, keys. (0,2) and (1,2) depend on each
# other (one component, equal seq: replica 0's first); (2,2) reads every key (dbsize).
INSTANCES = {
    (0, 1): ("bx1", 1, (0, 0, 0), {"read": [], "write": ["x"]}),
    (1, 1): ("bx2", 2, (1, 0, 0), {"read": [], "write": ["x"]}),
    (2, 1): ("by1", 1, (0, 0, 0), {"read": ["y"], "write": []}),
    (0, 2): ("bz1", 3, (1, 2, 0), {"read": [], "write": ["z"]}),
    (1, 2): ("bz2", 3, (2, 1, 0), {"read": [], "write": ["z"]}),
    (2, 2): ("ball", 4, (2, 2, 1), {"read": ["*"], "write": []}),
}
ORDER = [(0, 1), (1, 1), (2, 1), (0, 2), (1, 2), (2, 2)]


def commit(replica, inst, action="HandleCommit", **change):
    batch, seq, deps, keys = INSTANCES[inst]
    batch, seq, deps = change.get("batch", batch), change.get("seq", seq), change.get("deps", deps)
    event = {"action": action, "replica": replica,
             "state": state(inst, change.get("status", "committed"), batch, seq, deps),
             "keys": change.get("keys", keys)}
    if action == "Commit":
        event["path"] = "fast"
    return event


def execute(replica, inst, order, **change):
    event = commit(replica, inst, "Execute", status="executed", **change)
    event["order"] = order
    return event


def good_events(orders=None, commits=None):
    """Every replica commits everything, then executes in its order (replica 2 runs its
    own read of y first: it interferes with nothing)."""
    orders = orders or {0: ORDER, 1: ORDER, 2: [(2, 1)] + [i for i in ORDER if i != (2, 1)]}
    events = []
    for replica in range(3):
        for inst in (commits or {}).get(replica, ORDER):
            events.append(commit(replica, inst, "Commit" if inst[0] == replica else "HandleCommit"))
    for replica in range(3):
        for position, inst in enumerate(orders[replica]):
            events.append(execute(replica, inst, position))
    return events


def write_trace(tmp_path, events, name="t.ndjson", meta=True):
    path = tmp_path / name
    lines = ([json.dumps(META)] if meta else []) + [json.dumps(e) for e in events]
    path.write_text("\n".join(lines) + "\n")
    return path


def run_cli(path, capsys, *extra):
    code = cli_main(["epaxos-graph", str(path), *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_good_trace_passes(tmp_path, capsys):
    """The good trace: six instances, one component of two, a read of every key; each
    replica's order respects the condensation; exit 0 and the counts in --json."""
    path = write_trace(tmp_path, good_events())
    code, out, err = run_cli(path, capsys, "--json")
    verdict = json.loads(out)
    assert code == 0 and verdict["ok"], verdict
    assert verdict["counts"]["instances"] == 6
    assert verdict["counts"]["largest_component"] == 2
    assert verdict["counts"]["components"] == 5
    assert verdict["counts"]["executed"] == {"0": 6, "1": 6, "2": 6}
    # In memory (the simulator's hook) gives the same verdict.
    assert checker.check_events(good_events(), 3)["ok"] is True


def violations(events, capsys, tmp_path):
    """Run the CLI on `events`: (exit code, the checks that failed, the printed lines)."""
    path = write_trace(tmp_path, events)
    code, out, _ = run_cli(path, capsys)
    failed = {match.group(1) for match in re.finditer(rf"^{re.escape(str(path))}:\d+: (\w+): ",
                                                      out, re.MULTILINE)}
    return code, failed, out


def replaced(events, index, event):
    events = list(events)
    events[index] = event
    return events


def test_deps_differing_across_replicas_fail_agreement(tmp_path, capsys):
    """Replica 2 commits (1,1) with other deps than replicas 0 and 1."""
    events = good_events()
    index = next(k for k, e in enumerate(events)
                 if e["replica"] == 2 and e["state"]["inst"] == [1, 1])
    events = replaced(events, index, commit(2, (1, 1), deps=(1, 0, 1)))
    code, failed, out = violations(events, capsys, tmp_path)
    assert code == 1 and "agreement" in failed, out
    assert f":{index + 2}: agreement: replica 2 committed instance [1, 1]" in out


def test_a_committed_value_that_changes_fails_stability(tmp_path, capsys):
    """A replica shows an instance it committed with another seq later, or as accepted."""
    for change in ({"seq": 9}, {"status": "accepted"}):
        events = good_events() + [commit(0, (0, 1), **change)]
        code, failed, out = violations(events, capsys, tmp_path)
        assert code == 1 and failed == {"agreement"}, out


def test_unchained_instance_fails(tmp_path, capsys):
    """(0,2) committed without depending on (0,1): deps[0] = 0 < 1."""
    INSTANCES[(0, 9)] = ("bq", 1, (7, 0, 0), {"read": ["q"], "write": []})
    try:
        events = good_events() + [commit(0, (0, 9), "Commit")]
        code, failed, out = violations(events, capsys, tmp_path)
        assert code == 1 and "agreement" in failed and "not chained" in out, out
    finally:
        del INSTANCES[(0, 9)]


def test_interfering_without_a_dependency_fails_consistency(tmp_path, capsys):
    """(0,1) and (1,1) both write x; (1,1) committed everywhere without deps on (0,1)."""
    INSTANCES[(1, 1)] = ("bx2", 2, (0, 0, 0), {"read": [], "write": ["x"]})
    try:
        code, failed, out = violations(good_events(), capsys, tmp_path)
    finally:
        INSTANCES[(1, 1)] = ("bx2", 2, (1, 0, 0), {"read": [], "write": ["x"]})
    assert code == 1 and failed == {"consistency"}, out
    assert "[0, 1] and [1, 1] interfere on key 'x'" in out or \
        "[1, 1] and [0, 1] interfere on key 'x'" in out


def test_read_of_every_key_without_dependencies_fails_consistency(tmp_path, capsys):
    """The dbsize (2,2) committed without depending on (1,2), a write of z."""
    INSTANCES[(2, 2)] = ("ball", 4, (2, 1, 1), {"read": ["*"], "write": []})
    try:
        code, failed, out = violations(good_events(), capsys, tmp_path)
    finally:
        INSTANCES[(2, 2)] = ("ball", 4, (2, 2, 1), {"read": ["*"], "write": []})
    assert code == 1 and failed == {"consistency"}, out
    assert "[2, 2] and [1, 2] interfere on key 'z'" in out or \
        "[1, 2] and [2, 2] interfere on key 'z'" in out, out


def test_execution_out_of_component_order_fails(tmp_path, capsys):
    """Replica 1 executes (1,1) before (0,1), which it depends on."""
    order = [(1, 1), (0, 1), (2, 1), (0, 2), (1, 2), (2, 2)]
    events = good_events(orders={0: ORDER, 1: order, 2: ORDER})
    code, failed, out = violations(events, capsys, tmp_path)
    assert code == 1 and "execution" in failed, out
    assert "replica 1 executed [1, 1] before its dependency [0, 1]" in out


def test_execution_inside_a_component_by_arrival_fails(tmp_path, capsys):
    """Replica 2 runs the component {(0,2), (1,2)} as (1,2) first (arrival), not by
    (seq, replica, instance)."""
    order = [(0, 1), (1, 1), (2, 1), (1, 2), (0, 2), (2, 2)]
    events = good_events(orders={0: ORDER, 1: ORDER, 2: order})
    code, failed, out = violations(events, capsys, tmp_path)
    assert code == 1 and "execution" in failed, out
    assert "replica 2 executed [1, 2] before [0, 2] in one component" in out


def test_execution_before_the_component_is_committed_fails(tmp_path, capsys):
    """Replica 2 executes (0,2) while (1,2), in its component, is not yet committed there."""
    commits = {0: ORDER, 1: ORDER, 2: [i for i in ORDER if i != (1, 2)]}
    events = good_events(commits=commits)
    at = next(k for k, e in enumerate(events) if e["replica"] == 2 and e["action"] == "Execute"
              and e["state"]["inst"] == [0, 2])
    events.insert(at + 1, commit(2, (1, 2)))
    code, failed, out = violations(events, capsys, tmp_path)
    assert code == 1 and failed == {"execution"}, out
    assert "before [1, 2] of its component was committed there" in out


def test_partial_component_twice_executed_and_order_gaps_fail(tmp_path, capsys):
    """A component half executed, an instance executed twice, an order number skipped."""
    half = good_events(orders={0: ORDER, 1: ORDER, 2: ORDER[:4]})
    code, failed, out = violations(half, capsys, tmp_path)
    assert code == 1 and "executed part of a component" in out, out
    twice = good_events() + [execute(0, (0, 1), 6)]
    code, failed, out = violations(twice, capsys, tmp_path)
    assert code == 1 and "executes [0, 1] twice" in out, out
    gap = good_events()
    gap[-1] = dict(gap[-1], order=7)
    code, failed, out = violations(gap, capsys, tmp_path)
    assert code == 1 and "Execute order 7, expected 5" in out, out


def test_execution_order_continues_across_a_restart(tmp_path, capsys):
    """A replica that restarts between two executions counts on (passes); one that starts
    again from 0 fails, as does an instance executed again after the restart."""
    events = good_events()
    at = next(k for k, e in enumerate(events) if e["replica"] == 1 and e["action"] == "Execute"
              and e["order"] == 3)
    restart = [{"action": "Crash", "replica": 1},
               {"action": "Restart", "replica": 1, "state": {"executed": [1, 1, 1]}}]
    code, failed, out = violations(events[:at] + restart + events[at:], capsys, tmp_path)
    assert code == 0, out
    renumbered = [dict(e, order=e["order"] - 3) if k >= at and e["replica"] == 1 and
                  e["action"] == "Execute" else e for k, e in enumerate(events)]
    code, failed, out = violations(renumbered[:at] + restart + renumbered[at:], capsys, tmp_path)
    assert code == 1 and "Execute order 0, expected 3" in out, out
    again = events[:at] + restart + [execute(1, (0, 1), 3)]
    code, failed, out = violations(again, capsys, tmp_path)
    assert code == 1 and "executes [0, 1] twice" in out, out


def test_dependency_committed_nowhere_fails(tmp_path, capsys):
    """(2,2) depends on (0,3), which no replica ever committed."""
    INSTANCES[(2, 2)] = ("ball", 4, (3, 2, 1), {"read": ["*"], "write": []})
    try:
        code, failed, out = violations(good_events(), capsys, tmp_path)
    finally:
        INSTANCES[(2, 2)] = ("ball", 4, (2, 2, 1), {"read": ["*"], "write": []})
    assert code == 1 and "committed nowhere" in out, out


def test_different_relative_order_of_interfering_instances_fails(tmp_path, capsys):
    """(0,1) and (1,1) write x with no dependency either way, and replicas 0 and 1 run
    them in opposite orders: the order check fails (as consistency does), while each
    replica's order alone fits the graph."""
    INSTANCES[(1, 1)] = ("bx2", 2, (0, 0, 0), {"read": [], "write": ["x"]})
    try:
        order = [(1, 1), (0, 1), (2, 1), (0, 2), (1, 2), (2, 2)]
        code, failed, out = violations(good_events(orders={0: ORDER, 1: order, 2: ORDER}),
                                       capsys, tmp_path)
    finally:
        INSTANCES[(1, 1)] = ("bx2", 2, (1, 0, 0), {"read": [], "write": ["x"]})
    assert code == 1 and failed == {"consistency", "order"}, out
    assert "interfering [0, 1] and [1, 1] (key 'x'): replica 0 executed [0, 1] first" in out


def test_a_read_between_other_writes_fails_order():
    """A read of x after one write at replica 0 and before it at replica 1 (unrelated
    by deps, so the order check alone sees the reads' place)."""
    instances = {(0, 1): ("w", 1, (0, 0), {"read": [], "write": ["x"]}),
                 (1, 1): ("r", 1, (0, 0), {"read": ["x"], "write": []})}
    events = []
    for replica in (0, 1):
        for inst, (batch, seq, deps, keys) in instances.items():
            events.append({"action": "HandleCommit", "replica": replica, "keys": keys,
                           "state": state(inst, "committed", batch, seq, deps)})
    for replica, order in ((0, [(0, 1), (1, 1)]), (1, [(1, 1), (0, 1)])):
        for position, inst in enumerate(order):
            batch, seq, deps, keys = instances[inst]
            events.append({"action": "Execute", "replica": replica, "keys": keys,
                           "order": position, "state": state(inst, "executed", batch, seq, deps)})
    verdict = checker.check_trace_events(events, replicas=2)
    assert verdict["violations_by_check"].get("order") == 1, verdict


MALFORMED = [
    ("not json", "not JSON"),
    ("[" * 100_000 + "]" * 100_000, "not JSON"),
    ('{"action": "Commit", "replica": ' + "9" * 5000 + "}", "not JSON"),
    ("[1, 2]", "an event must be a JSON object"),
    (json.dumps({"replica": 0}), "no action"),
    (json.dumps({"action": "Commit", "replica": "0"}), "replica must be an integer"),
    (json.dumps({"action": "Commit", "replica": 5}), "replica must be an integer"),
    (json.dumps({"action": "Commit", "replica": 0, "state": {"inst": [0, 1]}}), "state has no"),
    (json.dumps(dict(commit(0, (0, 1)), state=dict(state((0, 1), "committed", "b", 1, (0, 0)))))
     , "state.deps must be 3"),
    (json.dumps(dict(commit(0, (0, 1)), state=state((0, 1), "committed", "b", "1", (0, 0, 0))))
     , "state.seq"),
    (json.dumps(dict(commit(0, (0, 1)), state=state((0, 1), "weird", "b", 1, (0, 0, 0)))),
     "state.status"),
    (json.dumps(dict(commit(0, (0, 1)), state=dict(state((0, 1), "committed", "b", 1, (0, 0, 0)),
                                                   inst=[7, 1]))), "out of range"),
    (json.dumps({k: v for k, v in commit(0, (0, 1)).items() if k != "keys"}), "has no keys"),
    (json.dumps(dict(commit(0, (0, 1)), keys={"read": "x", "write": []})), "keys.read"),
    (json.dumps({k: v for k, v in execute(0, (0, 1), 0).items() if k != "order"}), "no order"),
    (json.dumps({"meta": {"protocol": "vr", "replicas": 3}}), "a vr trace"),
]


@pytest.mark.parametrize("line, reason", MALFORMED, ids=[f"{n}-{r}" for n, (_, r) in enumerate(MALFORMED)])
def test_malformed_input_exits_2_with_file_and_line(tmp_path, capsys, line, reason):
    """Bad input: exit 2, FILE:LINE: reason on stderr, never a traceback."""
    path = tmp_path / "bad.ndjson"
    good = [json.dumps(e) for e in good_events()[:2]]
    path.write_text("\n".join([json.dumps(META), *good, line]) + "\n")
    code, out, err = run_cli(path, capsys)
    assert code == 2, (out, err)
    assert err.startswith(f"{path}:4: ") and reason in err, err
    assert "Traceback" not in err


def test_missing_file_binary_file_and_in_memory_bad_event(tmp_path, capsys):
    """A missing file, a directory and bytes that are not UTF-8 exit 2; check_events
    turns a bad event into a failed verdict."""
    code, _, err = run_cli(tmp_path / "absent.ndjson", capsys)
    assert code == 2 and "cannot read" in err
    code, _, err = run_cli(tmp_path, capsys)
    assert code == 2 and "cannot read" in err
    binary = tmp_path / "binary.ndjson"
    binary.write_bytes(json.dumps(META).encode() + b"\n\xff\xfe{}\n")
    code, _, err = run_cli(binary, capsys)
    assert code == 2 and err.startswith(f"{binary}:2: not UTF-8"), err
    verdict = checker.check_events([{"action": "Commit", "replica": 0, "state": "x"}], 3)
    assert verdict["ok"] is False and verdict["input_error"]["line"] == 1


def test_command_line_entry_point(tmp_path):
    """`python -m lowpaxos.cli epaxos-graph` exits 0 on the good trace, 1 on a bad one."""
    good = write_trace(tmp_path, good_events(), "good.ndjson")
    done = subprocess.run([sys.executable, "-m", "lowpaxos.cli", "epaxos-graph", str(good)],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    bad = good_events(orders={0: ORDER, 1: list(reversed(ORDER)), 2: ORDER})
    path = write_trace(tmp_path, bad, "bad.ndjson")
    done = subprocess.run([sys.executable, "-m", "lowpaxos.cli", "epaxos-graph", str(path)],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 1 and f"{path}:" in done.stdout, done.stdout + done.stderr


def rounds_trace(rounds: int, keys: int = 10) -> list[dict]:
    """A large valid trace: in round i each of 3 replicas leads (r, i) writing a key; the
    three of a round depend on each other (one component of 3, equal seq) and on every
    earlier round; every replica commits all and executes round by round (6 events per
    instance)."""
    events = []
    executed = [0, 0, 0]
    for i in range(1, rounds + 1):
        round_instances = []
        for r in range(3):
            deps = [i] * 3
            deps[r] = i - 1
            key = f"k{(i * 7 + r * 3) % keys}"
            round_instances.append(((r, i), f"b{r}-{i}", i, deps, {"read": [], "write": [key]}))
        for replica in range(3):
            for inst, batch, seq, deps, k in round_instances:
                events.append({"action": "Commit" if inst[0] == replica else "HandleCommit",
                               "replica": replica, "keys": k,
                               "state": state(inst, "committed", batch, seq, deps)})
            for inst, batch, seq, deps, k in round_instances:
                events.append({"action": "Execute", "replica": replica, "keys": k,
                               "order": executed[replica],
                               "state": state(inst, "executed", batch, seq, deps)})
                executed[replica] += 1
    return events


def test_checker_speed(tmp_path, capsys):
    """A large valid trace (components of 3, 6 events per instance) read from a file and
    checked: ok, within a bound. 30,006 events here; LOWPAXOS_GRAPH_EVENTS=100008 gives
    the figure in docs/epaxos-graph.md (it is printed)."""
    rounds = int(os.environ.get("LOWPAXOS_GRAPH_EVENTS", "30006")) // 18
    path = write_trace(tmp_path, rounds_trace(rounds), "big.ndjson")
    started = time.monotonic()
    code, out, err = run_cli(path, capsys, "--json")
    seconds = time.monotonic() - started
    verdict = json.loads(out)
    assert code == 0, verdict["explanation"]
    assert verdict["counts"]["events"] == 18 * rounds
    assert verdict["counts"]["largest_component"] == 3
    with capsys.disabled():
        print(f"\n{18 * rounds:,} events ({3 * rounds:,} instances) read and checked in "
              f"{seconds:.2f} s ({verdict['check_seconds']:.2f} s of checks)")
    assert seconds < 10 * (18 * rounds) / 30_000


@st.composite
def committed_sets(draw):
    """Committed instances with random deps (chained) and random keys, and each replica's
    execution order as a random permutation of a random subset."""
    replicas = draw(st.integers(2, 3))
    instances = {}
    counts = [draw(st.integers(1, 4)) for _ in range(replicas)]
    for r in range(replicas):
        for i in range(1, counts[r] + 1):
            deps = [draw(st.integers(0, counts[o])) for o in range(replicas)]
            deps[r] = max(deps[r], i - 1)
            read = draw(st.sets(st.sampled_from(("a", "b", "*")), max_size=2))
            write = draw(st.sets(st.sampled_from(("a", "b", "a", "b", "*")), max_size=2))
            clients = draw(st.sets(st.sampled_from((1, 2, 3)), max_size=1))
            instances[(r, i)] = (f"b{r}.{i}", draw(st.integers(1, 3)), tuple(deps),
                                 {"read": sorted(read), "write": sorted(write),
                                  "clients": sorted(clients)})
    orders = {r: draw(st.permutations(sorted(instances)))[:draw(st.integers(0, len(instances)))]
              for r in range(replicas)}
    return replicas, instances, orders


def interfere(a, b) -> bool:
    """Brute force over the keys (with "*" = every key), as the contract of issue 9 defines
    interference, and one client's session row (docs/epaxos.md)."""
    def touches(first, second):
        return bool(first and second and ("*" in first or "*" in second or first & second))
    ar, aw = set(a["read"]), set(a["write"])
    br, bw = set(b["read"]), set(b["write"])
    same_client = bool(set(a["clients"]) & set(b["clients"]))  # the session row
    return touches(aw, br | bw) or touches(bw, ar) or same_client


def depends(a_inst, a_deps, b_inst) -> bool:
    return a_deps[b_inst[0]] >= b_inst[1] or (a_inst[0] == b_inst[0] and a_inst[1] > b_inst[1])


@settings(max_examples=150, deadline=None)
@given(committed_sets())
def test_consistency_and_order_checks_match_brute_force(generated):
    """The per-key suffix-minimum consistency check and the per-key order check find a
    violation exactly when brute force over all pairs of instances does."""
    replicas, instances, orders = generated
    events = []
    for r in range(replicas):
        for inst, (batch, seq, deps, keys) in instances.items():
            events.append({"action": "HandleCommit", "replica": r, "keys": keys,
                           "state": state(inst, "committed", batch, seq, deps)})
        for position, inst in enumerate(orders[r]):
            batch, seq, deps, keys = instances[inst]
            events.append({"action": "Execute", "replica": r, "keys": keys, "order": position,
                           "state": state(inst, "executed", batch, seq, deps)})
    by_check = checker.check_trace_events(events, replicas=replicas)["violations_by_check"]
    pairs = [(a, b) for a in instances for b in instances
             if a < b and interfere(instances[a][3], instances[b][3])]
    inconsistent = any(not depends(a, instances[a][2], b) and not depends(b, instances[b][2], a)
                       for a, b in pairs)
    assert ("consistency" in by_check) == inconsistent, (by_check, pairs)
    positions = {r: {inst: p for p, inst in enumerate(orders[r])} for r in orders}
    disordered = any(
        (positions[x][a] < positions[x][b]) != (positions[y][a] < positions[y][b])
        for a, b in pairs for x in orders for y in orders
        if x < y and {a, b} <= positions[x].keys() and {a, b} <= positions[y].keys())
    assert ("order" in by_check) == disordered, (by_check, pairs, orders)


# ---------------------------------------------------------------------------------------
# Part 3: real simulator traces of the EPaxos core

SIM_ARGS = ["sim", "--protocol", "epaxos", "--replicas", "3", "--clients", "8", "--ops", "300",
            "--seed", "9", "--conflicts", "100", "--crashes", "2", "--loss", "0.05",
            "--partitions", "1", "--json"]


def simulate(tmp_path, capsys) -> tuple[dict, Path]:
    path = tmp_path / "sim.ndjson"
    cli_main([*SIM_ARGS, "--trace", str(path)])
    return json.loads(capsys.readouterr().out), path


def test_simulator_trace_of_the_core_passes(tmp_path, capsys):
    """A simulated run at 100% conflicts with crashes, loss and a partition: components
    of several instances form, and the checker passes both the in-memory events (the
    simulator's summary) and the written trace."""
    result, path = simulate(tmp_path, capsys)
    assert result["graph_check"]["ok"] is True, result["graph_check"]["explanation"]
    verdict = checker.check_file(path)
    assert verdict["ok"], verdict["explanation"]
    assert verdict["counts"]["largest_component"] >= 2
    assert verdict["counts"]["largest_component"] == result["graph_check"]["counts"]["largest_component"]


def against_seq(start, node, frontier):
    """Core mutant: inside a component against (seq, replica, instance) order (as an
    arrival order may be; the plain instance-number order often coincides with seq)."""
    components, blocked = plan_execution(start, node, frontier)
    return [list(reversed(c)) for c in components], blocked


def dependents_first(start, node, frontier):
    """Core mutant: components in topological order (dependents before dependencies)."""
    components, blocked = plan_execution(start, node, frontier)
    return list(reversed(components)), blocked


@pytest.mark.parametrize("mutant", [against_seq, dependents_first], ids=lambda m: m.__name__)
def test_core_with_a_mutated_execution_order_fails_the_check(tmp_path, capsys, monkeypatch,
                                                             mutant):
    """The same run with the core's planner mutated: the checker reports an execution
    (or order) violation at a line of the trace."""
    from lowpaxos.protocols.epaxos import core

    monkeypatch.setattr(core, "plan_execution", mutant)
    result, path = simulate(tmp_path, capsys)
    assert result["graph_check"]["ok"] is False
    verdict = checker.check_file(path)
    assert not verdict["ok"] and "execution" in verdict["violations_by_check"], verdict


def test_one_clients_instances_interfere_when_the_trace_names_clients(tmp_path, capsys):
    """keys.clients (the core makes one client's instances interfere: each writes the
    client's session row): two instances of client 7 on different keys with no
    dependency either way fail consistency; of different clients they pass."""
    def two(clients_a, clients_b):
        instances = {(0, 1): ("a", 1, (0, 0, 0), {"read": [], "write": ["p"], "clients": clients_a}),
                     (1, 1): ("b", 1, (0, 0, 0), {"read": ["q"], "write": [], "clients": clients_b})}
        events = []
        for replica in range(3):
            for inst, (batch, seq, deps, keys) in instances.items():
                events.append({"action": "HandleCommit", "replica": replica, "keys": keys,
                               "state": state(inst, "committed", batch, seq, deps)})
        return events

    code, failed, out = violations(two([7], [7]), capsys, tmp_path)
    assert code == 1 and failed == {"consistency"}, out
    assert "client 7's session row" in out
    code, failed, out = violations(two([7], [8]), capsys, tmp_path)
    assert code == 0, out


def test_a_proposed_batch_recovered_as_a_noop_is_no_key_disagreement(tmp_path, capsys):
    """Keys count from committed events only: (0,1) proposed with a write of x (its
    Propose line names the keys) and committed as a NOP by recovery passes."""
    events = [{"action": "Propose", "replica": 0, "keys": {"read": [], "write": ["x"]},
               "state": state((0, 1), "preaccepted", "bx", 1, (0, 0, 0))}]
    for replica in (1, 2, 0):
        events.append({"action": "HandleCommit", "replica": replica,
                       "keys": {"read": [], "write": []},
                       "state": state((0, 1), "committed", "noop", 0, (0, 0, 0))})
    code, failed, out = violations(events, capsys, tmp_path)
    assert code == 0, out


def test_committed_epaxos_traces(capsys):
    """The committed EPaxos conformance corpus: every trace in traces/ passes; of the bad
    ones, those whose committed values are wrong fail here too (the others break the
    protocol only at the message level, which conformance checks)."""
    good = sorted((ROOT / "traces").glob("epaxos-*.ndjson"))
    assert good
    for path in good:
        verdict = checker.check_file(path)
        assert verdict["ok"], (path.name, verdict["explanation"])
    expected = {"epaxos-edited-commit-deps.ndjson": "agreement",
                "epaxos-fast-commit-disagreeing-reply.ndjson": "consistency",
                "epaxos-fast-quorum-too-small-consistency.ndjson": "consistency"}
    for name, check in expected.items():
        verdict = checker.check_file(ROOT / "traces" / "bad" / name)
        assert check in verdict["violations_by_check"], (name, verdict["explanation"])
