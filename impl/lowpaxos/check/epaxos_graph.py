"""The EPaxos dependency-graph checker: what replicas committed and executed, judged
with networkx (issue 9, "networkx dependency-graph checks").

Theory of operation
-------------------
Input is the spec-level trace of an EPaxos run (NDJSON as `lowpaxos sim --trace` and
the runtime write it, or the simulator's events in memory). Each event's ``state`` is
the ONE instance the action touched, after the action (the EPaxos contract of issue 9):
``{"inst": [R, i], "status", "batch", "seq", "deps": [d0..dN-1], ...}``. An instance is
committed at replica r from the first event of r whose state says "committed" or
"executed" (the core's Commit and HandleCommit events, and Execute); Execute events
carry ``order`` (the replica's execution position) and the batch's ``keys``
(``{"read": [...], "write": [...]}``, ``"*"`` = every key), so interference is decided
from the trace alone: two batches interfere iff one writes a key the other reads or
writes (the contract of issue 9, after SOSP 2013's definition of interference; NOP,
the empty batch, interferes with nothing).

The checks (each violation names the trace line, or the event number for events in
memory):

1. agreement: every replica that committed an instance holds the same (batch, seq,
   deps) (the paper's "Stability" guarantee, SOSP 2013); stability: no later event of that
   replica shows other values or a lower status (an executed instance may be garbage
   collected, status "none").  Also each instance (R, i) depends on (R, i - 1): the
   chain that makes the executed set a frontier vector (the contract's deps[R] >= i-1).
2. consistency: of two committed interfering instances, one depends on the other with
   deps as vectors (``deps[R] >= j`` means "depends on (R, j)"; the paper's
   "Consistency" guarantee). Checked per key without enumerating pairs: per replica R the
   instances on a key sorted by number, with suffix minima of their deps, answer "does
   every (R, j) with j > a.deps[R] depend on a?" by one binary search.
3. execution: the dependency graph of the committed values (networkx DiGraph; the
   reduced edges of lowpaxos.protocols.epaxos.graph, which have the reachability of the
   full vector edges), its strongly connected components and condensation. For each
   replica, what it executed must be whole components; a component's members in
   (seq, replica, instance) order; every component it depends on (an edge of the
   condensation) wholly executed before its first member; every member committed at
   that replica before the component's first member executed (SOSP §4.3.2: execute
   only once everything reachable is committed). Execute ``order`` counts up by one.
4. order: two interfering instances executed by two replicas execute in the same
   relative order at both (per key: the writes in one order, and each read after the
   same writes), checked directly on the execution sequences, without the graph.

Checks 3 and 4 together with 2 are redundant on purpose: 4 holds when 2 and 3 do, and
a separate failure of 4 points at the executed order itself.

Inputs that are not a trace (not JSON, missing or ill-typed fields) are bad input:
``TraceInputError`` with the line; the command exits 2 and prints FILE:LINE: reason.
"""

from __future__ import annotations

import argparse
import bisect
import json
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import networkx as nx

from lowpaxos.protocols.epaxos.graph import execution_key

Inst = tuple[int, int]
STATUSES = ("none", "preaccepted", "accepted", "committed", "executed")
COMMITTED = frozenset({"committed", "executed"})
DRIVER_ACTIONS = frozenset({"Crash", "Restart"})
ALL_KEYS = "*"
VIOLATIONS_LISTED_MAX = 200  # violations kept with their detail; all are counted

EXIT_OK = 0
EXIT_VIOLATION = 1
EXIT_BAD_INPUT = 2


class TraceInputError(ValueError):
    """The input is not an EPaxos trace: ``line`` is the 1-based line (or event number)."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"{line}: {reason}")
        self.line = line
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Value:
    """What an instance was committed with."""

    batch: str | None
    seq: int
    deps: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Keys:
    read: frozenset[str]
    write: frozenset[str]
    # The clients whose session rows the batch writes (kvs.py's at-most-once table), when
    # the trace says: the core makes one client's instances interfere (docs/epaxos.md).
    clients: frozenset[int] = frozenset()


@dataclass(slots=True)
class Replica:
    committed_at: dict[Inst, int] = field(default_factory=dict)  # inst -> event index
    executed: list[tuple[Inst, int, int]] = field(default_factory=list)  # (inst, index, line)
    executed_set: set[Inst] = field(default_factory=set)


@dataclass(slots=True)
class Facts:
    """Everything the checks need, gathered in one pass over the events."""

    replicas: int
    events: int = 0
    lines: list[int] = field(default_factory=list)  # event index -> line
    value: dict[Inst, Value] = field(default_factory=dict)  # first committed value
    value_line: dict[Inst, int] = field(default_factory=dict)
    keys: dict[Inst, Keys] = field(default_factory=dict)
    per_replica: dict[int, Replica] = field(default_factory=dict)


class Verdict:
    def __init__(self) -> None:
        self.violations: list[dict] = []
        self.counts_by_check: dict[str, int] = defaultdict(int)

    def fail(self, check: str, line: int, message: str, **detail) -> None:
        self.counts_by_check[check] += 1
        if len(self.violations) < VIOLATIONS_LISTED_MAX:
            self.violations.append({"check": check, "line": line, "message": message, **detail})


# ---------------------------------------------------------------------------------------
# Input


def read_trace(path: Path) -> tuple[list[dict], list[int], int | None]:
    """Parse an NDJSON trace: (events, their line numbers, replicas from the meta line)."""
    events: list[dict] = []
    lines: list[int] = []
    replicas: int | None = None
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as error:
        raise TraceInputError(0, f"cannot read: {error.strerror or error}") from None
    with handle:
        for number, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise TraceInputError(number, "not UTF-8 text") from None
            if not text.strip():
                continue
            try:
                event = json.loads(text)
            except json.JSONDecodeError as error:
                raise TraceInputError(number, f"not JSON ({error.msg})") from None
            except (ValueError, RecursionError) as error:  # a huge number, deep nesting
                raise TraceInputError(number, f"not JSON ({type(error).__name__})") from None
            if not isinstance(event, dict):
                raise TraceInputError(number, "an event must be a JSON object")
            if "meta" in event and "action" not in event:
                meta = event["meta"]
                if not isinstance(meta, dict):
                    raise TraceInputError(number, "meta must be an object")
                if "replicas" in meta:
                    if not _is_int(meta["replicas"]) or meta["replicas"] < 1:
                        raise TraceInputError(number, "meta.replicas must be a positive integer")
                    replicas = meta["replicas"]
                protocol = meta.get("protocol")
                if protocol is not None and protocol != "epaxos":
                    raise TraceInputError(number, f"a {protocol} trace, not an EPaxos one")
                continue
            events.append(event)
            lines.append(number)
    return events, lines, replicas


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _inst(raw: object, line: int, replicas: int, what: str) -> Inst:
    if (not isinstance(raw, list) or len(raw) != 2 or not all(_is_int(x) for x in raw)):
        raise TraceInputError(line, f"{what} must be [replica, instance] integers")
    if not 0 <= raw[0] < replicas or raw[1] < 1:
        raise TraceInputError(line, f"{what} {raw} out of range for {replicas} replicas")
    return (raw[0], raw[1])


def _keys(raw: object, line: int) -> Keys:
    if (not isinstance(raw, dict) or not {"read", "write"} <= set(raw)
            or not set(raw) <= {"read", "write", "clients"}):
        raise TraceInputError(line, 'keys must be {"read": [...], "write": [...]} '
                              '(and optionally "clients": [...])')
    parts = []
    for name in ("read", "write"):
        items = raw[name]
        if not isinstance(items, list) or not all(isinstance(k, str) for k in items):
            raise TraceInputError(line, f"keys.{name} must be a list of strings")
        parts.append(frozenset(items))
    clients = raw.get("clients", [])
    if not isinstance(clients, list) or not all(_is_int(c) for c in clients):
        raise TraceInputError(line, "keys.clients must be a list of integers")
    return Keys(parts[0], parts[1], frozenset(clients))


def _state(raw: object, line: int, replicas: int) -> tuple[Inst, str, Value]:
    if not isinstance(raw, dict):
        raise TraceInputError(line, "state must be an object")
    for name in ("inst", "status", "batch", "seq", "deps"):
        if name not in raw:
            raise TraceInputError(line, f"state has no {name!r}")
    inst = _inst(raw["inst"], line, replicas, "state.inst")
    status = raw["status"]
    if status not in STATUSES:
        raise TraceInputError(line, f"state.status {status!r} is not one of {', '.join(STATUSES)}")
    batch = raw["batch"]
    if batch is not None and not isinstance(batch, str):
        raise TraceInputError(line, "state.batch must be a batch id string or null")
    if not _is_int(raw["seq"]) or raw["seq"] < 0:
        raise TraceInputError(line, "state.seq must be a non-negative integer")
    deps = raw["deps"]
    if (not isinstance(deps, list) or len(deps) != replicas
            or not all(_is_int(d) and d >= 0 for d in deps)):
        raise TraceInputError(line, f"state.deps must be {replicas} non-negative integers")
    return inst, status, Value(batch, raw["seq"], tuple(deps))


def _infer_replicas(events: list[dict]) -> int | None:
    for event in events:
        state = event.get("state") if isinstance(event, dict) else None
        if isinstance(state, dict) and isinstance(state.get("deps"), list):
            return len(state["deps"])
    return None


# ---------------------------------------------------------------------------------------
# One pass: committed values, commit and execution times per replica, keys


def gather(events: list[dict], lines: list[int], replicas: int, verdict: Verdict) -> Facts:
    facts = Facts(replicas=replicas, events=len(events), lines=lines)
    for index, event in enumerate(events):
        line = lines[index]
        if not isinstance(event, dict):
            raise TraceInputError(line, "an event must be a JSON object")
        action = event.get("action")
        if not isinstance(action, str):
            raise TraceInputError(line, "event has no action string")
        replica = event.get("replica")
        if not _is_int(replica) or not 0 <= replica < replicas:
            raise TraceInputError(line, f"replica must be an integer in 0..{replicas - 1}")
        own = facts.per_replica.setdefault(replica, Replica())
        if action in DRIVER_ACTIONS:
            # The drivers' events carry the whole replica's state, if any, not one
            # instance's. A restarted replica's execution order counts on from its
            # durable state (the core persists what it executed).
            continue
        raw_state = event.get("state")
        if raw_state is None:
            if action == "Execute":
                raise TraceInputError(line, "Execute has no state")
            continue
        inst, status, value = _state(raw_state, line, replicas)
        keys = None
        if "keys" in event:
            keys = _keys(event["keys"], line)
        elif action == "Execute" or (action in ("Commit", "HandleCommit") and status in COMMITTED):
            raise TraceInputError(line, f"{action} has no keys")
        # Keys describe the committed batch only on committed events (a Propose's batch
        # may lose to a recovered NOP).
        if keys is not None and status in COMMITTED:
            known = facts.keys.get(inst)
            if known is None:
                facts.keys[inst] = keys
            elif known != keys:
                verdict.fail("agreement", line, f"instance {list(inst)}: keys {_show_keys(keys)} "
                             f"differ from {_show_keys(known)} seen before",
                             replica=replica, inst=list(inst))

        if inst in own.committed_at:
            _check_stable(facts, own, replica, inst, status, value, line, verdict)
        elif status in COMMITTED:
            own.committed_at[inst] = index
            first = facts.value.get(inst)
            if first is None:
                facts.value[inst] = value
                facts.value_line[inst] = line
                if value.deps[inst[0]] < inst[1] - 1:
                    verdict.fail("agreement", line, f"instance {list(inst)} committed with "
                                 f"deps[{inst[0]}] = {value.deps[inst[0]]} < {inst[1] - 1}: "
                                 "not chained to its replica's previous instance",
                                 replica=replica, inst=list(inst))
            elif first != value:
                verdict.fail("agreement", line, f"replica {replica} committed instance "
                             f"{list(inst)} as {_show(value)}, but line "
                             f"{facts.value_line[inst]} has {_show(first)}",
                             replica=replica, inst=list(inst))

        if action == "Execute":
            order = event.get("order")
            if not _is_int(order) or order < 0:
                raise TraceInputError(line, "Execute has no order (a non-negative integer)")
            if status != "executed":
                verdict.fail("execution", line, f"Execute of {list(inst)} leaves status {status!r}",
                             replica=replica, inst=list(inst))
            if inst in own.executed_set:
                verdict.fail("execution", line, f"replica {replica} executes {list(inst)} twice",
                             replica=replica, inst=list(inst))
                continue
            # The contract: order is the position in the replica's execution sequence,
            # across restarts.
            expected = len(own.executed)
            if order != expected:
                verdict.fail("execution", line, f"replica {replica}: Execute order {order}, "
                             f"expected {expected} (executed so far)", replica=replica,
                             inst=list(inst))
            own.executed.append((inst, index, line))
            own.executed_set.add(inst)
    return facts


def _check_stable(facts: Facts, own: Replica, replica: int, inst: Inst, status: str,
                  value: Value, line: int, verdict: Verdict) -> None:
    """A replica that committed an instance never shows it otherwise (the paper's
    "Stability"), except that an executed instance may be dropped by GC (status none)."""
    if status in COMMITTED:
        held = facts.value[inst]
        if value != held:
            verdict.fail("agreement", line, f"replica {replica}: committed instance "
                         f"{list(inst)} changed to {_show(value)} from {_show(held)} "
                         f"(line {facts.value_line[inst]})", replica=replica, inst=list(inst))
    elif status == "none" and inst in own.executed_set:
        return
    else:
        verdict.fail("agreement", line, f"replica {replica}: committed instance {list(inst)} "
                     f"is {status!r} again", replica=replica, inst=list(inst))


def _show(value: Value) -> str:
    return f"(batch {value.batch}, seq {value.seq}, deps {list(value.deps)})"


def _show_keys(keys: Keys) -> str:
    return (f"read {sorted(keys.read)} write {sorted(keys.write)}"
            + (f" clients {sorted(keys.clients)}" if keys.clients else ""))


# ---------------------------------------------------------------------------------------
# Interference groups: per key, the writers and the readers (see the module docstring)


def interference_groups(keys: dict[Inst, Keys]) -> dict[str, tuple[list[Inst], list[Inst]]]:
    """key -> (writers, readers) such that two instances interfere iff some group holds
    both with at least one of them among its writers. ``"*"`` is every key: a ``"*"``
    reader (dbsize, scan) is a reader in every key's group, a ``"*"`` writer a writer in
    every key's group, and the group ``"*"`` pairs those two kinds among themselves.
    Writers of different keys never share a group. A client's session row is one more
    group, named ``"client N"`` (no KVS key can collide: client groups are kept apart
    from key groups, and ``"*"`` does not cover them), whose writers are that client's
    instances."""
    writers: dict[str, list[Inst]] = defaultdict(list)
    readers: dict[str, list[Inst]] = defaultdict(list)
    star_writers: list[Inst] = []
    star_readers: list[Inst] = []
    for inst, k in keys.items():
        if ALL_KEYS in k.write:
            star_writers.append(inst)
        else:
            for key in k.write:
                writers[key].append(inst)
            if ALL_KEYS in k.read:
                star_readers.append(inst)
            for key in k.read - k.write - {ALL_KEYS}:
                readers[key].append(inst)
    groups: dict[str, tuple[list[Inst], list[Inst]]] = {}
    for key in set(writers) | set(readers):
        key_writers = writers.get(key, [])
        written = set(key_writers)
        groups[key] = (key_writers + star_writers,
                       readers.get(key, []) + [r for r in star_readers if r not in written])
    if star_writers or star_readers:
        groups[ALL_KEYS] = (star_writers, star_readers)
    by_client: dict[int, list[Inst]] = defaultdict(list)
    for inst, k in keys.items():
        for client in k.clients:
            by_client[client].append(inst)
    named: dict = {key: members for key, members in groups.items()}
    for client, insts in by_client.items():
        named[ClientRow(client)] = (insts, [])
    return named


@dataclass(frozen=True, slots=True)
class ClientRow:
    """The group of one client's session row (never equal to a key string)."""

    client: int

    def __repr__(self) -> str:
        return f"client {self.client}'s session row"


def check_consistency(facts: Facts, groups: dict, verdict: Verdict) -> None:
    """SOSP 2013's "Consistency" guarantee: two committed interfering instances, one depends on
    the other. Every writer a against every other member b (b of another replica: two
    instances of one replica are ordered by the chain): covered if a.deps[b.R] >= b.i;
    else b must have b.deps[a.R] >= a.i, for every b of replica R above a.deps[R], which
    is a suffix minimum."""
    value = facts.value
    replicas = facts.replicas
    reported: set[tuple[Inst, Inst]] = set()
    for key, (writers, readers) in groups.items():
        members = [inst for inst in set(writers) | set(readers) if inst in value]
        by_replica: dict[int, list[Inst]] = defaultdict(list)
        for inst in members:
            by_replica[inst[0]].append(inst)
        numbers: dict[int, list[int]] = {}
        suffix_min: dict[int, list[list[int]]] = {}
        for r, insts in by_replica.items():
            insts.sort()
            numbers[r] = [i for _, i in insts]
            tables = []
            for other in range(replicas):
                column = [value[inst].deps[other] for inst in insts]
                for position in range(len(column) - 2, -1, -1):
                    if column[position + 1] < column[position]:
                        column[position] = column[position + 1]
                tables.append(column)
            suffix_min[r] = tables
        for a in set(writers):
            if a not in value:
                continue
            deps = value[a].deps
            for r, insts in by_replica.items():
                if r == a[0]:
                    continue
                start = bisect.bisect_right(numbers[r], deps[r])
                if start == len(insts) or suffix_min[r][a[0]][start] >= a[1]:
                    continue
                for b in insts[start:]:
                    if value[b].deps[a[0]] < a[1]:
                        pair = (min(a, b), max(a, b))
                        if pair in reported:  # two writers: found from both sides
                            break
                        reported.add(pair)
                        line = max(facts.value_line[a], facts.value_line[b])
                        verdict.fail("consistency", line, f"instances {list(a)} and {list(b)} "
                                     f"interfere on key {key!r} but neither depends on the "
                                     f"other: {list(a)} deps {list(deps)}, {list(b)} deps "
                                     f"{list(value[b].deps)}", inst=list(a), other=list(b))
                        break


# ---------------------------------------------------------------------------------------
# The dependency graph and each replica's execution


def reduced_edges(inst: Inst, value: Value) -> list[Inst]:
    """The reduced edges of lowpaxos.protocols.epaxos.graph with nothing executed: to
    (R, deps[R]) for deps[R] > 0 and the chain edge to (R', i' - 1)."""
    targets = [(r, d) for r, d in enumerate(value.deps) if d > 0]
    if inst[1] > 1 and value.deps[inst[0]] != inst[1] - 1:
        targets.append((inst[0], inst[1] - 1))
    return targets


def build_graph(facts: Facts) -> tuple[nx.DiGraph, int]:
    """The committed instances and the reduced edges between them; also the number of
    edges to instances committed nowhere in the trace (not a violation by itself: the
    run may have ended first; executing such an instance is one)."""
    graph = nx.DiGraph()
    committed = facts.value
    graph.add_nodes_from(committed)
    dangling = 0
    for inst, value in committed.items():
        for target in reduced_edges(inst, value):
            if target in committed:
                graph.add_edge(inst, target)
            else:
                dangling += 1
    return graph, dangling


def check_execution(facts: Facts, graph: nx.DiGraph, verdict: Verdict) -> dict:
    """Each replica's executed sequence against the condensation (SOSP 2013 §4.3.2)."""
    committed = facts.value
    condensed = nx.condensation(graph)
    component_of: dict[Inst, int] = condensed.graph["mapping"]
    members_of: dict[int, list[Inst]] = {}
    for c in condensed.nodes:
        members = [m for m in condensed.nodes[c]["members"] if m in committed]
        members.sort(key=lambda m: execution_key(m, committed[m].seq))
        members_of[c] = members
    largest = max((len(m) for m in members_of.values()), default=0)
    lines = facts.lines
    for replica, own in sorted(facts.per_replica.items()):
        position = {inst: p for p, (inst, _, _) in enumerate(own.executed)}
        first: dict[int, int] = {}
        last: dict[int, int] = {}
        for p, (inst, _, _) in enumerate(own.executed):
            c = component_of.get(inst)
            if c is None:
                continue
            first.setdefault(c, p)
            last[c] = p
        for c, start in first.items():
            members = members_of[c]
            inst, index, line = own.executed[start]
            missing = [m for m in members if m not in position]
            if missing:
                verdict.fail("execution", line, f"replica {replica} executed part of a "
                             f"component ({list(inst)} ...) but never {list(missing[0])} "
                             f"of it ({len(missing)} of {len(members)} missing)",
                             replica=replica, inst=list(inst))
            placed = [m for m in members if m in position]
            for earlier, later in zip(placed, placed[1:], strict=False):
                if position[later] < position[earlier]:
                    verdict.fail("execution", own.executed[position[earlier]][2],
                                 f"replica {replica} executed {list(later)} before "
                                 f"{list(earlier)} in one component; (seq, replica, instance) "
                                 f"order is {execution_key(earlier, committed[earlier].seq)} < "
                                 f"{execution_key(later, committed[later].seq)}",
                                 replica=replica, inst=list(earlier), other=list(later))
                    break
            for m in members:
                at = own.committed_at.get(m)
                if at is None or at > index:
                    verdict.fail("execution", line, f"replica {replica} executed {list(inst)} "
                                 f"before {list(m)} of its component was committed there"
                                 + ("" if at is None else f" (line {lines[at]})"),
                                 replica=replica, inst=list(inst), other=list(m))
                    break
            for m in members:
                if m not in position:
                    continue
                for target in reduced_edges(m, committed[m]):
                    d = component_of.get(target)
                    if d == c:
                        continue
                    m_line = own.executed[position[m]][2]
                    if d is None:
                        verdict.fail("execution", m_line, f"replica {replica} executed "
                                     f"{list(m)} but its dependency {list(target)} is "
                                     "committed nowhere in the trace", replica=replica,
                                     inst=list(m), other=list(target))
                    elif d not in last or last[d] > start:
                        verdict.fail("execution", m_line, f"replica {replica} executed "
                                     f"{list(m)} before its dependency {list(target)}'s "
                                     "component was executed", replica=replica,
                                     inst=list(m), other=list(target))
    return {"components": condensed.number_of_nodes(), "largest_component": largest}


def check_order(facts: Facts, groups: dict, verdict: Verdict) -> None:
    """Interfering instances execute in one relative order at every replica that executed
    both: per group, the writers in the same order, each reader after the same writers."""
    positions = {r: {inst: p for p, (inst, _, _) in enumerate(own.executed)}
                 for r, own in facts.per_replica.items() if own.executed}
    replicas = sorted(positions)
    for key, (writers, readers) in groups.items():
        writer_set = set(writers)
        members = writer_set | set(readers)
        for x, first in enumerate(replicas):
            for second in replicas[x + 1:]:
                here, there = positions[first], positions[second]
                both = [m for m in members if m in here and m in there]
                if len(both) < 2:
                    continue
                both.sort(key=here.__getitem__)
                in_writers = [m for m in both if m in writer_set]
                # Writers in one order: their positions at `second` increase.
                broken = None
                for earlier, later in zip(in_writers, in_writers[1:], strict=False):
                    if there[later] < there[earlier]:
                        broken = (earlier, later)
                        break
                if broken is None:
                    # Each reader after the same number of (common) writers.
                    written_before_here = {}
                    count = 0
                    for m in both:
                        if m in writer_set:
                            count += 1
                        else:
                            written_before_here[m] = count
                    writer_there = sorted(there[w] for w in in_writers)
                    for m, count in written_before_here.items():
                        count_there = bisect.bisect_left(writer_there, there[m])
                        if count_there > count:  # a writer after m here is before it there
                            broken = (m, in_writers[count])
                            break
                        if count_there < count:  # a writer before m here is after it there
                            broken = (in_writers[count - 1], m)
                            break
                if broken is not None:
                    earlier, later = broken
                    # The line where `second` executes the pair's other member.
                    line = facts.per_replica[second].executed[there[earlier]][2]
                    verdict.fail("order", line, f"interfering {list(earlier)} and {list(later)} "
                                 f"(key {key!r}): replica {first} executed {list(earlier)} "
                                 f"first, replica {second} {list(later)} first",
                                 inst=list(earlier), other=list(later),
                                 replicas=[first, second])


# ---------------------------------------------------------------------------------------
# Entry points


def check_trace_events(events: list[dict], lines: list[int] | None = None,
                       replicas: int | None = None) -> dict:
    """Check parsed events; raises TraceInputError on bad input. ``lines``: each event's
    line in its file (default: the event number, from 1)."""
    started = time.monotonic()
    if lines is None:
        lines = list(range(1, len(events) + 1))
    if replicas is None:
        replicas = _infer_replicas(events)
        if replicas is None:
            replicas = 1
    verdict = Verdict()
    facts = gather(events, lines, replicas, verdict)
    groups = interference_groups({inst: k for inst, k in facts.keys.items()
                                  if inst in facts.value})
    check_consistency(facts, groups, verdict)
    graph, dangling = build_graph(facts)
    shape = check_execution(facts, graph, verdict)
    check_order(facts, groups, verdict)
    unknown_keys = sum(1 for inst in facts.value if inst not in facts.keys)
    counts = {
        "events": facts.events,
        "replicas": replicas,
        "instances": len(facts.value),
        "edges": graph.number_of_edges(),
        "edges_to_uncommitted": dangling,
        "components": shape["components"],
        "largest_component": shape["largest_component"],
        "executed": {str(r): len(own.executed) for r, own in sorted(facts.per_replica.items())},
        "keys": len(groups),
        "instances_without_keys": unknown_keys,
    }
    by_check = dict(sorted(verdict.counts_by_check.items()))
    ok = not verdict.violations
    explanation = ("every check passed" if ok else
                   "; ".join(f"{n} {check}" for check, n in by_check.items())
                   + " violation(s); first: line " + str(verdict.violations[0]["line"])
                   + ": " + verdict.violations[0]["message"])
    return {"ok": ok, "violations": verdict.violations, "violations_by_check": by_check,
            "counts": counts, "explanation": explanation,
            "check_seconds": round(time.monotonic() - started, 3)}


def check_events(events: Iterable[dict], replicas: int) -> dict:
    """The simulator's hook (sim/run.py GRAPH_CHECKS): a verdict dict, never an
    exception for bad events (a bad event is itself a failed verdict)."""
    listed = list(events)
    try:
        return check_trace_events(listed, replicas=replicas)
    except TraceInputError as error:
        return {"ok": False, "violations": [], "violations_by_check": {},
                "input_error": {"line": error.line, "reason": error.reason},
                "counts": {"events": len(listed), "replicas": replicas},
                "explanation": f"event {error.line}: {error.reason}"}


def check_file(path: Path) -> dict:
    """Read and check one NDJSON trace; raises TraceInputError on bad input."""
    events, lines, replicas = read_trace(path)
    return check_trace_events(events, lines, replicas)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Check an EPaxos trace with networkx: agreement and stability of "
                          "committed instances, consistency of interfering ones, each "
                          "replica's execution order against the dependency graph's "
                          "condensation, one order of interfering instances everywhere. "
                          "Exit 0: ok; 1: a violation; 2: bad input.")
    parser.add_argument("trace", metavar="TRACE", help="an NDJSON trace (lowpaxos sim --trace)")
    parser.add_argument("--json", action="store_true", help="print the verdict as JSON")


def command(args: argparse.Namespace) -> int:
    path = Path(args.trace)
    try:
        verdict = check_file(path)
    except TraceInputError as error:
        print(f"{path}:{error.line}: {error.reason}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.json:
        print(json.dumps(verdict, sort_keys=True))
    else:
        counts = verdict["counts"]
        print(f"{path}: {counts['events']} events, {counts['instances']} committed instances, "
              f"{counts['edges']} edges, {counts['components']} components (largest "
              f"{counts['largest_component']}), executed per replica {counts['executed']}: "
              f"{'ok' if verdict['ok'] else 'VIOLATIONS'} ({verdict['check_seconds']:.2f} s)")
        for violation in verdict["violations"]:
            print(f"{path}:{violation['line']}: {violation['check']}: {violation['message']}")
        hidden = sum(verdict["violations_by_check"].values()) - len(verdict["violations"])
        if hidden > 0:
            print(f"... and {hidden} more violation(s)")
    return EXIT_OK if verdict["ok"] else EXIT_VIOLATION


def iter_lines(events: Iterable[dict]) -> Iterator[str]:
    """NDJSON lines of events (tests write synthetic traces with it)."""
    for event in events:
        yield json.dumps(event, sort_keys=True) + "\n"


__all__ = ["EXIT_BAD_INPUT", "EXIT_OK", "EXIT_VIOLATION", "TraceInputError", "check_events",
           "check_file", "check_trace_events", "interference_groups", "read_trace"]
