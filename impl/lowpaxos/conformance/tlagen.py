"""From a validated trace to TLA+: the events as one sequence of records, plus a
configuration, for conformance/TraceLowPaxos.tla to replay with TLC.

Value mapping (the spec's conventions, spec/LowPaxos.tla):

* replica ids: Python's 0..N-1 become 1..N;
* ballots: ``[round, replica]`` becomes ``<<round, replica + 1>>``, and the
  Python zero ballot ``(0, -1)`` becomes the spec's ``<<0, 0>>``;
* batch ids: a batch is one value to consensus, so a batch id becomes a TLA+
  string; the empty batch ``"noop"`` is the constant ``NoOp``, set to the string
  "noop" (a model value would not sort against the strings in TLC's sets);
* messages: the fields the spec's message records have, named as there.

Each event becomes a record with the same fields (TLC compares records of one
sequence only when it must, but keeping one shape avoids surprises):

``line`` (in the file), ``k`` (the spec action to take, or "Skip"), ``r``,
``check`` (compare the post-state?), ``role``, ``promised``, ``commit``,
``logStart`` (the spec's cut after the step), ``cut`` (the logged cut: log slots
at or below it are not compared), ``delta`` (the log slots above ``cut`` that
changed, slot :> entry), ``msg`` (the message handled, as a spec record, or
``[type |-> "none"]``), ``slot`` (RetryAccept; TruncateLog: the new cut), ``val``
(Propose: the value put in the slot), ``pin`` (the choice the logged sends show:
the last slot of a catch-up reply, the image index of chunks or of a request for
them; 0 when none is logged), and ``sends``
(messages the event put in the network; the simulator logs them, the runtime
does not). An Accept's recipients are a set in the spec; where the trace knows
only some of them, the record has ``targets`` (each must be a recipient)
instead of ``to``.

A log cut (TruncateLog) happens inside the step of a handler whose commit it
follows, and the core logs the handler's event with the state at the end of the
step, after the cut. The spec takes the handler and TruncateLog as two steps, so
the handler's line is checked against the cut the replica had before (``logStart``)
and its log only above the logged cut (``cut``); the TruncateLog line that follows
checks the cut itself.

A state transfer is checked at the spec's level of detail: which image index each
SnapshotChunk and SnapshotRequest carries (rows, cursors and digests are not in the
spec), that chunks arrive only from a replica that served one, and that
InstallSnapshot takes the index of a chunk received, above the commit index.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from lowpaxos.conformance.lowpaxos_format import Entry
from lowpaxos.conformance.trace import Event, Trace

NOOP_BATCH = "noop"

# Trace action -> the spec action that explains it. Restart is the spec's Crash
# (the spec folds the restart into it); the simulator's Crash event is the
# moment the core is lost, which no spec variable shows, so it is a Skip.
SPEC_ACTION = {
    "StartElection": "StartElection",
    "HandlePrepare": "HandlePrepare",
    "HandlePromise": "HandlePromise",
    "HandleReject": "HandleReject",
    "Propose": "Propose",
    "RetryAccept": "RetryAccept",
    "HandleAccept": "HandleAccept",
    "HandleAccepted": "HandleAccepted",
    "SendHeartbeat": "SendHeartbeat",
    "HandleHeartbeat": "HandleHeartbeat",
    "RequestCatchup": "RequestCatchup",
    "HandleCatchupRequest": "HandleCatchupRequest",
    "HandleCatchupReply": "HandleCatchupReply",
    "TruncateLog": "TruncateLog",
    "RequestSnapshot": "RequestSnapshot",
    "HandleSnapshotRequest": "HandleSnapshotRequest",
    "HandleSnapshotChunk": "HandleSnapshotChunk",
    "InstallSnapshot": "InstallSnapshot",
    "StepDown": "StepDown",
    "Restart": "Crash",
    "Crash": "Skip",
    "BecomeLeader": "Skip",  # folded into the HandlePromise before it (see plan_steps)
}


def tla_string(text: str) -> str:
    assert all(32 <= ord(c) < 127 for c in text), "trace strings are plain ASCII"
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def tla_ballot(ballot) -> str:
    round_, replica = ballot
    return f"<<{round_}, {replica + 1}>>"


def tla_value(batch: str) -> str:
    return "NoOp" if batch == NOOP_BATCH else tla_string(batch)


def tla_entry(entry: Entry) -> str:
    return f"[bal |-> {tla_ballot(entry.ballot)}, val |-> {tla_value(entry.batch)}]"


def tla_set(items) -> str:
    return "{" + ", ".join(items) + "}"


def tla_function(pairs: list[tuple[str, str]]) -> str:
    """A function as FcnOf(<<key, value>> pairs) (TraceLowPaxos.tla): a chain of
    ``k :> v @@ ...`` would be a nested expression as deep as it is long, and TLC
    evaluates it recursively (a stack overflow for a catch-up of a few hundred slots)."""
    return "FcnOf(<< " + ", ".join(f"<<{k}, {v}>>" for k, v in pairs) + " >>)"


def tla_record(fields: list[tuple[str, str]]) -> str:
    return "[" + ", ".join(f"{name} |-> {value}" for name, value in fields) + "]"


def slot_entries(entries: list) -> str:
    return tla_set(
        tla_record([("slot", str(slot)), ("bal", tla_ballot(ballot)), ("val", tla_value(batch))])
        for slot, ballot, batch in entries
    )


def spec_message(message: dict, sender: int, receiver: int | None,
                 targets: set[int] | None = None, exact_targets: bool = False) -> str | None:
    """A logged message as a partial spec record (None: a message the spec does not have).
    ``receiver`` goes into ``to`` for point-to-point types; an Accept's ``to`` is a set,
    so its receivers go into ``targets`` (each must be in ``to``), or are ``to`` itself when
``exact_targets`` (a Propose's thrifty targets, all logged)."""
    kind = message["type"]
    base = [("type", tla_string(kind)), ("from", str(sender + 1))]
    to = [("to", str(receiver + 1))] if receiver is not None else []
    ballot = ("bal", tla_ballot(message["ballot"]))
    if kind == "Prepare":
        fields = base + [ballot, ("commitIndex", str(message["commit_index"]))]
    elif kind == "Promise":
        fields = base + to + [ballot, ("entries", slot_entries(message["entries"])),
                              ("commitIndex", str(message["commit_index"]))]
    elif kind == "Reject":
        fields = base + to + [ballot, ("lagging", "TRUE" if message["lagging"] else "FALSE")]
    elif kind == "Accept":
        fields = base + [ballot, ("slot", str(message["slot"])),
                         ("val", tla_value(message["value"])),
                         ("commitIndex", str(message["commit_index"]))]
        receivers = tla_set(str(t + 1) for t in sorted(targets or set()))
        if exact_targets:
            fields.insert(2, ("to", receivers))
        else:
            fields.append(("targets", receivers))
    elif kind == "Accepted":
        fields = base + to + [ballot, ("slot", str(message["slot"]))]
    elif kind == "Heartbeat":
        fields = base + [ballot, ("commitIndex", str(message["commit_index"]))]
    elif kind == "CatchupRequest":
        fields = base + [("commitIndex", str(message["from_slot"] - 1))]
    elif kind == "CatchupReply":
        fields = base + to + [("entries", slot_entries(message["entries"])),
                              ("commitIndex", str(message["commit_index"]))]
    elif kind == "SnapshotChunk":
        fields = base + to + [("index", str(message["image_index"]))]
    elif kind == "SnapshotRequest":
        # Like a CatchupRequest, any replica may serve it in the spec: no ``to``.
        fields = base + [("index", str(message["image_index"]))]
    else:  # HeartbeatReply is not in the spec
        return None
    return tla_record(fields)


@dataclass(slots=True)
class PlannedEvent:
    """One trace line as the spec replays it."""

    event: Event
    spec_action: str
    check: bool
    state_event: Event  # whose logged state the step must reach
    sends: list[str]  # partial spec records
    log_start: int = 0  # the spec's cut after the step (see the module docstring)
    pin: int = 0  # the choice the step's logged sends show (0: none logged), see pin_of
    # A HandlePromise whose step ends in BecomeLeader: its own line logs the state
    # before the election, which is compared with the spec state before the step.
    pre_event: Event | None = None
    # The largest slot number the record holds (state, message, sends) and where.
    slot_max: tuple[int, str] = (0, "")
    # Why no spec step can explain this line, when that is clear before TLC runs (a
    # slot no Propose made, a BecomeLeader out of its place); the replay stops here.
    unreachable: str | None = None


def _owner(events: list[Event], message: dict, target: int) -> Event | None:
    """The event of a step that sent ``message`` (see the module docstring)."""
    kind = message["type"]
    wanted: tuple[str, ...]
    if kind == "Prepare":
        wanted = ("StartElection",)
    elif kind == "Promise":
        wanted = ("HandlePrepare",)
    elif kind == "Reject":
        wanted = ("HandlePrepare", "HandleAccept", "HandleHeartbeat")
    elif kind == "Accepted":
        wanted = ("HandleAccept",)
    elif kind == "CatchupReply":
        wanted = ("HandleCatchupRequest",)
    elif kind == "SnapshotChunk":
        wanted = ("HandleCatchupRequest", "HandleSnapshotRequest")
    elif kind == "SnapshotRequest":
        return next((e for e in events if e.action == "RequestSnapshot" and e.target == target),
                    None)
    elif kind == "Heartbeat":
        return next((e for e in events if e.action == "SendHeartbeat" and e.target == target), None)
    elif kind == "CatchupRequest":
        return next((e for e in events if e.action == "RequestCatchup" and e.target == target), None)
    elif kind == "Accept":
        slot = message["slot"]
        for action in ("Propose", "RetryAccept"):
            found = next((e for e in events if e.action == action and e.slot == slot), None)
            if found is not None:
                return found
        wanted = ("BecomeLeader",)
    else:
        return None
    return next((e for e in events if e.action in wanted), None)


def renumber_rounds(trace: Trace) -> None:
    """Give the rounds of the trace's ballots the numbers 1..K in their order (0 stays 0),
    so that the model's rounds are as many as the trace's distinct rounds, whatever
    numbers the trace holds. spec/LowPaxos.tla only compares rounds (Greater) and
    picks a candidate's round among 1..MaxRound, so renumbering in order maps the
    spec's behaviours onto each other. ``trace.rounds`` keeps the renumbering."""
    seen: set[int] = set()

    def note(ballot) -> None:
        seen.add(ballot[0])

    def messages(event: Event):
        if event.message is not None:
            yield event.message
        for send in event.sent:
            yield send["message"]

    for event in trace.events:
        if event.state is not None:
            note(event.state.promised)
            for entry in event.state.log.values():
                note(entry.ballot)
        for message in messages(event):
            note(message["ballot"])
            for _slot, ballot, _batch in message.get("entries", ()):
                note(ballot)
    ordered = sorted(seen - {0})
    trace.rounds = {0: 0} | {round_: index + 1 for index, round_ in enumerate(ordered)}
    if all(trace.rounds[r] == r for r in ordered):
        return  # already 1..K: nothing to rewrite

    def ballot(value):
        return [trace.rounds[value[0]], value[1]]

    def message_copy(message: dict) -> dict:
        copy = dict(message, ballot=ballot(message["ballot"]))
        if "entries" in message:
            copy["entries"] = [[slot, ballot(b), batch] for slot, b, batch in message["entries"]]
        return copy

    for event in trace.events:
        if event.state is not None:
            state = event.state
            event.state = dataclasses.replace(
                state, promised=tuple(ballot(state.promised)),
                log={slot: Entry(tuple(ballot(e.ballot)), e.batch) for slot, e in state.log.items()})
        if event.message is not None:
            event.message = message_copy(event.message)
        event.sent = [dict(send, message=message_copy(send["message"])) for send in event.sent]


# Message fields that hold a slot number or a commit point (the model's Slots).
_SLOT_FIELDS = ("slot", "commit_index", "from_slot", "image_index")


def _slot_numbers(event: Event):
    """(number, where) for every slot number or commit point the event holds itself."""
    state = event.state
    if state is not None:
        yield state.commit_index, "state.commit_index"
        yield state.log_start, "state.log_start"
        for slot in state.log:
            yield slot, "a slot of state.log"
    if event.slot is not None:
        yield event.slot, "slot"
    if event.message is not None:
        yield from _message_slots(event.message, "message")


def _message_slots(message: dict, what: str):
    for name in _SLOT_FIELDS:
        if name in message:
            yield message[name], f"{what}.{name}"
    for slot, _ballot, _batch in message.get("entries", ()):
        yield slot, f"a slot of {what}.entries"


def plan_steps(trace: Trace) -> list[PlannedEvent]:
    """Decide, for every line, the spec action, which state to check and which sends."""
    if not trace.rounds:
        renumber_rounds(trace)
    events = trace.events
    plans = [PlannedEvent(e, SPEC_ACTION[e.action], e.state is not None, e, [])
             for e in events]
    for index, event in enumerate(events):
        if event.action == "BecomeLeader":
            previous = events[index - 1] if index > 0 else None
            if (previous is None or previous.action != "HandlePromise"
                    or previous.replica != event.replica
                    or (previous.step is not None and previous.step != event.step)):
                # The quorum (|Q1| >= 2, trace.load_trace) is completed by a promise, so
                # an election that does not follow its replica's HandlePromise in the
                # same step is out of order: causality breaks here.
                plans[index].unreachable = (
                    f"BecomeLeader is the end of the spec's HandlePromise step (|Q1| = "
                    f"{trace.q1}): it must come right after the HandlePromise of replica "
                    f"{event.replica} that completed the quorum, in the same step; "
                    + ("it is the first event" if previous is None else
                       f"the line before is {previous.action} at replica {previous.replica}"
                       + (f" in step {previous.step}, this is step {event.step}"
                          if previous.step != event.step else "")))
                continue
            # The spec's HandlePromise becomes leader in the same step: its line's step
            # reaches the BecomeLeader line's state, and the HandlePromise line's own
            # state (before the election) is compared with the state before the step.
            # The BecomeLeader line, a stutter, is compared with the state after it.
            plans[index - 1].state_event = event
            plans[index - 1].pre_event = events[index - 1]
    _plan_cuts(events, plans)
    # Sends, from the simulator's step records: attach each to the event that made it.
    by_step: dict[int, list[int]] = {}
    for index, event in enumerate(events):
        if event.step is not None:
            by_step.setdefault(event.step, []).append(index)
    for indices in by_step.values():
        step_events = [events[i] for i in indices]
        sends = [s for i in indices for s in events[i].sent]
        grouped: dict[tuple[int, str], list[dict]] = {}
        for send in sends:
            owner = _owner(step_events, send["message"], send["target"])
            if owner is None:
                continue
            owner_index = indices[step_events.index(owner)]
            if owner.action == "BecomeLeader":
                owner_index -= 1  # folded into the HandlePromise
            key = (owner_index, repr(sorted((k, repr(v)) for k, v in send["message"].items())))
            grouped.setdefault(key, []).append(send)
        for (owner_index, _), group in sorted(grouped.items()):
            first = group[0]
            owner = events[owner_index]
            plans[owner_index].pin = max(plans[owner_index].pin, pin_of(first["message"]))
            targets = {s["target"] for s in group}
            exact = owner.action == "Propose"
            record = spec_message(first["message"], owner.replica,
                                  first["target"] if len(group) == 1 else None,
                                  targets, exact)
            if record is not None:
                if first["message"]["type"] in ("Prepare", "Heartbeat", "CatchupRequest",
                                                "SnapshotRequest", "Accept"):
                    plans[owner_index].sends.append(record)
                else:
                    for send in group:
                        plans[owner_index].sends.append(
                            spec_message(send["message"], owner.replica, send["target"]))
            for send in group:
                found = max(_message_slots(send["message"], "a sent message"), default=(0, ""))
                plans[owner_index].slot_max = max(plans[owner_index].slot_max, found)
    for plan in plans:
        plan.slot_max = max(plan.slot_max, max(_slot_numbers(plan.event), default=(0, "")))
    _mark_unreachable_slots(plans)
    return plans


def slot_bound(plans: list[PlannedEvent]) -> int:
    """MaxSlot for this trace: one above the largest slot the trace holds, but never
    above the number of Propose events plus one. A spec behaviour starts with empty
    logs, and only Propose makes a new slot (one above the leader's top slot, which
    BecomeLeader takes from the slots reported to it), so no spec state holds a slot
    above the number of Propose steps taken: a larger number in a trace cannot
    conform, and must not size the model."""
    proposes = sum(1 for plan in plans if plan.event.action == "Propose")
    largest = max((plan.slot_max[0] for plan in plans), default=0)
    return min(largest, proposes) + 1


def _mark_unreachable_slots(plans: list[PlannedEvent]) -> None:
    bound = slot_bound(plans)
    proposes = bound - 1
    for plan in plans:
        number, where = plan.slot_max
        if number > bound and plan.unreachable is None:
            plan.unreachable = (
                f"{where} is {number}, and no spec state has that slot: the trace has "
                f"{proposes} Propose event(s) in all, and each makes at most one new slot")
            return


def pin_of(message: dict) -> int:
    """The choice of the spec step that a sent message shows: the last slot of a
    catch-up reply (the spec's n), the image index of a chunk or of a request for
    chunks; 0 for other messages."""
    kind = message["type"]
    if kind == "CatchupReply":
        return max((slot for slot, _ballot, _batch in message["entries"]), default=0)
    if kind in ("SnapshotChunk", "SnapshotRequest"):
        return message["image_index"]
    return 0


def _plan_cuts(events: list[Event], plans: list[PlannedEvent]) -> None:
    """The spec's cut after each line: a TruncateLog line's slot; for the line of the
    handler whose step the cut came in (the TruncateLog line is the replica's next, in
    the same step) the cut it had before; else the logged one."""
    cut: dict[int, int] = {}  # replica -> the spec's cut so far (durable: kept over crashes)
    following: dict[int, Event | None] = {}
    next_of_replica: list[Event | None] = [None] * len(events)
    for index in range(len(events) - 1, -1, -1):
        event = events[index]
        next_of_replica[index] = following.get(event.replica)
        following[event.replica] = event
    for index, event in enumerate(events):
        plan = plans[index]
        state = plan.state_event.state
        before = cut.get(event.replica, 0)
        after = next_of_replica[index]
        cut_follows = (after is not None and after.action == "TruncateLog"
                       and (after.step is None or after.step == event.step))
        if event.action == "TruncateLog":
            plan.log_start = event.slot
        elif state is None or cut_follows:
            plan.log_start = before
        else:
            plan.log_start = state.log_start
        cut[event.replica] = plan.log_start


def _log_delta(log: dict[int, Entry], previous_log: dict[int, Entry], cut: int) -> str:
    """The log slots above ``cut`` that changed since the replica's previous line."""
    changed = sorted(s for s in set(log) | set(previous_log) if s > cut)
    delta = []
    for slot in changed:
        now = log.get(slot)
        if now != previous_log.get(slot):
            delta.append((str(slot), tla_entry(now) if now is not None else "NoEntry"))
    return tla_function(delta)


UNREACHABLE_RECORD = '[k |-> "Unreachable"]'


def event_record(plan: PlannedEvent, previous_log: dict[int, Entry]) -> str:
    """The line as a TraceLog record; ``previous_log`` is the replica's log as its
    previous checked line logged it."""
    event = plan.event
    if plan.unreachable is not None:
        # TraceNext has no step for it (the replay stops here); it holds none of the
        # line's numbers, which may be far outside the model.
        return UNREACHABLE_RECORD
    state = plan.state_event.state
    fields = [("line", str(event.line)), ("k", tla_string(plan.spec_action)),
              ("r", str(event.replica + 1)), ("check", "TRUE" if plan.check else "FALSE")]
    if plan.pre_event is not None:
        before = plan.pre_event.state
        fields.append(("pre", tla_record([
            ("role", tla_string(before.role)), ("promised", tla_ballot(before.promised)),
            ("commit", str(before.commit_index)), ("logStart", str(before.log_start)),
            ("cut", str(before.log_start)),
            ("delta", _log_delta(before.log, previous_log, before.log_start))])))
        previous_log = before.log
    if state is not None:
        fields += [("role", tla_string(state.role)), ("promised", tla_ballot(state.promised)),
                   ("commit", str(state.commit_index)), ("logStart", str(plan.log_start)),
                   ("cut", str(state.log_start)),
                   ("delta", _log_delta(state.log, previous_log, state.log_start))]
    else:
        fields += [("role", '"none"'), ("promised", "<<0, 0>>"), ("commit", "0"),
                   ("logStart", str(plan.log_start)), ("cut", "0"), ("delta", tla_function([]))]
    message = None
    if event.message is not None:
        receiver = event.replica
        message = spec_message(event.message, event.source, receiver, {receiver}, False)
    fields.append(("msg", message or '[type |-> "none"]'))
    fields.append(("slot", str(event.slot or 0)))
    fields.append(("pin", str(plan.pin)))
    value = '"none"'
    if event.action == "Propose" and state is not None and event.slot in state.log:
        value = tla_value(state.log[event.slot].batch)
    fields.append(("val", value))
    fields.append(("sends", "<<" + ", ".join(plan.sends) + ">>"))
    return tla_record(fields)


@dataclass(frozen=True, slots=True)
class Model:
    replicas: int
    q1: int
    q2: int
    max_round: int
    max_slot: int
    values: list[str]
    # The spec assumes |Q1| + |Q2| > N unless told not to; a trace of a cluster whose
    # quorums do not intersect is checked as such, and its safety invariants decide.
    quorums_intersect: bool = True
    safety_invariants: tuple[str, ...] = ()


def model_of(trace: Trace, plans: list[PlannedEvent]) -> Model:
    """Constants from the trace's extent, never from the size of its numbers: as many
    rounds as the trace has distinct rounds (renumber_rounds), slots up to the largest
    the trace holds but at most one per Propose event plus one (slot_bound), the batch
    ids of the lines the replay can reach as values."""
    values: set[str] = set()
    for plan in plans:
        if plan.unreachable is not None:
            break
        for event in (plan.event, plan.pre_event):
            if event is None:
                continue
            if event.state is not None:
                values.update(entry.batch for entry in event.state.log.values())
            for message in [event.message] * (event.message is not None) + \
                    [send["message"] for send in event.sent]:
                if "value" in message:
                    values.add(message["value"])
                values.update(batch for _slot, _ballot, batch in message.get("entries", ()))
    values.discard(NOOP_BATCH)
    # One spare slot: Propose needs nextSlot \in Slots, and BecomeLeader may reach one past.
    return Model(trace.replicas, trace.q1, trace.q2, max(1, len(trace.rounds) - 1),
                 slot_bound(plans), sorted(values), trace.q1 + trace.q2 > trace.replicas,
                 trace.protocol.safety_invariants)


TEMPLATE = "TraceLowPaxos.tla"
_CONSTANT_LINE = "CONSTANT TraceLog"


def write_module(trace: Trace, plans: list[PlannedEvent], name: str,
                 template_text: str) -> tuple[str, Model]:
    """The generated module: conformance/TraceLowPaxos.tla with the trace written
    in as a definition where the template declares ``CONSTANT TraceLog``. (Handing
    TLC the trace through ``TraceLog <- ...`` in the configuration is much slower:
    TLC 2.15 then rebuilds the whole sequence at every use.)"""
    model = model_of(trace, plans)
    records = []
    logs: dict[int, dict[int, Entry]] = {}
    for plan in plans:
        replica = plan.event.replica
        records.append(event_record(plan, logs.get(replica, {})))
        if plan.unreachable is not None:
            break  # the replay stops at this line: the lines after it are not written
        state = plan.state_event.state
        if state is not None and plan.check:
            logs[replica] = state.log
    header, rest = template_text.split("\n", 1)
    assert "MODULE TraceLowPaxos" in header, "the template starts with its MODULE line"
    start = rest.index(_CONSTANT_LINE)
    end = rest.index("\n", start)
    definitions = "\n".join([
        f"\\* Generated by lowpaxos.conformance from {trace.path}; do not edit.",
        "TraceValues == " + tla_set(tla_string(v) for v in model.values),
        f"TraceNoOp == {tla_string(NOOP_BATCH)}",
        "TraceNoSymmetry == {}",
        "TraceLog == <<",
        ",\n".join(records),
        ">>",
    ])
    text = (header.replace("MODULE TraceLowPaxos", f"MODULE {name}") + "\n"
            + rest[:start] + definitions + rest[end:])
    return text, model


def symmetry_definitions(spec_text: str) -> list[str]:
    """Zero-arity definitions of the spec that compute symmetry sets. TLC evaluates
    constant definitions when it starts, and Permutations of the hundreds of values
    in a trace would never finish; the configuration replaces them with {}."""
    return re.findall(r"^([A-Za-z_][A-Za-z0-9_]*) == Permutations\(", spec_text, re.M)


def write_config(model: Model, invariants: str | list[str] | tuple[str, ...] | None,
                 init: str = "TraceInit", next_: str = "TraceNext",
                 symmetries: list[str] = ()) -> str:
    if isinstance(invariants, str):
        invariants = [invariants]
    return "\n".join([
        "\\* Generated by lowpaxos.conformance; do not edit.",
        "CONSTANTS",
        *(f"    {name} <- TraceNoSymmetry" for name in symmetries),
        "    Replicas = " + tla_set(str(r) for r in range(1, model.replicas + 1)),
        "    Values <- TraceValues",
        "    NoOp <- TraceNoOp",
        f"    MaxRound = {model.max_round}",
        f"    MaxSlot = {model.max_slot}",
        f"    Q1 = {model.q1}",
        f"    Q2 = {model.q2}",
        "    MaxMessages = 0",
        f"    CheckQuorumIntersection = {'TRUE' if model.quorums_intersect else 'FALSE'}",
        "    LaggingCommitHint = TRUE",
        "    CutReplicas = " + tla_set(str(r) for r in range(1, model.replicas + 1)),
        f"INIT {init}",
        f"NEXT {next_}",
        *(f"INVARIANT {name}" for name in invariants or ()),
        "",
    ])
