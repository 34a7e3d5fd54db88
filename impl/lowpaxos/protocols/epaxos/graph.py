"""EPaxos execution planning: which committed instances run, in which order.

EPaxos SOSP 2013 §4.3.2 (Moraru, Andersen, Kaminsky), "Execution algorithm": to execute
a committed instance, wait until every instance it depends on, transitively, is
committed; find the strongly connected components of that dependency graph (Tarjan);
execute the components in reverse topological order (a component after every component
it depends on) and, inside one component, by sequence number (ties by replica id, then
instance number: the paper breaks ties by "some other criteria, such as the ID of the
leader"; ours is a total order on (seq, R, i)).

The graph. Nodes are instance ids ``(R, i)`` (replica R's i-th instance, i >= 1).
``deps`` is a VECTOR (the EPaxos contract of issue 9): ``deps[R] = d`` means "depends on
every (R, j) with 1 <= j <= d". Each replica's instance space is also chained: (R, i)
depends on (R, i - 1), which the protocol already writes into the deps (a command
leader's own instance (L, i) always has ``deps[L] >= i - 1``); the planner adds that
chain edge itself, so an instance space always executes in order and the executed set
is a frontier VECTOR: (R, j) is done iff ``j <= frontier[R]``.

Reduced edges. The full ("vector") edges of (R', i') go to every not-done (R, j) with
``frontier[R] < j <= deps[R]``: up to N * window edges per node. The planner keeps only
  * (R, deps[R]) for each R with deps[R] > frontier[R], and
  * the chain edge (R', i' - 1) when i' - 1 > frontier[R'].
Both are full edges (the chain edge because deps[R'] >= i' - 1), so the reduced graph
reaches no more than the full one; and it reaches no less: every not-done (R, k) has its
chain edge to (R, k - 1) down to the frontier, so (R, deps[R]) reaches every (R, j) with
frontier[R] < j <= deps[R]. Equal reachability gives the same strongly connected
components and the same order between them (the condensation's reachability is the
graph's). tests/test_epaxos_graph.py checks this against networkx on generated graphs.
(Without the chain edge the claim fails when an instance's own deps[R'] exceeds i' - 1,
which recovery's fresh Phase 1 may produce: (R, k) -> (R, k + 1) -> (R, k) would never
reach (R, k - 1).)

Pure: no I/O, no state; the core passes a lookup function. Tarjan's algorithm is
iterative (an explicit stack), so a chain of 100,000 instances needs no recursion.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

Inst = tuple[int, int]
# node(inst) -> (seq, deps) of a committed, not yet executed instance; None if the
# instance is not committed (at this replica).
NodeLookup = Callable[[Inst], "tuple[int, tuple[int, ...]] | None"]


def reduced_successors(inst: Inst, deps: Sequence[int], frontier: Sequence[int]) -> list[Inst]:
    """The not-done instances `inst` has a reduced edge to (see the module docstring)."""
    replica, number = inst
    targets: list[Inst] = []
    for target_replica, depth in enumerate(deps):
        if depth > frontier[target_replica]:
            targets.append((target_replica, depth))
    # The chain edge: an instance space executes in order.
    if number - 1 > frontier[replica] and deps[replica] != number - 1:
        targets.append((replica, number - 1))
    return targets


def full_successors(inst: Inst, deps: Sequence[int], frontier: Sequence[int]) -> list[Inst]:
    """Every not-done instance `inst` depends on by the vector semantics plus the chain:
    the graph the reduced edges stand for (used by tests and by the trace checker)."""
    replica, number = inst
    targets: list[Inst] = []
    for target_replica, depth in enumerate(deps):
        if target_replica == replica:
            depth = max(depth, number - 1)
        for j in range(frontier[target_replica] + 1, depth + 1):
            targets.append((target_replica, j))
    return targets


def execution_key(inst: Inst, seq: int) -> tuple[int, int, int]:
    """The order inside one strongly connected component: (seq, replica, instance)."""
    return (seq, inst[0], inst[1])


def plan_execution(start: Inst, node: NodeLookup,
                   frontier: Sequence[int]) -> tuple[list[list[Inst]], Inst | None]:
    """Plan the execution of committed instance `start` (EPaxos SOSP 2013 §4.3.2).

    Walks the reduced dependency graph (module docstring) from `start` over committed,
    not-done instances. If it reaches an instance that is neither done (j <=
    frontier[R]) nor committed (``node`` returns None), returns ``([], that instance)``:
    nothing can execute yet and the caller may start recovery of it. Otherwise returns
    ``(components, None)``: every strongly connected component reachable from `start`,
    in execution order (dependencies first, so `start`'s component is last), each sorted
    by (seq, replica, instance). A done `start` gives ``([], None)``.

    The caller executes the components in order; the frontier vector is contiguous again
    once all of them ran (inside a component an instance may run before an earlier one
    of its own replica when its seq is lower, which is what the paper's order says).
    """
    if start[1] <= frontier[start[0]]:
        return [], None
    # Each instance is looked up once; seq for the in-component sort.
    seq_of: dict[Inst, int] = {}
    successors_of: dict[Inst, list[Inst]] = {}

    def visit(inst: Inst) -> bool:
        found = node(inst)
        if found is None:
            return False
        seq, deps = found
        seq_of[inst] = seq
        successors_of[inst] = reduced_successors(inst, deps, frontier)
        return True

    if not visit(start):
        return [], start

    # Tarjan 1972, iterative: `work` holds (instance, position in its successor list).
    index_of: dict[Inst, int] = {start: 0}
    lowlink: dict[Inst, int] = {start: 0}
    on_stack: set[Inst] = {start}
    tarjan_stack: list[Inst] = [start]
    work: list[list] = [[start, 0]]
    next_index = 1
    components: list[list[Inst]] = []
    while work:
        frame = work[-1]
        inst, position = frame
        successors = successors_of[inst]
        if position < len(successors):
            frame[1] = position + 1
            target = successors[position]
            if target not in index_of:
                if target[1] <= frontier[target[0]]:
                    continue  # done (reduced edges already skip these; kept for safety)
                if not visit(target):
                    return [], target
                index_of[target] = lowlink[target] = next_index
                next_index += 1
                tarjan_stack.append(target)
                on_stack.add(target)
                work.append([target, 0])
            elif target in on_stack:
                if index_of[target] < lowlink[inst]:
                    lowlink[inst] = index_of[target]
            continue
        # All successors of `inst` are explored.
        work.pop()
        if work:
            parent = work[-1][0]
            if lowlink[inst] < lowlink[parent]:
                lowlink[parent] = lowlink[inst]
        if lowlink[inst] == index_of[inst]:
            component: list[Inst] = []
            while True:
                member = tarjan_stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == inst:
                    break
            component.sort(key=lambda member: execution_key(member, seq_of[member]))
            # Tarjan emits a component only after every component reachable from it:
            # reverse topological order, the execution order.
            components.append(component)
    return components, None


def largest_component(components: Iterable[Sequence[Inst]]) -> int:
    """Instances in the largest component of a plan (0 for an empty plan): the figure the
    issue asks for under sustained conflicts (execution livelock shows as a growing SCC)."""
    return max((len(component) for component in components), default=0)


def flatten(components: Iterable[Sequence[Inst]]) -> list[Inst]:
    """The plan as one execution sequence."""
    return [inst for component in components for inst in component]


__all__ = ["Inst", "NodeLookup", "execution_key", "flatten", "full_successors",
           "largest_component", "plan_execution", "reduced_successors"]
