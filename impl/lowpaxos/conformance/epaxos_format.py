"""EPaxos's trace format and its mapping onto spec/EPaxos.tla.

The EPaxos core (impl/lowpaxos/protocols/epaxos/core.py, ``_trace``) logs one event
per action of spec/EPaxos.tla (the names of the handlers, /tmp contract of issue 9:
Propose, HandlePreAccept, HandlePreAcceptOK, HandleAccept, HandleAcceptOK,
HandleCommit, StartRecovery, HandlePrepare, HandlePrepareOK, HandleNack, Execute,
HandleStatus, and ``Commit`` after the handler whose reply completed a quorum).
Unlike LowPaxos and VR, the logged ``state`` is not the whole replica but the ONE
instance the action touched, after the action, in the spec's variables:

    {"inst": [R, i], "status": ..., "ballot": [round, replica],
     "vballot": [round, replica], "batch": batch id | "noop" | null, "seq": n,
     "deps": [d0, ..., dN-1], "unchanged": bool}

The tables here drive the generic line validation of ``lowpaxos.conformance.trace``;
``plan_steps``, ``write_module`` and ``write_config`` turn the validated events into
a copy of conformance/TraceEPaxos.tla (docs/conformance.md, "EPaxos").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lowpaxos.conformance.tlagen import tla_string
from lowpaxos.conformance.trace import Event, Trace, ballot, check_value, fail, is_nat

RECEIVE_ACTIONS = {
    "HandlePreAccept": "PreAccept",
    "HandlePreAcceptOK": "PreAcceptOK",
    "HandleAccept": "Accept",
    "HandleAcceptOK": "AcceptOK",
    "HandleCommit": "Commit",
    "HandlePrepare": "Prepare",
    "HandlePrepareOK": "PrepareOK",
    "HandleNack": "Nack",
    "HandleStatus": "Status",
}
LOCAL_ACTIONS = frozenset({
    "Propose", "StartRecovery", "Commit", "Execute",
    # The slow path a leader takes when its PreAccept times out with F or more replies
    # but no fast quorum (core._retry_drives): TraceEPaxos.tla's PreAcceptTimeoutStep.
    "PreAcceptTimeout",
    # Not spec actions (each sends again what is already in the network, or changes no
    # spec variable): retries of a phase, the frontier messages, garbage collection.
    "RetryPreAccept", "RetryAccept", "RetryPrepare", "SendStatus", "ResendCommit", "Collect",
})
DRIVER_ACTIONS = frozenset({"Crash", "Restart"})
# Logged without an instance's state: Crash (the core is gone), the frontier and
# collection events (they touch no one instance), and Restart, whose state is the
# restarted replica's frontiers (read by plan_steps from the raw line).
STATELESS_ACTIONS = frozenset({"Crash", "Restart", "SendStatus", "HandleStatus",
                               "ResendCommit", "Collect"})
SLOT_ACTIONS: frozenset[str] = frozenset()
TARGET_ACTIONS: frozenset[str] = frozenset({"ResendCommit"})
STATUSES = ("none", "preaccepted", "accepted", "committed", "executed")
COMMIT_PATHS = frozenset({"fast", "slow", "recovered"})
# The KVS commands' keys as an Execute event lists them; "*" is every key (dbsize, scan).
KEYS_MAX = 4096

# Fields of each message type as the core's describe_message writes them, with a check
# of each value (trace.check_value kinds). A batch is its batch id ("noop" for NOP).
MESSAGE_FIELDS = {
    "PreAccept": {"ballot": "ballot", "inst": "inst", "batch": "batch", "seq": "nat",
                  "deps": "vector"},
    "PreAcceptOK": {"ballot": "ballot", "inst": "inst", "seq": "nat", "deps": "vector",
                    "unchanged": "bool"},
    "Accept": {"ballot": "ballot", "inst": "inst", "batch": "batch", "seq": "nat",
               "deps": "vector"},
    "AcceptOK": {"ballot": "ballot", "inst": "inst"},
    "Commit": {"inst": "inst", "batch": "batch", "seq": "nat", "deps": "vector"},
    "Prepare": {"ballot": "ballot", "inst": "inst"},
    "PrepareOK": {"ballot": "ballot", "inst": "inst", "status": "word", "batch": "batch?",
                  "seq": "nat", "deps": "vector", "vballot": "ballot", "unchanged": "bool"},
    "Nack": {"inst": "inst", "ballot": "ballot"},
    "Status": {"executed": "vector", "committed": "vector"},
}

# The safety invariants of spec/EPaxos.tla checked in every replayed state: the
# commands committed were proposed (Nontriviality), one value per instance
# (Agreement), two committed interfering instances: one depends on the other
# (Consistency, SOSP §4.3 Lemma 2), executions well formed, and the per-key executed
# sequences agree (ExecutionAgrees; left out of a trace whose batches touch several
# keys, where the spec's one-key-per-command groups would not say the same).
SAFETY_INVARIANTS = ("Nontriviality", "Agreement", "Consistency", "ExecutedWellFormed",
                     "ExecutionAgrees")


@dataclass(frozen=True, slots=True)
class State:
    """One instance at one replica, in EPaxos.tla's variables (core.py spec_state)."""

    inst: tuple[int, int]
    status: str
    ballot: tuple[int, int]
    vballot: tuple[int, int]
    batch: str | None  # None: the replica does not know the instance's command
    seq: int
    deps: tuple[int, ...]
    unchanged: bool

    def describe(self) -> str:
        return (f"instance {list(self.inst)} {self.status}, ballot {list(self.ballot)}, "
                f"vballot {list(self.vballot)}, batch {self.batch}, seq {self.seq}, "
                f"deps {list(self.deps)}, unchanged {self.unchanged}")


def parse_inst(path: str, line: int, what: str, value: object) -> tuple[int, int]:
    check_value(path, line, what, "inst", value)
    return (value[0], value[1])  # type: ignore[index]


def parse_state(path: str, line: int, value: object) -> State:
    if not isinstance(value, dict):
        fail(path, line, "state must be an object (the instance the action touched)")
    for name in ("inst", "status", "ballot", "vballot", "batch", "seq", "deps", "unchanged"):
        if name not in value:
            fail(path, line, f"state lacks {name!r}")
    inst = parse_inst(path, line, "state.inst", value["inst"])
    if not (isinstance(value["status"], str) and value["status"] in STATUSES):
        fail(path, line, f"state.status must be one of {list(STATUSES)}, got {value['status']!r}"[:200])
    check_value(path, line, "state.batch", "batch?", value["batch"])
    check_value(path, line, "state.seq", "nat", value["seq"])
    check_value(path, line, "state.deps", "vector", value["deps"])
    check_value(path, line, "state.unchanged", "bool", value["unchanged"])
    return State(inst, value["status"], ballot(path, line, "state.ballot", value["ballot"]),
                 ballot(path, line, "state.vballot", value["vballot"]), value["batch"],
                 value["seq"], tuple(value["deps"]), value["unchanged"])


# ---- the mapping onto TraceEPaxos.tla -----------------------------------------------

EXPLAIN = False  # check.py's field-by-field probe is LowPaxos's; EPaxos gets the headline

# The actions whose handler logs the instance BEFORE the quorum the message completes
# takes effect (core.py calls _trace, then _preaccept_progress / _accept_progress /
# _recovery_progress): the effect shows in the line after (Commit), or only in what the
# step sent (an Accept or a PreAccept of the instance), see plan_steps.
# PreAcceptTimeout too: logged before the slow path's Accept, from a tick (whose step
# may log more events: its sends are looked for in the whole step).
PROGRESS_ACTIONS = frozenset({"HandlePreAcceptOK", "HandleAcceptOK", "HandlePrepareOK",
                              "PreAcceptTimeout"})
# The core's events that are no step of the spec (TraceEPaxos.tla, Take's OTHER).
STUTTER_ACTIONS = frozenset({"Crash", "Commit", "RetryPreAccept", "RetryAccept",
                             "RetryPrepare", "SendStatus", "HandleStatus", "ResendCommit",
                             "Collect"})
ALL_KEYS = "*"


@dataclass
class Footprint:
    """What a batch touches, as the trace logs it: keys read and written ("*": every
    key, dbsize and scan) and the clients whose session rows it writes."""

    read: frozenset[str]
    write: frozenset[str]
    clients: frozenset[int] | None  # None: the trace does not say


def _footprint(path: str, line: int, value: object) -> Footprint:
    if not isinstance(value, dict):
        fail(path, line, "keys must be an object {\"read\": [...], \"write\": [...]}")
    lists = {}
    for name in ("read", "write"):
        items = value.get(name)
        if not (isinstance(items, list) and len(items) <= KEYS_MAX
                and all(isinstance(k, str) and len(k) <= 1024 for k in items)):
            fail(path, line, f"keys.{name} must be a list of at most {KEYS_MAX} strings")
        lists[name] = frozenset(items)
    clients = value.get("clients")
    if clients is not None and not (isinstance(clients, list) and len(clients) <= KEYS_MAX
                                    and all(isinstance(c, int) and not isinstance(c, bool)
                                            and abs(c) < 2**63 for c in clients)):
        fail(path, line, "keys.clients must be a list of client ids")
    return Footprint(lists["read"], lists["write"],
                     None if clients is None else frozenset(clients))


def interferes(a: Footprint, b: Footprint) -> bool:
    """The contract's interference (same key, one writes; "*" reads every key) and the
    core's (core.Conflicts): the instances of one client interfere, each writing the
    client's session row."""
    if a.write & (b.read | b.write) or b.write & a.read:
        return True
    if (ALL_KEYS in a.read and b.write) or (ALL_KEYS in b.read and a.write):
        return True
    return bool(a.clients and b.clients and a.clients & b.clients)


@dataclass
class PlannedEvent:
    event: Event
    spec_action: str  # the spec action the step takes ("Skip": none, a stutter)
    check: bool = True
    state: State | None = None  # the state the step must reach (None: not compared)
    pre: State | None = None  # the state to compare before the step
    unreachable: str | None = None
    frontier: tuple[int, ...] | None = None  # Restart: the saved executed frontier
    # A receive: "act" (the spec's handler), "collect" (no spec variable changes: the
    # message is only noted), "either" (a runtime trace, whose sends carry no messages).
    mode: str = "act"


# Spec actions not expected in any trace: none. (spec/EPaxos.tla has no HandleNack: the
# core notes a Nack's round for its next recovery ballot and abandons its phase, which
# changes no spec variable, so its HandleNack lines are collect steps, checked as such.)
NOT_IN_TRACES: dict[str, str] = {}


@dataclass
class Model:
    replicas: int
    max_instance: int
    max_round: int
    fast_quorum: int
    values: list[str]
    footprints: dict[str, Footprint]
    groups: list[list[str]]  # KeyGroups: one per key, merged where a batch spans keys
    reads: list[str]
    exact_groups: bool  # every batch touches one key: ExecutionAgrees is the spec's
    safety_invariants: tuple[str, ...] = ()


def _sent(event: Event, kind: str, inst: tuple[int, int],
          sends: list[dict] | None = None) -> dict | None:
    """A message of this type and instance that the event's step sent (simulator):
    among ``sends`` if given, else those logged on the event."""
    if sends is None:
        sends = [item.get("message") for item in event.sent if isinstance(item, dict)]
    for message in sends:
        if isinstance(message, dict) and message.get("type") == kind \
                and tuple(message.get("inst", ())) == inst:
            return message
    return None


def _batch_of(message: dict) -> str | None:
    return message.get("batch")


def _check_extent(trace: Trace, event: Event) -> None:
    """Values that must fit the cluster: replica ids in instances and deps lengths."""
    n = trace.replicas
    path, line = trace.path, event.line

    def inst_ok(inst, what: str) -> None:
        if inst[0] >= n:
            fail(path, line, f"{what} {list(inst)} names replica {inst[0]} of {n}")

    def vector_ok(vector, what: str) -> None:
        if len(vector) != n:
            fail(path, line, f"{what} has {len(vector)} entries for {n} replicas")

    state = event.state
    if state is not None:
        inst_ok(state.inst, "state.inst")
        vector_ok(state.deps, "state.deps")
        for b in (state.ballot, state.vballot):
            if b[1] >= n or b[1] < 0:
                fail(path, line, f"state ballot {list(b)} names no replica of {n}")
    messages = ([event.message] if event.message is not None else []) + \
        [item["message"] for item in event.sent if isinstance(item, dict)]
    for message in messages:
        if "inst" in message:
            inst_ok(message["inst"], f"{message['type']}.inst")
        for name in ("deps", "executed", "committed"):
            if name in message:
                vector_ok(message[name], f"{message['type']}.{name}")
        for name in ("ballot", "vballot"):
            if name in message and not 0 <= message[name][1] < n:
                fail(path, line, f"{message['type']}.{name} {message[name]} names no replica")


def _initial(inst: tuple[int, int], replicas: int) -> State:
    """An instance a replica has never heard of (core.instance_state's "none")."""
    return State(inst, "none", (0, inst[0]), (0, inst[0]), None, 0, (0,) * replicas, False)


def _step_sends(events: list[Event], index: int) -> list[dict]:
    """The messages sent by the step of event ``index`` (the simulator logs them on the
    step's last event; the events of one step share its "step")."""
    step = events[index].raw.get("step")
    if step is None:
        return [item["message"] for item in events[index].sent if isinstance(item, dict)]
    found = []
    for other in range(index, len(events)):
        if events[other].raw.get("step") != step or events[other].replica != events[index].replica:
            break
        found += [item["message"] for item in events[other].sent if isinstance(item, dict)]
    return found


def _mode(event: Event, before: State | None, after: State, sends: list[dict] | None) -> str:
    """Whether a receive is the spec's handler, or a message noted without a change."""
    if before is None or sends is None:
        return "either"
    if after != before:
        return "act"
    inst = list(after.inst)
    if any(m.get("type") == "Nack" and m.get("inst") == inst for m in sends):
        return "act"  # the handler's Nack branch (a lower ballot): state unchanged
    if event.action == "HandlePrepare" and after.status in ("committed", "executed"):
        return "act"  # TraceEPaxos.tla's PrepareCommittedMessage
    return "collect"


def plan_steps(trace: Trace) -> list[PlannedEvent]:
    """One planned step per event (docs/conformance.md, "EPaxos"):

    * a handler that logged the instance before its quorum took effect
      (PROGRESS_ACTIONS) is checked, before the step, with its own state; after the
      step with the next line's state when that is the Commit of the instance (the
      Commit line is then a stutter with the same state), else with the state the
      step's sent Accept or PreAccept of the instance shows (recovery Phase 1, or Phase
      2), else (nothing sent) with its own state (a reply short of a quorum); a runtime
      trace (sends without their messages) is checked by the next lines;
    * Restart cuts the replica's execution back to the frontier its line logs
      (TraceEPaxos.tla, RestartTo);
    * everything else is the spec action of the same name, or a stutter."""
    events = trace.events
    plans: list[PlannedEvent] = []
    # The last state of each (replica, instance) the trace showed; a replica restarted
    # without a logged frontier (runtime) is not tracked until it shows it again.
    last: dict[tuple[int, tuple[int, int]], State] = {}
    untracked: set[int] = set()
    runtime = any(isinstance(event.raw.get("received"), list) for event in events)
    for index, event in enumerate(events):
        _check_extent(trace, event)
        plan = PlannedEvent(event, event.action, state=event.state)
        if event.action in STUTTER_ACTIONS:
            plan.spec_action = "Skip"
            plan.check = event.state is not None
        elif event.action == "Restart":
            raw = event.raw.get("state")
            if isinstance(raw, dict) and "executed" in raw:
                check_value(trace.path, event.line, "state.executed", "vector", raw["executed"])
                if len(raw["executed"]) != trace.replicas:
                    fail(trace.path, event.line, "state.executed needs one entry per replica")
                plan.frontier = tuple(raw["executed"])
                for (replica, inst), held in list(last.items()):
                    if replica == event.replica and held.status == "executed" \
                            and inst[1] > plan.frontier[inst[0]]:
                        last[(replica, inst)] = State(inst, "committed", held.ballot,
                                                      held.vballot, held.batch, held.seq,
                                                      held.deps, held.unchanged)
            else:
                untracked.add(event.replica)
            plan.check = False
            plan.spec_action = "Crash"  # MAPPED: TraceEPaxos.tla's RestartTo / RestartAny
        elif event.state is None:
            fail(trace.path, event.line, f"{event.action} needs the instance's state")
        if event.action == "Execute":
            order = event.raw.get("order")
            if not is_nat(order):
                fail(trace.path, event.line, f"Execute needs its order (a natural number), "
                                             f"got {order!r}"[:200])
        if event.action in ("Commit", "HandleCommit", "Execute", "Propose") \
                and "keys" in event.raw:
            _footprint(trace.path, event.line, event.raw["keys"])
        if event.action == "Commit" and event.raw.get("path") not in COMMIT_PATHS:
            fail(trace.path, event.line, f"Commit needs a path in {sorted(COMMIT_PATHS)}")
        if event.action in PROGRESS_ACTIONS and event.state is not None:
            state = event.state
            following = events[index + 1] if index + 1 < len(events) else None
            plan.pre = state
            sends = _step_sends(events, index) if event.action == "PreAcceptTimeout" else None
            if following is not None and following.action == "Commit" \
                    and following.replica == event.replica and following.state is not None \
                    and following.state.inst == state.inst \
                    and following.raw.get("step") == event.raw.get("step"):
                plan.state = following.state
            elif _sent(event, "Accept", state.inst, sends) is not None:
                message = _sent(event, "Accept", state.inst, sends)
                plan.state = State(state.inst, "accepted", tuple(message["ballot"]),
                                   tuple(message["ballot"]), message["batch"], message["seq"],
                                   tuple(message["deps"]), False)
            elif _sent(event, "PreAccept", state.inst, sends) is not None:
                message = _sent(event, "PreAccept", state.inst, sends)
                plan.state = State(state.inst, "preaccepted", tuple(message["ballot"]),
                                   tuple(message["ballot"]), message["batch"], message["seq"],
                                   tuple(message["deps"]), False)
            elif runtime:
                plan.check = False  # a runtime trace: the sends carry no messages
        if event.action in RECEIVE_ACTIONS and event.state is not None:
            key = (event.replica, event.state.inst)
            before = None if event.replica in untracked and key not in last else \
                last.get(key, _initial(event.state.inst, trace.replicas))
            after = plan.state if plan.check and plan.state is not None else event.state
            plan.mode = _mode(event, before if plan.pre is None else plan.pre, after,
                              None if runtime else _step_sends(events, index))
            if plan.pre is not None and not plan.check:
                plan.mode = "either"
            if plan.mode == "collect":
                plan.spec_action = "Skip"
        for held in (plan.state if plan.check else None, event.state):
            if held is not None:
                last[(event.replica, held.inst)] = held
                break
        plans.append(plan)
    _mark_unknown_batches(trace, plans)
    return plans


def footprints_of(trace: Trace) -> dict[str, Footprint]:
    """Each batch id's footprint, from the events that log one (the first wins; every
    event logs the same batch alike)."""
    found: dict[str, Footprint] = {}
    for event in trace.events:
        if "keys" not in event.raw or event.state is None:
            continue
        batch = event.state.batch
        if batch is not None and batch != NOOP and batch not in found:
            found[batch] = _footprint(trace.path, event.line, event.raw["keys"])
    return found


NOOP = "noop"


def _batches_in(event: Event) -> set[str]:
    batches: set[str] = set()
    if event.state is not None and event.state.batch is not None:
        batches.add(event.state.batch)
    messages = ([event.message] if event.message is not None else []) + \
        [item["message"] for item in event.sent if isinstance(item, dict)]
    for message in messages:
        if message.get("batch") is not None:
            batches.add(message["batch"])
    batches.discard(NOOP)
    return batches


def _mark_unknown_batches(trace: Trace, plans: list[PlannedEvent]) -> None:
    """A batch whose keys no line logs cannot take part in the spec's seq and deps: the
    first line that holds it is where the replay must stop, with that reason."""
    known = footprints_of(trace)
    for plan in plans:
        unknown = sorted(_batches_in(plan.event) - set(known))
        if unknown:
            plan.unreachable = (f"batch {unknown[0]} appears here but no line of the trace "
                                f"logs its keys, so its interference is unknown")
            return


def _tla_ballot(b) -> str:
    return f"<<{b[0]}, {b[1] + 1}>>"


def model_value(batch: str | None, inst) -> str | None:
    """The spec's value for a batch held in instance ``inst``: the batch id with the
    instance. An instance only ever holds the batch proposed in it (or NoOp), so this
    names the same thing; it keeps apart the one batch proposed twice, in two
    instances (a client that retries at another replica, when the batch is that one
    command), which the spec's ProposeCommand allows once per value."""
    if batch is None or batch == NOOP:
        return None
    return f"{batch}:{inst[0]}.{inst[1]}"


def _tla_cmd(batch: str | None, inst) -> str:
    value = model_value(batch, inst)
    return "TraceNoOp" if value is None else tla_string(value)


def _tla_vector(vector) -> str:
    return "<<" + ", ".join(str(x) for x in vector) + ">>"


def _tla_inst(inst) -> str:
    return f"<<{inst[0] + 1}, {inst[1]}>>"


def _tla_state(state: State) -> str:
    return ("[inst |-> %s, status |-> %s, bal |-> %s, vbal |-> %s, cmd |-> %s, seq |-> %d, "
            "deps |-> %s, unch |-> %s]" % (
                _tla_inst(state.inst), tla_string(state.status), _tla_ballot(state.ballot),
                _tla_ballot(state.vballot), _tla_cmd(state.batch, state.inst), state.seq,
                _tla_vector(state.deps), "TRUE" if state.unchanged else "FALSE"))


def message_record(message: dict, source: int, receiver: int) -> str | None:
    """A logged message as the fields of the spec's record (Describes in TraceEPaxos.tla)."""
    kind = message["type"]
    fields = [("type", tla_string(kind))]
    if "ballot" in message:
        fields.append(("ballot", _tla_ballot(message["ballot"])))
    if "inst" in message:
        fields.append(("inst", _tla_inst(message["inst"])))
    if kind in ("PreAccept", "Accept", "Commit", "PrepareOK"):
        fields.append(("cmd", _tla_cmd(message["batch"], message["inst"])))
    if "seq" in message:
        fields += [("seq", str(message["seq"])), ("deps", _tla_vector(message["deps"]))]
    if kind in ("PreAcceptOK", "AcceptOK", "PrepareOK"):
        fields.append(("from", str(source + 1)))
    if kind == "PreAcceptOK":
        fields.append(("unchanged", "TRUE" if message["unchanged"] else "FALSE"))
    if kind == "PrepareOK":
        fields += [("status", tla_string(message["status"])),
                   ("vballot", _tla_ballot(message["vballot"]))]
        fields.append(("unchanged", "TRUE" if message["unchanged"] else "FALSE"))
    if kind == "Nack":
        fields.append(("to", str(receiver + 1)))
    if kind == "Status":
        return None
    return "[" + ", ".join(f"{name} |-> {value}" for name, value in fields) + "]"


_DUMMY_STATE = "[inst |-> <<1, 1>>]"


def event_record(plan: PlannedEvent) -> str:
    event = plan.event
    action = ("Unreachable" if plan.unreachable is not None
              else "Skip" if plan.spec_action == "Skip" else plan.spec_action)
    check = plan.check and plan.state is not None and plan.unreachable is None
    if plan.mode == "collect" and action == "Skip" and event.action in RECEIVE_ACTIONS:
        action = event.action
    fields = [("k", tla_string(action)), ("mode", tla_string(plan.mode)),
              ("r", str(event.replica + 1)),
              ("check", "TRUE" if check else "FALSE"),
              ("st", _tla_state(plan.state) if plan.state is not None else _DUMMY_STATE),
              ("hasPre", "TRUE" if plan.pre is not None and plan.unreachable is None else "FALSE"),
              ("pre", _tla_state(plan.pre) if plan.pre is not None else _DUMMY_STATE)]
    message = None
    if event.message is not None and event.source is not None:
        message = message_record(event.message, event.source, event.replica)
    fields.append(("msg", message or '[type |-> "none"]'))
    inst = plan.state.inst if plan.state is not None else (0, 1)
    fields.append(("inst", _tla_inst(inst)))
    fields.append(("val", _tla_cmd(plan.state.batch if plan.state is not None else None, inst)))
    fields.append(("order", str(event.raw.get("order", 0)) if event.action == "Execute" else "0"))
    fields.append(("hasFr", "TRUE" if plan.frontier is not None else "FALSE"))
    fields.append(("fr", _tla_vector(plan.frontier or ())))
    return "[" + ", ".join(f"{name} |-> {value}" for name, value in fields) + "]"


def _groups(values: list[str], footprints: dict[str, Footprint]) -> tuple[list[list[str]], bool]:
    """KeyGroups for the spec: one group per key, the batches that touch it; a batch that
    touches several keys (or "*", or none) joins their groups into one (union-find), so
    that each batch is in exactly one group, as the spec assumes. ``exact``: no joining
    was needed, so the spec's per-key ExecutionAgrees says what it says of single keys."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    exact = True
    for value in values:
        keys = sorted(footprints[value].read | footprints[value].write)
        if len(keys) != 1 or keys[0] == ALL_KEYS:
            exact = False
        anchor = find("value:" + value)
        for key in keys:
            parent[find("key:" + key)] = anchor
    groups: dict[str, list[str]] = {}
    for value in values:
        groups.setdefault(find("value:" + value), []).append(value)
    return [sorted(g) for g in groups.values()], exact


def model_of(trace: Trace, plans: list[PlannedEvent]) -> Model:
    instances, rounds, values = {1}, {0}, set()
    for plan in plans:
        if plan.unreachable is not None:
            break
        event = plan.event
        for state in (event.state, plan.state, plan.pre):
            if state is not None:
                instances.add(state.inst[1])
                rounds.update((state.ballot[0], state.vballot[0]))
                values.add(model_value(state.batch, state.inst))
        messages = ([event.message] if event.message is not None else []) + \
            [item["message"] for item in event.sent if isinstance(item, dict)]
        for message in messages:
            if "inst" in message:
                instances.add(message["inst"][1])
            for name in ("ballot", "vballot"):
                if name in message:
                    rounds.add(message[name][0])
            if message.get("batch") is not None:
                values.add(model_value(message["batch"], message["inst"]))
        for deps in ([plan.state.deps] if plan.state is not None else []):
            instances.update(deps)
    values.discard(None)
    by_batch = footprints_of(trace)
    footprints = {value: by_batch[value.split(":", 1)[0]] for value in values}
    ordered = sorted(values)
    groups, exact = _groups(ordered, footprints)
    reads = [v for v in ordered if not footprints[v].write]
    fast = trace.meta.get("fast_quorum")
    n = trace.replicas
    if not (is_nat(fast) and 1 <= fast <= n):
        fast = n - 1 if n > 1 else 1  # the contract's default: 2F
    invariants = SAFETY_INVARIANTS if exact else tuple(
        name for name in SAFETY_INVARIANTS if name != "ExecutionAgrees")
    return Model(n, max(instances), max(rounds), fast, ordered, footprints, groups, reads,
                 exact, invariants)


_CONSTANT_LINE = "CONSTANT TraceLog"


def write_module(trace: Trace, plans: list[PlannedEvent], name: str,
                 template_text: str) -> tuple[str, Model]:
    model = model_of(trace, plans)
    records = []
    for plan in plans:
        records.append(event_record(plan))
        if plan.unreachable is not None:
            break
    conflicts = []
    for value in model.values:
        mine = model.footprints[value]
        others = [tla_string(v) for v in model.values if interferes(mine, model.footprints[v])]
        conflicts.append(f"<<{tla_string(value)}, {{{', '.join(others)}}}>>")
    header, rest = template_text.split("\n", 1)
    assert "MODULE TraceEPaxos" in header, "the template starts with its MODULE line"
    start = rest.index(_CONSTANT_LINE)
    end = rest.index("\n", start)
    definitions = "\n".join([
        f"\\* Generated by lowpaxos.conformance from {trace.path}; do not edit.",
        "TraceKeyGroups == {" + ", ".join(
            "{" + ", ".join(tla_string(v) for v in group) + "}" for group in model.groups) + "}",
        "TraceReads == {" + ", ".join(tla_string(v) for v in model.reads) + "}",
        f"TraceNoOp == {tla_string(NOOP)}",
        "TraceNoSymmetry == {}",
        "TraceConflictPairs == <<" + ", ".join(conflicts) + ">>",
        "TraceConflicts == [v \\in {p[1] : p \\in {TraceConflictPairs[k] : k \\in "
        "DOMAIN TraceConflictPairs}} |-> (CHOOSE p \\in {TraceConflictPairs[k] : k \\in "
        "DOMAIN TraceConflictPairs} : p[1] = v)[2]]",
        "TraceLog == <<",
        ",\n".join(records),
        ">>",
    ])
    text = (header.replace("MODULE TraceEPaxos", f"MODULE {name}") + "\n"
            + rest[:start] + definitions + rest[end:])
    return text, model


# Constants of the spec that only restrict what its models explore (who proposes, who
# recovers whose instances, whether refusals send Nacks): a trace is checked with the
# unrestricted value, every replica or TRUE. The set of constants is read from the
# spec being checked (check.py reads it before write_config).
_ALL_REPLICAS_CONSTANTS = ("Proposers", "Recoverers", "RecoveredLeaders", "Executing")
_TRUE_CONSTANTS = ("SendNacks",)
# The bound of a state constraint that the trace's configuration does not use.
_UNUSED_BOUNDS = ("MaxMessages",)
_spec_constants: set[str] = set(_ALL_REPLICAS_CONSTANTS)


def symmetry_definitions(spec_text: str) -> list[str]:
    from lowpaxos.conformance.tlagen import symmetry_definitions as definitions

    global _spec_constants
    block = re.search(r"^CONSTANTS?\b(.*?)^\S", spec_text, re.S | re.M)
    if block is not None:
        _spec_constants = set(re.findall(r"^\s+([A-Za-z_][A-Za-z0-9_]*)\s*,?\s*(?:\\\*.*)?$",
                                         block.group(1), re.M))
    return definitions(spec_text)


def write_config(model: Model, invariants, init: str = "TraceInit", next_: str = "TraceNext",
                 symmetries=()) -> str:
    if isinstance(invariants, str):
        invariants = [invariants]
    return "\n".join([
        "\\* Generated by lowpaxos.conformance; do not edit.",
        "CONSTANTS",
        *(f"    {name} <- TraceNoSymmetry" for name in symmetries),
        "    Replicas = {" + ", ".join(str(r) for r in range(1, model.replicas + 1)) + "}",
        "    KeyGroups <- TraceKeyGroups",
        "    Reads <- TraceReads",
        "    NoOp <- TraceNoOp",
        *(f"    {name} = {{" + ", ".join(str(r) for r in range(1, model.replicas + 1)) + "}"
          for name in _ALL_REPLICAS_CONSTANTS if name in _spec_constants),
        *(f"    {name} = TRUE" for name in _TRUE_CONSTANTS if name in _spec_constants),
        *(f"    {name} = 0" for name in _UNUSED_BOUNDS if name in _spec_constants),
        f"    MaxInstance = {model.max_instance}",
        f"    MaxRound = {model.max_round}",
        f"    FastQuorumSize = {model.fast_quorum}",
        "    Interferes <- TraceInterferes",
        "    LocalDeps <- TraceLocalDeps",
        "    LocalSeq <- TraceLocalSeq",
        f"INIT {init}",
        f"NEXT {next_}",
        *(f"INVARIANT {name}" for name in invariants or ()),
        "",
    ])


def unsafe_report(trace: Trace, state: dict, invariant: str) -> list[str]:
    """What a replayed state that violates a safety invariant holds: the values
    committed for each instance (the spec's history committedValues), those with two
    values first, then each replica's execution sequence (ids 0-based, as logged)."""
    from lowpaxos.conformance.tlavalue import show

    committed = state.get("committedValues", {})
    items = committed.items() if isinstance(committed, dict) else []

    def inst_text(inst) -> str:
        return f"[{inst[0] - 1}, {inst[1]}]"

    def value_text(value) -> str:
        deps = value["deps"]
        vector = list(deps) if isinstance(deps, tuple) else [deps[k] for k in sorted(deps)]
        cmd = value["cmd"]
        return f"{cmd} seq {value['seq']} deps {vector}"

    held = sorted(((inst, values) for inst, values in items if values),
                  key=lambda pair: (-len(pair[1]), pair[0]))
    lines = [f"  the values committed per instance (committedValues; {len(held)} instances):"]
    for inst, values in held[:8]:
        mark = "  <- two values" if len(values) > 1 else ""
        lines.append(f"    {inst_text(inst)}: " + "; ".join(sorted(value_text(v) for v in values))
                     + mark)
    executed = state.get("executed")
    if isinstance(executed, (dict, tuple)):
        for r in range(1, trace.replicas + 1):
            sequence = executed[r - 1] if isinstance(executed, tuple) else executed.get(r, ())
            shown = ", ".join(inst_text(i) for i in list(sequence)[-8:])
            lines.append(f"    replica {r - 1} executed {len(sequence)}: ...{shown}")
    if invariant == "Consistency":
        lines.append("  (Consistency: two committed interfering instances, neither in the "
                     "other's deps; values are batch:replica.instance)")
    lines.append(f"  (fast quorum {show(trace.meta.get('fast_quorum', 'default 2F'))}, "
                 f"{trace.replicas} replicas)")
    return lines


def explain(trace: Trace, plans: list[PlannedEvent], index: int, module_text: str,
            model: Model, symmetries, run) -> list[str]:
    """Why event ``index`` is no step: one more TLC run (the replay stopped just before
    it, invariant ``l < index``) gives a spec state there; the report shows the
    instance at the replica in that state beside what the line logged, and whether
    the handled message is in the network (or how the closest one of its type differs).
    ``run(module_text, config_text)`` runs TLC (check.py)."""
    from lowpaxos.conformance.check import _with_definitions, spec_variables
    from lowpaxos.conformance.tlavalue import parse_value, show

    plan = plans[index - 1]
    event = plan.event
    lines: list[str] = []
    witness = run(_with_definitions(module_text, [f"TraceStop == l < {index}"]),
                  write_config(model, "TraceStop", symmetries=symmetries))
    if not witness.error_trace:
        return ["  (no spec state before it: the witness run found none)"]
    last = witness.error_trace[-1]
    state = {name: parse_value(last[name]) for name in spec_variables(last)}
    r = event.replica + 1
    logged = plan.pre or plan.state or event.state
    if logged is not None:
        inst = (logged.inst[0] + 1, logged.inst[1])

        def of(name):
            value = state[name]
            row = value[r - 1] if isinstance(value, tuple) else value[r]
            return row[inst] if isinstance(row, dict) else None

        executed = state["executed"]
        sequence = executed[r - 1] if isinstance(executed, tuple) else executed[r]
        spec = {"status": of("status"), "ballot": of("ballot"), "vballot": of("vballot"),
                "cmd": of("cmd"), "seq": of("seq"), "deps": of("deps"),
                "unchanged": of("unchanged"), "executed": inst in set(sequence)}
        lines.append(f"  spec state before it, replica {event.replica}, instance "
                     f"{list(logged.inst)} (spec <<{inst[0]}, {inst[1]}>>): "
                     + ", ".join(f"{k} {show(v)}" for k, v in spec.items()))
        after = plan.state if plan.check and plan.state is not None else None
        if plan.pre is not None:
            lines.append(f"  the line's own state (before its quorum takes effect): "
                         f"{plan.pre.describe()}")
        if after is not None:
            lines.append(f"  the state the step must reach: {after.describe()}")
    if event.message is not None and event.source is not None:
        wanted = parse_value(message_record(event.message, event.source, event.replica) or "[]")
        same_type = [m for m in state["msgs"] if m.get("type") == wanted.get("type")]

        def differences(message) -> list[str]:
            return [f"{k}: logged {show(v)}, network {show(message.get(k))}"
                    for k, v in wanted.items() if message.get(k) != v]

        ranked = sorted(same_type, key=lambda m: len(differences(m)))
        if ranked and not differences(ranked[0]):
            lines.append(f"  the handled message is in the network (mode {plan.mode}): the spec's "
                         f"{event.action} from that state does not reach the logged state")
        else:
            lines.append(f"  the handled message is not in the network: {show(wanted)}")
            if ranked:
                lines.append("    closest network message of that type differs in: "
                             + "; ".join(differences(ranked[0])))
    elif event.action == "Commit":
        lines.append("  (a Commit line is no spec step: it repeats the state its handler's "
                     "step reached, or the step before it did not commit)")
    lines.append(f"  {len(state['msgs'])} messages in the network")
    return lines
