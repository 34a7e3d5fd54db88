"""VR Revisited's trace format and its mapping onto spec/VR.tla.

The VR core (impl/lowpaxos/protocols/vr/core.py, ``_trace``) logs one event per
action of spec/VR.tla, with the replica's state in the spec's variables
(``spec_state``: view, status, last_normal_view, op, commit, log, log_start).
The tables here drive the generic line validation of ``lowpaxos.conformance.trace``;
``plan_steps``, ``write_module`` and ``write_config`` turn the validated events
into a copy of conformance/TraceVR.tla (docs/conformance.md, "VR").

The spec is more abstract than the core in three ways that the mapping follows
rather than hides (spec/VR.tla's header): messages carry whole logs where the
core sends a suffix, so a message is matched on its header and the length of the
log it carries; checkpoints and log cuts are not modelled, so a trace must be
taken with them off (a line with a cut, or a snapshot event, is rejected before
the replay, with that reason); a receive that only collects changes no variable.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lowpaxos.conformance.trace import Event, Trace, check_value, fail, is_nat
from lowpaxos.conformance.tlagen import tla_set, tla_string

RECEIVE_ACTIONS = {
    "HandlePrepare": "Prepare",
    "HandlePrepareOK": "PrepareOK",
    "HandleCommit": "Commit",
    "HandleStartViewChange": "StartViewChange",
    "HandleDoViewChange": "DoViewChange",
    "HandleStartView": "StartView",
    "HandleGetState": "GetState",
    "HandleNewState": "NewState",
    "HandleRecovery": "Recovery",
    "HandleRecoveryResponse": "RecoveryResponse",
    "HandleSnapshotRequest": "SnapshotRequest",
    "HandleSnapshotChunk": "SnapshotChunk",
}
LOCAL_ACTIONS = frozenset({
    "Propose", "RetryPrepare", "SendCommit", "StartViewChange", "StartView",
    "RequestState", "StartRecovery", "RequestSnapshot", "InstallSnapshot", "TruncateLog",
})
DRIVER_ACTIONS = frozenset({"Crash", "Restart"})
SLOT_ACTIONS = frozenset({"Propose", "RetryPrepare", "TruncateLog"})
TARGET_ACTIONS = frozenset({"SendCommit", "RequestState", "RequestSnapshot"})
STATUSES = frozenset({"normal", "view-change", "recovering"})
# Core events of checkpoints, log cuts and the chunked row transfer: VR.tla keeps
# logs whole, so a trace for conformance is taken with them off.
UNMODELLED = frozenset({"TruncateLog", "RequestSnapshot", "HandleSnapshotRequest",
                        "HandleSnapshotChunk", "InstallSnapshot"})

# The safety invariants of spec/VR.tla checked in every replayed state.
SAFETY_INVARIANTS = ("CommittedOpsAgree", "CommittedPrefixesAgree", "CommittedSurvivesViewChange")

_ENTRIES = "op_entries"
MESSAGE_FIELDS = {
    "Prepare": {"view": "nat", "op": "slot", "value": "batch", "commit": "nat"},
    "PrepareOK": {"view": "nat", "op": "nat", "commit": "nat"},
    "Commit": {"view": "nat", "commit": "nat", "truncate": "nat"},
    "StartViewChange": {"view": "nat"},
    "DoViewChange": {"view": "nat", "last_normal_view": "nat", "op": "nat", "commit": "nat",
                     "log_start": "nat", "entries": "list"},
    "StartView": {"view": "nat", "op": "nat", "commit": "nat", "from_op": "nat",
                  "entries": "list"},
    "GetState": {"view": "nat", "from_op": "nat"},
    "NewState": {"view": "nat", "log_start": "nat", "from_op": "nat", "op": "nat",
                 "commit": "nat", "committed_only": "bool", "entries": "list"},
    "Recovery": {"nonce": "int", "commit": "nat"},
    "RecoveryResponse": {"view": "nat", "nonce": "int", "primary": "bool", "log_start": "nat",
                         "from_op": "nat", "op": "nat", "commit": "nat", "entries": "list"},
    "SnapshotRequest": {"view": "nat", "image_index": "nat", "cursor": "position",
                        "credits": "nat"},
    "SnapshotChunk": {"view": "nat", "image_index": "nat", "digest": "int",
                      "cursor": "position", "next_cursor": "position", "rows": "nat"},
}
# "list" is not a kind of trace.check_value: a list of [op, batch id] pairs.
for _fields in MESSAGE_FIELDS.values():
    for _name, _kind in list(_fields.items()):
        if _kind == "list":
            _fields[_name] = "position"  # a list (checked as one); its items below


@dataclass(frozen=True, slots=True)
class State:
    """A replica's state in VR.tla's variables (core.py spec_state)."""

    view: int
    status: str
    last_normal_view: int
    op: int
    commit: int
    log: dict[int, str]
    log_start: int


def parse_state(path: str, line: int, value: object) -> State:
    if not isinstance(value, dict):
        fail(path, line, "state must be an object")
    for name in ("view", "status", "last_normal_view", "op", "commit", "log", "log_start"):
        if name not in value:
            fail(path, line, f"state lacks {name!r}")
    if not (isinstance(value["status"], str) and value["status"] in STATUSES):
        fail(path, line, f"state.status must be one of {sorted(STATUSES)}, got {value['status']!r}")
    for name in ("view", "last_normal_view", "op", "commit", "log_start"):
        if not is_nat(value[name]):
            fail(path, line, f"state.{name} must be a natural number, got {value[name]!r}")
    if not isinstance(value["log"], dict):
        fail(path, line, "state.log must be an object {op: batch id}")
    log: dict[int, str] = {}
    for key, item in value["log"].items():
        if not (isinstance(key, str) and key.isascii() and key.isdigit() and len(key) <= 10
                and 1 <= int(key) <= value["op"]):
            fail(path, line, f"state.log key {key!r} is not an op-number in 1..{value['op']}")
        check_value(path, line, f"state.log[{key}]", "batch", item)
        log[int(key)] = item
    return State(value["view"], value["status"], value["last_normal_view"], value["op"],
                 value["commit"], log, value["log_start"])


# ---- the mapping onto TraceVR.tla -----------------------------------------------------

EXPLAIN = False  # check.py's field-by-field divergence probe is LowPaxos's; VR gets the headline


@dataclass
class PlannedEvent:
    event: Event
    spec_action: str  # the spec action the step takes ("Skip": none; "Acks": MAPPED sends)
    check: bool = True
    unreachable: str | None = None
    acks: list[tuple[int, int]] = field(default_factory=list)
    state_event: Event | None = None
    pre_event: Event | None = None
    recovers: bool = False  # a HandleRecoveryResponse whose step recovered (see plan_steps)


@dataclass
class Model:
    replicas: int
    max_view: int
    max_op: int
    values: list[str]
    diskless: list[int]
    max_recoveries: int
    safety_invariants: tuple[str, ...] = SAFETY_INVARIANTS


def _sent_messages(event: Event) -> list[dict]:
    return [item["message"] for item in event.sent if isinstance(item, dict)]


def _is_id(value: object) -> bool:
    """A message id or counter as the drivers write them (whole numbers); anything else
    in a hand-made file links no send to a receive (never a crash on a dict key)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _send_key(item) -> tuple | None:
    """The key of one runtime send ``[target, sender, counter]``: (sender, counter)."""
    if isinstance(item, list) and len(item) == 3 and _is_id(item[1]) and _is_id(item[2]):
        return ("runtime", item[1], item[2])
    return None


def _received_keys(event: Event) -> list[tuple]:
    received = event.raw.get("received")
    if isinstance(received, dict) and _is_id(received.get("id")):
        return [("sim", received["id"])]
    if isinstance(received, list) and len(received) == 2 and all(_is_id(x) for x in received):
        return [("runtime", received[0], received[1])]
    return []


def _acks_by_sender_event(events: list[Event]) -> dict[int, list[tuple[int, int]]]:
    """For each event whose step sent a PrepareOK that some replica handled, the
    (view, op) of those PrepareOKs: found from the receive's id back to the send."""
    sender_of: dict[tuple, int] = {}
    for index, event in enumerate(events):
        for item in event.raw.get("sent", []) or []:
            if isinstance(item, dict):
                for message_id in item.get("ids", []) or []:
                    if _is_id(message_id):
                        sender_of[("sim", message_id)] = index
            else:
                key = _send_key(item)
                if key is not None:
                    sender_of[key] = index
    acks: dict[int, list[tuple[int, int]]] = {}
    for event in events:
        if event.action != "HandlePrepareOK" or event.message is None:
            continue
        for key in _received_keys(event):
            index = sender_of.get(key)
            if index is not None:
                pair = (event.message["view"], event.message["op"])
                if pair not in acks.setdefault(index, []):
                    acks[index].append(pair)
    return acks


def plan_steps(trace: Trace) -> list[PlannedEvent]:
    """One planned step per event, plus an "Acks" step (MAPPED in TraceVR.tla) after an
    event whose step sent a PrepareOK that the primary handled (found through the ids of
    the send and the receive, simulator or runtime). Synthetic events are put into
    trace.events too, with their origin's line, so that depth and events agree."""
    acks_of = _acks_by_sender_event(trace.events)
    events: list[Event] = []
    plans: list[PlannedEvent] = []
    for index, event in enumerate(trace.events):
        events.append(event)
        plan = PlannedEvent(event, event.action, state_event=event)
        state = event.state
        if event.action == "Crash":
            plan.spec_action, plan.check = "Skip", False
        elif event.action == "Restart":
            plan.spec_action = "Crash"  # VR.tla's Crash, or no change (TraceVR.tla)
            plan.check = state is not None
        if event.action == "HandleRecoveryResponse" and event.state is not None \
                and event.state.status == "recovering" and index in acks_of:
            # The core logs this event before it recovers (core.handle_recovery_response
            # calls _trace first), so the logged state is the one before the step. The
            # step is the spec's recovery (it sends PrepareOK only then); the replica's
            # next event pins the recovered state. Reported as a core tracing bug.
            plan.spec_action, plan.check = "HandleRecoveryResponse", False
            plan.recovers = True
        if event.action in UNMODELLED:
            plan.unreachable = (f"{event.action} is a checkpoint, log cut or row transfer, which "
                                f"VR.tla does not model: take VR traces with checkpoints off "
                                f"(snapshot_slots above the run's op count)")
        elif state is not None and (state.log_start != 0 or len(state.log) != state.op):
            plan.unreachable = (f"the logged log starts after op {state.log_start} or lacks ops "
                                f"({len(state.log)} held of {state.op}): VR.tla keeps whole logs; "
                                f"take VR traces with checkpoints off")
        plans.append(plan)
        if index in acks_of and plan.unreachable is None:
            synthetic = Event(line=event.line, action="Acks", replica=event.replica, state=None,
                              raw={"action": "Acks", "synthetic": True})
            events.append(synthetic)
            plans.append(PlannedEvent(synthetic, "Acks", check=False, acks=acks_of[index],
                                      state_event=synthetic))
    trace.events[:] = events
    return plans


def _tla_log(log: dict[int, str], length: int) -> str:
    return "<<" + ", ".join(tla_string(log.get(op, "?")) for op in range(1, length + 1)) + ">>"


def _message_record(message: dict, source: int, receiver: int) -> str:
    """The header of a logged message, in VR.tla's fields (Describes in TraceVR.tla)."""
    kind = message["type"]
    fields = [("type", tla_string(kind)), ("from", str(source + 1))]
    if kind == "Prepare":
        fields += [("view", str(message["view"])), ("op", str(message["op"])),
                   ("val", tla_string(message["value"]))]
    elif kind == "PrepareOK":
        fields += [("view", str(message["view"])), ("op", str(message["op"]))]
    elif kind == "Commit":
        fields += [("view", str(message["view"]))]
    elif kind == "StartViewChange":
        fields += [("view", str(message["view"]))]
    elif kind == "DoViewChange":
        fields += [("view", str(message["view"])),
                   ("last_normal_view", str(message["last_normal_view"])),
                   ("commit", str(message["commit"])), ("len", str(message["op"]))]
    elif kind == "StartView":
        fields += [("view", str(message["view"])), ("commit", str(message["commit"])),
                   ("len", str(message["op"]))]
    elif kind == "GetState":
        fields += [("view", str(message["view"])), ("op", str(message["from_op"]))]
    elif kind == "NewState":
        fields += [("view", str(message["view"])), ("after", str(message["from_op"])),
                   ("commit", str(message["commit"])), ("to", str(receiver + 1)),
                   ("len", str(message["op"]))]
    elif kind == "RecoveryResponse":
        fields += [("view", str(message["view"])), ("primary", "TRUE" if message["primary"]
                                                    else "FALSE"), ("to", str(receiver + 1))]
        if message["primary"]:
            fields += [("commit", str(message["commit"])), ("len", str(message["op"]))]
    return "[" + ", ".join(f"{name} |-> {value}" for name, value in fields) + "]"


def event_record(plan: PlannedEvent) -> str:
    event = plan.event
    action = ("Unreachable" if plan.unreachable is not None
              else "Skip" if plan.spec_action == "Skip"
              else "Acks" if plan.spec_action == "Acks"
              else "Recovered" if plan.recovers else event.action)
    fields = [("k", tla_string(action)), ("r", str(event.replica + 1)),
              ("check", "TRUE" if plan.check and plan.unreachable is None else "FALSE")]
    state = event.state
    if state is not None and plan.check:
        fields.append(("st", "[view |-> %d, status |-> %s, lnv |-> %d, commit |-> %d, log |-> %s]"
                       % (state.view, tla_string(state.status), state.last_normal_view,
                          state.commit, _tla_log(state.log, state.op))))
    if event.message is not None and event.source is not None:
        fields.append(("msg", _message_record(event.message, event.source, event.replica)))
    if event.action == "Propose" and state is not None:
        fields.append(("val", tla_string(state.log.get(event.slot, "?"))))
    if event.slot is not None:
        fields.append(("slot", str(event.slot)))
    if plan.acks:
        fields.append(("acks", "<<" + ", ".join(f"<<{v}, {n}>>" for v, n in plan.acks) + ">>"))
    return "[" + ", ".join(f"{name} |-> {value}" for name, value in fields) + "]"


def model_of(trace: Trace, plans: list[PlannedEvent]) -> Model:
    views, ops, values = {0}, {1}, set()
    diskless: set[int] = set()
    recoveries: dict[int, int] = {}
    for plan in plans:
        event = plan.event
        if plan.unreachable is not None:
            break
        state = event.state
        if state is not None:
            views.add(state.view)
            ops.add(state.op)
            values.update(state.log.values())
        if event.action == "Restart" and state is not None and state.status == "recovering":
            diskless.add(event.replica)
            recoveries[event.replica] = recoveries.get(event.replica, 0) + 1
    if trace.meta.get("disk") == "none":
        diskless.update(range(trace.replicas))
    return Model(trace.replicas, max(views), max(ops), sorted(values), sorted(diskless),
                 max(recoveries.values(), default=0))


_CONSTANT_LINE = "CONSTANT TraceLog"


def write_module(trace: Trace, plans: list[PlannedEvent], name: str,
                 template_text: str) -> tuple[str, Model]:
    model = model_of(trace, plans)
    records = []
    for plan in plans:
        records.append(event_record(plan))
        if plan.unreachable is not None:
            break
    header, rest = template_text.split("\n", 1)
    assert "MODULE TraceVR" in header, "the template starts with its MODULE line"
    start = rest.index(_CONSTANT_LINE)
    end = rest.index("\n", start)
    definitions = "\n".join([
        f"\\* Generated by lowpaxos.conformance from {trace.path}; do not edit.",
        "TraceValues == " + tla_set(tla_string(v) for v in model.values),
        'TraceNoOp == "noop-not-a-batch"',
        "TraceNoSymmetry == {}",
        "TraceLog == <<",
        ",\n".join(records),
        ">>",
    ])
    text = (header.replace("MODULE TraceVR", f"MODULE {name}") + "\n"
            + rest[:start] + definitions + rest[end:])
    return text, model


def symmetry_definitions(spec_text: str) -> list[str]:
    from lowpaxos.conformance.tlagen import symmetry_definitions as definitions

    return definitions(spec_text)


def write_config(model: Model, invariants, init: str = "TraceInit", next_: str = "TraceNext",
                 symmetries=()) -> str:
    if isinstance(invariants, str):
        invariants = [invariants]
    return "\n".join([
        "\\* Generated by lowpaxos.conformance; do not edit.",
        "CONSTANTS",
        *(f"    {name} <- TraceNoSymmetry" for name in symmetries),
        "    Replicas = " + tla_set(str(r) for r in range(1, model.replicas + 1)),
        "    Values <- TraceValues",
        "    NoOp <- TraceNoOp",
        f"    MaxView = {model.max_view}",
        f"    MaxOp = {model.max_op}",
        "    MaxMessages = 0",
        "    DisklessReplicas = " + tla_set(str(r + 1) for r in model.diskless),
        f"    MaxRecoveries = {model.max_recoveries}",
        "    LaggingCommitHint = TRUE",
        f"INIT {init}",
        f"NEXT {next_}",
        *(f"INVARIANT {name}" for name in invariants or ()),
        "",
    ])
