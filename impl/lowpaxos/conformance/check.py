"""Check a trace against spec/LowPaxos.tla with TLC, and explain a divergence.

Three TLC runs at most, each through ``lowpaxos.tla.tlc.run_tlc``:

1. Replay: TraceLowPaxos with the trace, to the end of the state graph. The
   counter ``l`` grows by one per step, so TLC's search depth is the largest
   ``l`` reached: ``Len(TraceLog) + 1`` when some behaviour of the spec
   explains every line (the trace conforms), else the number of the first
   event that no spec step explains. (With an invariant on ``l`` instead, TLC
   would print the whole behaviour of a conforming trace, every state in full.)
   The spec's safety invariants (the protocol's ``safety_invariants``) are
   checked in every state the replay reaches; a violation ends the check at the
   line whose step reached that state, with the invariant named.
2. Witness: the same with invariant ``l < D``; its error trace ends in a spec
   state just before event D (one of them, if several behaviours got there).
3. Probe: from that state, which actions of LowPaxos are enabled (ENABLED),
   and the successor by event D's action, at its replica, that is closest to
   the state the event logged (fewest differing fields); the report lists the
   differences field by field.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from lowpaxos.conformance import tlagen
from lowpaxos.conformance.trace import Event, Trace, TraceFormatError, load_trace
from lowpaxos.conformance.tlavalue import Record, at, parse_value, show
from lowpaxos.tla.tlc import Outcome, TlcResult, run_tlc

REPO = Path(__file__).resolve().parents[3]
SPEC_DIR = REPO / "spec"
CONFORMANCE_DIR = REPO / "conformance"
MODULE = "TraceCheck"
LOG_LINES_MAX = 6  # log entries shown per replica in a report (the last ones)
TRACE_VARIABLES = ("l", "seen")  # the trace specs' own variables; the others are the spec's


def spec_variables(state: dict[str, str]) -> list[str]:
    """The spec's variables in a state TLC printed (whatever the spec declares now)."""
    return [name for name in state if name not in TRACE_VARIABLES]


@dataclass
class Verdict:
    path: str
    conforms: bool
    events: int
    seconds: float  # TLC time of the replay run
    spec_actions: Counter = field(default_factory=Counter)
    trace_actions: Counter = field(default_factory=Counter)
    line: int | None = None  # first divergent line (1-based, in the file)
    report: str = ""
    violated: str | None = None  # the safety invariant a replayed state violated
    protocol: str = "lowpaxos"  # the trace's protocol (its meta line)
    error: str | None = None  # TLC could not run or failed (exit 2)

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


def spec_actions_of(spec_dir: Path = SPEC_DIR, module: str = "LowPaxos") -> list[str]:
    """The action names in the spec's Next (for the coverage check)."""
    text = (spec_dir / f"{module}.tla").read_text(encoding="utf-8")
    match = re.search(r"^Next ==\n(.*?)\n\n", text, re.S | re.M)
    if match is None:
        return []
    names = re.findall(r"([A-Z][A-Za-z]*)(?:\(|\s*$)", match.group(1), re.M)
    return sorted(set(names))


# TLC evaluates nested values recursively, and a trace state nests deeply (a log
# rebuilt by a catch-up or a new leader over a long trace): Java's default 1 MB
# thread stack overflows on some traces of a few hundred events. run_tlc takes no
# JVM options, so the stack size goes through JAVA_TOOL_OPTIONS, which the JVM
# reads however it is started (jpype included), for the TLC run only.
TLC_STACK_OPTION = "-Xss64m"


def _run(workdir: Path, module_text: str, config_text: str, name: str, spec_dir: Path,
         timeout_s: float) -> TlcResult:
    (workdir / f"{name}.tla").write_text(module_text, encoding="utf-8")
    (workdir / f"{name}.cfg").write_text(config_text, encoding="utf-8")
    previous = os.environ.get("JAVA_TOOL_OPTIONS")
    os.environ["JAVA_TOOL_OPTIONS"] = f"{previous} {TLC_STACK_OPTION}" if previous else TLC_STACK_OPTION
    try:
        return run_tlc(workdir / f"{name}.tla", workdir / f"{name}.cfg", workers=1,
                       timeout_s=timeout_s, library_dirs=(CONFORMANCE_DIR, spec_dir))
    finally:
        if previous is None:
            del os.environ["JAVA_TOOL_OPTIONS"]
        else:
            os.environ["JAVA_TOOL_OPTIONS"] = previous


def _with_definitions(module_text: str, definitions: list[str]) -> str:
    """The module with ``definitions`` added before its closing ==== line."""
    end = module_text.rindex("\n====")
    return module_text[:end] + "\n" + "\n".join(definitions) + module_text[end:]


def check_trace(path: str | Path, *, spec_dir: Path = SPEC_DIR, keep: Path | None = None,
                timeout_s: float = 600.0, explain: bool = True) -> Verdict:
    """Check one trace file. Raises TraceFormatError for a malformed file (one the
    spec cannot express, such as |Q1| = 1, included)."""
    trace = load_trace(path)
    mapping = trace.protocol.mapping
    plans = mapping.plan_steps(trace)
    template = (CONFORMANCE_DIR / trace.protocol.template).read_text(encoding="utf-8")
    module_text, model = mapping.write_module(trace, plans, MODULE, template)
    spec_file = spec_dir / f"{trace.protocol.spec_module}.tla"
    symmetries = mapping.symmetry_definitions(spec_file.read_text(encoding="utf-8"))
    verdict = Verdict(str(path), False, len(trace.events), 0.0)
    verdict.protocol = trace.protocol.name
    verdict.trace_actions = Counter(e.action for e in trace.events)
    verdict.spec_actions = Counter(p.spec_action for p in plans
                                   if p.spec_action not in ("Skip", "Acks"))
    workdir = Path(tempfile.mkdtemp(prefix="lowpaxos-conformance-"))
    try:
        # No invariant on l: TLC would print the whole error trace of a conforming trace,
        # every state in full, which costs more than the check; the search depth says how
        # far the trace conforms. The spec's safety invariants hold in a conforming trace,
        # so they print nothing unless one is violated.
        replay = _run(workdir, module_text,
                      mapping.write_config(model, model.safety_invariants, symmetries=symmetries),
                      MODULE, spec_dir, timeout_s)
        verdict.seconds = replay.seconds
        if replay.outcome is Outcome.INVARIANT_VIOLATED and replay.error_trace:
            _unsafe(verdict, trace, replay)
            return verdict
        if replay.outcome is not Outcome.OK or replay.depth is None:
            verdict.error = _tlc_failure("replay", replay)
            return verdict
        if replay.depth == len(trace.events) + 1:
            verdict.conforms = True
            return verdict
        index = replay.depth  # 1-based index of the first unexplained event
        if not 1 <= index <= len(trace.events):
            verdict.error = f"TLC reported depth {replay.depth} for {len(trace.events)} events"
            return verdict
        event = trace.events[index - 1]
        verdict.line = event.line
        if plans[index - 1].unreachable is not None:
            verdict.report = (_headline(trace, index) + "\n  event: " + _event_text(event)
                              + "\n  " + plans[index - 1].unreachable + _rounds_note(trace))
        elif explain and hasattr(mapping, "explain"):  # the protocol's own report (EPaxos)
            lines = [_headline(trace, index), "  event: " + _event_text(event)]
            verdict.report = "\n".join(lines + mapping.explain(
                trace, plans, index, module_text, model, symmetries,
                lambda text, config: _run(workdir, text, config, MODULE, spec_dir, timeout_s)))
        elif explain and getattr(mapping, "EXPLAIN", True):
            verdict.report = _explain(trace, plans, index, module_text, model, workdir, spec_dir,
                                      timeout_s, symmetries)
        elif not getattr(mapping, "EXPLAIN", True):
            verdict.report = _headline(trace, index) + "\n  event: " + _event_text(event)
        else:
            verdict.report = _headline(trace, index)
        return verdict
    finally:
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            for item in workdir.iterdir():
                shutil.copy2(item, keep / item.name)
        shutil.rmtree(workdir, ignore_errors=True)


def _tlc_failure(what: str, result: TlcResult) -> str:
    detail = "; ".join(line.splitlines()[0] for line in result.errors[:3]) if result.errors else ""
    return f"TLC {what} run ended with {result.outcome.value}" + (f": {detail}" if detail else "")


def _headline(trace: Trace, index: int) -> str:
    event = trace.events[index - 1]
    return (f"{trace.path}:{event.line}: event {index} ({event.action} at replica "
            f"{event.replica}) is not a step of {trace.protocol.spec_module}.tla")


def _rounds_note(trace: Trace) -> str:
    """A line for reports when the model's rounds are not the trace's (renumber_rounds)."""
    moved = {r: k for r, k in trace.rounds.items() if r != k}
    if not moved:
        return ""
    return ("\n  (rounds renumbered in order for the model; trace round -> model round: "
            + ", ".join(f"{r} -> {k}" for r, k in sorted(trace.rounds.items()) if r) + ")")


def _unsafe(verdict: Verdict, trace: Trace, replay: TlcResult) -> None:
    """The replay reached a spec state that violates a safety invariant: name the line
    whose step reached it, the invariant, and what each replica holds committed there."""
    last = replay.error_trace[-1]
    explained = parse_value(last["l"])  # events 1..explained-1 were taken
    index = explained - 1
    name = replay.violated_invariant
    if not 1 <= index <= len(trace.events):
        verdict.error = f"TLC reported a violation of {name} at l = {explained}"
        return
    event = trace.events[index - 1]
    verdict.line = event.line
    verdict.violated = name
    report = getattr(trace.protocol.mapping, "unsafe_report", None)
    if report is not None:  # another protocol's variables (EPaxos: per instance)
        state = {name: parse_value(last[name]) for name in spec_variables(last)}
        verdict.report = "\n".join([
            f"{trace.path}:{event.line}: event {index} ({event.action} at replica "
            f"{event.replica}) reaches a state of {trace.protocol.spec_module}.tla that "
            f"violates its safety invariant {name}", f"  event: {_event_text(event)}",
            *report(trace, state, name)])
        return
    lines = [f"{trace.path}:{event.line}: event {index} ({event.action} at replica "
             f"{event.replica}) reaches a state of {trace.protocol.spec_module}.tla that "
             f"violates its safety invariant {name}",
             f"  event: {_event_text(event)}",
             "  the replicas' committed slots in that state (above each one's cut):"]
    state = {name: parse_value(last[name]) for name in spec_variables(last)}
    for r in range(1, trace.replicas + 1):
        view = _replica_view(state, r)
        held = [(slot, entry) for slot, entry in sorted(view["log"].items())
                if view["logStart"] < slot <= view["commitIndex"]]
        text = ", ".join(f"[{slot}] {_entry_text(entry)}" for slot, entry in held[-LOG_LINES_MAX:])
        lines.append(f"    replica {r - 1}: commitIndex {view['commitIndex']}, logStart "
                     f"{view['logStart']}: {text or 'none'}")
    by_slot: dict[int, set] = {}
    for vote in state.get("votes", ()):
        by_slot.setdefault(vote["slot"], set()).add(vote["val"])
    split = sorted(slot for slot, values in by_slot.items() if len(values) > 1)
    if split:
        lines.append("  slots where replicas have accepted different values (votes):")
        for slot in split[:LOG_LINES_MAX]:
            accepted = sorted((v for v in state["votes"] if v["slot"] == slot),
                              key=lambda v: (tuple(v["bal"]), v["rep"]))
            lines.append(f"    slot {slot}: " + ", ".join(
                f"{v['val']} in ballot {show(tuple(v['bal']))} by replica {v['rep'] - 1}"
                for v in accepted))
    lines.append(f"  (Q1 = {trace.q1}, Q2 = {trace.q2}, {trace.replicas} replicas"
                 + ("" if trace.q1 + trace.q2 > trace.replicas else
                    ": the quorums do not intersect") + ")" + _rounds_note(trace))
    verdict.report = "\n".join(lines)


# ---- the divergence report ---------------------------------------------------------------

def _want(plan: tlagen.PlannedEvent, event: Event | None = None) -> dict | None:
    """The logged state the step must reach (or, given ``event``, that event's state)."""
    state = (event or plan.state_event).state
    if state is None:
        return None
    log_start = state.log_start if event is not None else plan.log_start
    return {"role": state.role, "promised": (state.promised[0], state.promised[1] + 1),
            "commitIndex": state.commit_index, "logStart": log_start, "cut": state.log_start,
            "log": {slot: ((e.ballot[0], e.ballot[1] + 1), e.batch) for slot, e in state.log.items()}}


def _want_tla(want: dict) -> str:
    pairs = [(str(slot), f"[bal |-> <<{b[0]}, {b[1]}>>, val |-> {tlagen.tla_value(v)}]")
             for slot, (b, v) in sorted(want["log"].items())]
    sparse = tlagen.tla_function(pairs)
    return (f"[role |-> {tlagen.tla_string(want['role'])}, "
            f"promised |-> <<{want['promised'][0]}, {want['promised'][1]}>>, "
            f"commit |-> {want['commitIndex']}, logStart |-> {want['logStart']}, "
            f"cut |-> {want['cut']}, "
            f"log |-> LET F == {sparse} IN [s \\in Slots |-> IF s \\in DOMAIN F THEN F[s] ELSE NoEntry]]")


def _entry_text(entry) -> str:
    if entry is None:
        return "(empty)"
    bal = entry["bal"]
    if tuple(bal) == (0, 0):
        return "(empty)"
    return f"{entry['val']} in ballot <<{bal[0]}, {bal[1]}>>"


def _replica_view(state: dict[str, object], r: int) -> dict:
    """The spec variables of replica r (1-based) out of parsed TLC state values."""
    log = at(state["log"], r)
    slots = range(1, len(log) + 1) if isinstance(log, tuple) else sorted(log)
    return {
        "role": at(state["role"], r),
        "promised": tuple(at(state["promised"], r)),
        "commitIndex": at(state["commitIndex"], r),
        "logStart": at(state["logStart"], r),
        "log": {s: at(log, s) for s in slots if tuple(at(log, s)["bal"]) != (0, 0)},
        "nextSlot": at(state["nextSlot"], r),
        "promises": at(state["promises"], r),
    }


def _describes(message: Record, logged: dict) -> list[str]:
    """Fields in which the network message differs from the logged partial one."""
    differences = []
    for name, value in logged.items():
        if name == "targets":
            continue
        if name not in message:
            differences.append(f"{name}: the spec's message has no such field")
        elif message[name] != value:
            differences.append(f"{name}: logged {show(value)}, network {show(message[name])}")
    if "targets" in logged:
        to = message.get("to", frozenset())
        if not logged["targets"] <= to:
            differences.append(f"to: logged receiver(s) {show(logged['targets'])} not in {show(to)}")
    return differences


def _explain(trace: Trace, plans: list[tlagen.PlannedEvent], index: int, module_text: str,
             model: tlagen.Model, workdir: Path, spec_dir: Path, timeout_s: float,
             symmetries: list[str]) -> str:
    event = trace.events[index - 1]
    plan = plans[index - 1]
    r = event.replica + 1
    lines = [_headline(trace, index), f"  event: {_event_text(event)}"]
    if plan.state_event is not event:
        lines.append(f"  (its step is checked with the state of line {plan.state_event.line}, "
                     f"{plan.state_event.action}, which the spec's {plan.spec_action} reaches in "
                     f"one step; its own state with the spec state before the step)")

    witness = _run(workdir, _with_definitions(module_text, [f"TraceStop == l < {index}"]),
                   tlagen.write_config(model, "TraceStop", symmetries=symmetries), MODULE, spec_dir,
                   timeout_s)
    if not witness.error_trace:
        lines.append(f"  (no spec state before it: {_tlc_failure('witness', witness)})")
        return "\n".join(lines)
    before_text = witness.error_trace[-1]
    before = {name: parse_value(before_text[name]) for name in spec_variables(before_text)}
    view = _replica_view(before, r)
    lines.append(f"  spec state before it, replica {event.replica} (spec id {r}): "
                 f"role {view['role']}, promised {show(view['promised'])}, "
                 f"commitIndex {view['commitIndex']}, logStart {view['logStart']}, "
                 f"nextSlot {view['nextSlot']}")
    held = sorted(view["log"].items())
    if len(held) > LOG_LINES_MAX:
        lines.append(f"    log[1..{held[-LOG_LINES_MAX - 1][0]}]: {len(held) - LOG_LINES_MAX} entries "
                     f"not shown")
    for slot, entry in held[-LOG_LINES_MAX:]:
        lines.append(f"    log[{slot}] = {_entry_text(entry)}")
    lines.append(f"    {len(before['msgs'])} messages in the network")
    if plan.pre_event is not None:
        own = _want(plan, plan.pre_event)
        differences = _field_diff(view, own)
        if differences:
            lines.append(f"  the line's own state (before the election its step completes) "
                         f"differs from that spec state in {len(differences)} field(s):")
            lines.extend("    " + d for d in differences)

    # Was the handled message ever sent?
    if event.message is not None:
        logged_text = tlagen.spec_message(event.message, event.source, event.replica,
                                          {event.replica}, False)
        if logged_text is not None:
            logged = parse_value(logged_text)
            same_type = [m for m in before["msgs"] if m.get("type") == logged["type"]]
            ranked = sorted(same_type, key=lambda m: len(_describes(m, logged)))
            if not ranked or _describes(ranked[0], logged):
                lines.append(f"  the handled message is not in the network: {show(logged)}")
                if ranked:
                    lines.append("    closest network message of that type differs in:")
                    lines.extend(f"      {d}" for d in _describes(ranked[0], logged))

    want = _want(plan)
    probe_text = _probe_module(before_text, index, r, want)
    probe = _run(workdir, probe_text, _probe_config(model, symmetries), "TraceProbe", spec_dir,
                 timeout_s)
    if len(probe.error_trace) < 2:
        lines.append(f"  (enabled actions unknown: {_tlc_failure('probe', probe)})")
        return "\n".join(lines)
    after_probe = probe.error_trace[1]
    enabled = parse_value(after_probe["enabledNow"])
    by_action: dict[str, list[int]] = {}
    for name, replica in sorted(enabled):
        by_action.setdefault(name, []).append(replica - 1)
    lines.append("  actions enabled there (replica ids 0-based; LoseMessage left out): "
                 + (", ".join(f"{name}{sorted(rs)}" for name, rs in sorted(by_action.items()))
                    or "none"))
    best = parse_value(after_probe["best"])
    if best < 0 or len(probe.error_trace) < 3:
        lines.append(f"  no step of {plan.spec_action} at replica {event.replica} is enabled there")
        return "\n".join(lines)
    successor = {name: parse_value(probe.error_trace[2][name])
                 for name in spec_variables(before_text)}
    after = _replica_view(successor, r)
    lines.append(f"  closest {plan.spec_action} successor at replica {event.replica} "
                 f"differs from the logged post-state in {best} field(s):")
    lines.extend("    " + d for d in _field_diff(after, want))
    if best == 0 and plan.pre_event is not None:
        lines.append("    (the step reaches the BecomeLeader line's state; the line's own state "
                     "differs, see above)")
    elif best == 0:
        new = successor["msgs"] - before["msgs"]
        lines.append("    (the state matches; the logged sends are not the spec's: spec sends "
                     + (", ".join(show(m) for m in new) or "nothing") + ")")
    return "\n".join(lines) + _rounds_note(trace)


def _field_diff(spec_view: dict, want: dict) -> list[str]:
    differences = []
    if spec_view["role"] != want["role"]:
        differences.append(f"role: spec {spec_view['role']}, trace {want['role']}")
    if spec_view["promised"] != want["promised"]:
        differences.append(f"promised: spec {show(spec_view['promised'])}, "
                           f"trace {show(want['promised'])}")
    if spec_view["commitIndex"] != want["commitIndex"]:
        differences.append(f"commit_index: spec {spec_view['commitIndex']}, "
                           f"trace {want['commitIndex']}")
    if spec_view["logStart"] != want["logStart"]:
        differences.append(f"log_start: spec {spec_view['logStart']}, trace {want['logStart']}")
    slots = sorted(set(spec_view["log"]) | set(want["log"]))
    for slot in slots:
        if slot <= want["cut"]:
            continue
        spec_entry = spec_view["log"].get(slot)
        spec_pair = None if spec_entry is None else (tuple(spec_entry["bal"]), spec_entry["val"])
        logged = want["log"].get(slot)
        logged_pair = None if logged is None else (logged[0], "noop" if logged[1] == "noop" else logged[1])
        if spec_pair != logged_pair:
            trace_text = "(empty)" if logged is None else \
                f"{logged[1]} in ballot <<{logged[0][0]}, {logged[0][1]}>>"
            differences.append(f"log[{slot}]: spec {_entry_text(spec_entry)}, trace {trace_text}")
    return differences


def _event_text(event: Event) -> str:
    parts = [event.action, f"replica {event.replica}"]
    if event.source is not None:
        parts.append(f"from {event.source}")
    if event.message is not None:
        parts.append("message " + ", ".join(f"{k}={v}" for k, v in event.message.items()))
    if event.slot is not None:
        parts.append(f"slot {event.slot}")
    if event.target is not None:
        parts.append(f"target {event.target}")
    state = event.state
    if state is not None and hasattr(state, "describe"):  # a protocol's own wording (EPaxos)
        parts.append("-> " + state.describe())
    elif state is not None and not hasattr(state, "role"):  # another protocol's state (VR)
        parts.append("-> " + ", ".join(f"{name} {getattr(state, name)}"
                                        for name in ("view", "status", "last_normal_view", "op",
                                                     "commit", "log_start")
                                        if hasattr(state, name)))
    elif state is not None:
        parts.append(f"-> role {state.role}, promised {list(state.promised)}, "
                     f"commit_index {state.commit_index}, log_start {state.log_start}, "
                     f"{len(state.log)} log entries")
    return "; ".join(parts)


def _probe_module(before: dict[str, str], index: int, r: int, want: dict | None) -> str:
    assignments = [f"    /\\ {name} = {before[name]}" for name in spec_variables(before)]
    want_text = _want_tla(want) if want is not None else "[role |-> \"none\"]"
    return "\n".join([
        "---- MODULE TraceProbe ----",
        "\\* Generated by lowpaxos.conformance: why the spec cannot take event "
        f"{index}; do not edit.",
        f"EXTENDS {MODULE}, Integers",
        "VARIABLES phase, enabledNow, best",
        f"ProbeEvent == TraceLog[{index}]",
        f"ProbeR == {r}",
        f"Want == {want_text}",
        "MinOf(S) == CHOOSE x \\in S : \\A y \\in S : x <= y",
        "ProbeInit ==",
        *assignments,
        f"    /\\ l = {index}",
        "    /\\ phase = 0 /\\ enabledNow = {} /\\ best = -1",
        "ProbeNext ==",
        "    \\/ /\\ phase = 0 /\\ phase' = 1",
        "       /\\ enabledNow' = EnabledActions",
        "       /\\ best' = LET ds == {k \\in 0..(4 + MaxSlot) :",
        "                           ENABLED (TakeAny(ProbeEvent) /\\ Distance(ProbeR, Want)' = k)}",
        "                  IN IF ds = {} THEN -1 ELSE MinOf(ds)",
        "       /\\ UNCHANGED <<vars, l>>",
        "    \\/ /\\ phase = 1 /\\ best >= 0 /\\ phase' = 2",
        "       /\\ TakeAny(ProbeEvent) /\\ Distance(ProbeR, Want)' = best",
        "       /\\ UNCHANGED <<enabledNow, best, l>>",
        "ProbeDone == phase < 2 /\\ ~(phase = 1 /\\ best < 0)",
        "====",
        "",
    ])


def _probe_config(model: tlagen.Model, symmetries: list[str]) -> str:
    return tlagen.write_config(model, "ProbeDone", init="ProbeInit", next_="ProbeNext",
                               symmetries=symmetries)
