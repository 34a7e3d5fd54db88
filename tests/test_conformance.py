"""Trace validation against spec/LowPaxos.tla and spec/VR.tla (lowpaxos.conformance),
short profile.

Each test runs TLC (a JVM per run, a few seconds each) on a trace: a simulator
run with faults must conform; each committed bad trace must be rejected at the
line its note names; a hand-edited post-state must be rejected at the edited
line with a field-by-field difference; a malformed file is exit status 2 with
the line named.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from lowpaxos.cli import main
from lowpaxos.conformance.check import check_trace, spec_actions_of
from lowpaxos.conformance.cli import BAD_DIR, TRACES_DIR, expected_line
from lowpaxos.conformance.corpus import SimRun, sim_trace

# No skip when Java is missing: `make test` installs it, and a missing Java must fail loudly.
assert shutil.which("java") is not None, "TLC needs java: run the suite through `make test`"

# EPaxos's bad traces are checked by tests/test_conformance_epaxos.py (their reports differ).
BAD_TRACES = sorted(p for p in BAD_DIR.glob("*.ndjson") if not p.stem.startswith("epaxos-"))
# Checked by `make conformance` only: rejected at line 257 of a 349-event trace after
# three TLC runs (about 45 s); tests/test_conformance_input.py has a short trace with
# the same kind of edit.
LONG_BAD_TRACES = {"promise_line_disagrees"}
# VR's bad traces: the mutant's (rejected at line 5, one TLC run) is checked here; the two
# hand edits (lines 76 and 116, about 5 s each) by `make conformance`.
LONG_BAD_TRACES |= {"vr-edited-commit", "vr-start-view-drops-op"}
SHORT_BAD_TRACES = [p for p in BAD_TRACES if p.stem not in LONG_BAD_TRACES]


@pytest.fixture(scope="module")
def good_trace(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("traces") / "sim-seed2.ndjson"
    result = sim_trace(SimRun(seed=2, crashes=2), path)
    assert result["linearizable"] and result["faults_injected"].get("crash", 0) >= 1
    return path


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def test_simulator_trace_with_faults_conforms(good_trace, capsys):
    """A simulator run with a crash, a partition, loss and duplication, in which logs are
    cut and a replica that was down catches up by a state transfer, is a behaviour of the
    spec; the CLI says so with exit status 0."""
    events = [json.loads(line) for line in _lines(good_trace)[1:]]
    assert len(events) >= 100
    assert {"Crash", "Restart", "HandleAccept", "BecomeLeader"} <= {e["action"] for e in events}
    assert {"TruncateLog", "HandleSnapshotChunk", "InstallSnapshot"} <= {e["action"] for e in events}
    assert main(["conformance", "check", str(good_trace)]) == 0
    assert "conforms" in capsys.readouterr().out


@pytest.mark.parametrize("bad", SHORT_BAD_TRACES, ids=[p.stem for p in SHORT_BAD_TRACES])
def test_bad_trace_is_rejected_at_its_line(bad):
    """Each trace in traces/bad/ (a mutant's run, or a hand edit) is rejected exactly
    at the line its sidecar note names, with a report that names that line."""
    want = expected_line(bad)
    assert want is not None, f"{bad.with_suffix('.txt')} must say reject-at-line: N"
    verdict = check_trace(bad)
    assert verdict.error is None, verdict.error
    assert not verdict.conforms
    assert verdict.line == want, verdict.report
    assert f"{bad}:{want}:" in verdict.report
    # Why: a safety invariant violated there, a line no spec state can reach (found before
    # TLC runs), or the actions enabled there and the closest successor.
    assert (f"violates its safety invariant {verdict.violated}" in verdict.report
            if verdict.violated else
            "no spec state has that slot" in verdict.report
            or "actions enabled there" in verdict.report
            # VR: the headline (check.py's field-by-field probe is LowPaxos's).
            or (verdict.protocol == "vr" and "is not a step of VR.tla" in verdict.report)), \
        verdict.report
    if bad.stem == "quorums_disjoint_agreement":
        # An unsafe run of a cluster whose quorums do not intersect, every line a spec
        # step: the replay's Agreement check rejects it where two values are chosen.
        assert verdict.violated == "Agreement", verdict.report
        assert "slot 1: bset-x-1 in ballot <<1, 1>> by replica 0, bset-x-2" in verdict.report


def test_at_least_three_bad_traces():
    """The corpus keeps at least three traces the checker must reject."""
    assert len(BAD_TRACES) >= 3


def test_committed_good_traces_conform():
    """The corpus in traces/ conforms (the first file, in this short profile)."""
    good = sorted(TRACES_DIR.glob("*.ndjson"))
    assert good, "traces/ holds the committed corpus"
    verdict = check_trace(good[0])
    assert verdict.error is None and verdict.conforms, verdict.report


def test_edited_post_state_is_rejected_with_a_field_diff(good_trace, tmp_path):
    """Changing one event's logged commit index makes that event the first divergence,
    and the report shows the field with the spec's and the trace's values."""
    lines = _lines(good_trace)
    index = next(i for i, line in enumerate(lines)
                 if i > 40 and '"action":"HandleAccept"' in line and '"role":"follower"' in line)
    event = json.loads(lines[index])
    logged = event["state"]["commit_index"]
    event["state"]["commit_index"] = logged + 3
    lines[index] = json.dumps(event)
    edited = tmp_path / "edited.ndjson"
    edited.write_text("\n".join(lines) + "\n", encoding="utf-8")
    verdict = check_trace(edited)
    assert not verdict.conforms
    assert verdict.line == index + 1
    assert f"commit_index: spec {logged}, trace {logged + 3}" in verdict.report, verdict.report


def test_edited_message_is_reported_missing_from_the_network(good_trace, tmp_path):
    """A received message that no one sent (its round changed) is rejected at its line,
    and the report says the message is not in the network and how it differs."""
    lines = _lines(good_trace)
    index = next(i for i, line in enumerate(lines) if i > 20 and '"action":"HandleAccepted"' in line)
    event = json.loads(lines[index])
    event["message"]["ballot"][0] += 1  # a round no Accepted of this slot carries
    lines[index] = json.dumps(event)
    edited = tmp_path / "edited-message.ndjson"
    edited.write_text("\n".join(lines) + "\n", encoding="utf-8")
    verdict = check_trace(edited)
    assert verdict.line == index + 1, verdict.report
    assert "not in the network" in verdict.report
    assert "bal: logged" in verdict.report


@pytest.mark.parametrize("corrupt, reason", [
    (lambda e: "{not json", "not JSON"),
    (lambda e: json.dumps({**e, "replica": 7}), "replica must be an id"),
    (lambda e: json.dumps({k: v for k, v in e.items() if k != "state"}), "post-state"),
    (lambda e: json.dumps({**e, "action": "Teleport"}), "unknown action"),
])
def test_malformed_trace_exits_2_naming_the_line(good_trace, tmp_path, capsys, corrupt, reason):
    """A malformed line is exit status 2, with the file, the line and the reason."""
    lines = _lines(good_trace)
    lines[5] = corrupt(json.loads(lines[5]))
    broken = tmp_path / "broken.ndjson"
    broken.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert main(["conformance", "check", str(broken)]) == 2
    error = capsys.readouterr().err
    assert f"{broken}:6:" in error and reason in error, error


def test_runtime_restart_is_taken_from_a_new_boot():
    """The runtime logs no Restart: the checker puts one where a replica's boot changes
    (the committed cluster trace stops and restarts replica 1), and the trace conforms."""
    from lowpaxos.conformance.trace import load_trace

    path = TRACES_DIR / "cluster-3-processes-restart.ndjson"
    restarts = [e for e in load_trace(path).events if e.action == "Restart"]
    assert [(e.replica, e.state) for e in restarts] == [(1, None)]
    verdict = check_trace(path)
    assert verdict.conforms, verdict.report


def test_a_cut_inside_a_handler_step_is_checked_at_its_own_line(tmp_path):
    """The core logs a handler's event with the state after its whole step, a log cut
    included; the plan checks the handler's line against the cut from before and the
    TruncateLog line after it against the new one (no TLC run: the plan only)."""
    from lowpaxos.conformance.tlagen import plan_steps
    from lowpaxos.conformance.trace import load_trace

    def event(action, step, log_start, **fields):
        state = {"role": "follower", "promised": [1, 0], "log": {}, "commit_index": 8,
                 "log_start": log_start}
        return {"action": action, "replica": 1, "state": state, "step": step, **fields}

    accept = {"type": "Accept", "ballot": [1, 0], "slot": 8, "value": "b1", "commit_index": 8,
              "truncate_index": 8}
    lines = [event("TruncateLog", 1, 4, slot=4),
             event("HandleAccept", 2, 8, source=0, message=accept),
             event("TruncateLog", 2, 8, slot=8)]
    path = tmp_path / "cut.ndjson"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    plans = plan_steps(load_trace(path))
    assert [plan.log_start for plan in plans] == [4, 4, 8]


def test_spec_actions_are_read_from_next():
    """Coverage counts the actions of LowPaxos's Next; the checker reads them there."""
    actions = spec_actions_of()
    assert {"StartElection", "HandleAccept", "Crash", "LoseMessage"} <= set(actions)
    assert {"TruncateLog", "RequestSnapshot", "HandleSnapshotRequest", "HandleSnapshotChunk",
            "InstallSnapshot"} <= set(actions)


# ---- VR Revisited (spec/VR.tla, conformance/TraceVR.tla) --------------------------------

VR_SHORT_TRACE = TRACES_DIR / "vr-sim-seed15-diskless-primary-crash.ndjson"


def test_vr_trace_conforms_to_vr_spec(capsys):
    """A committed VR simulator trace (diskless replicas: the primary crashes, a view
    change, recovery by §4.3, state transfer) conforms, checked against spec/VR.tla,
    which the checker picks from the trace's meta line."""
    actions = {json.loads(line).get("action") for line in _lines(VR_SHORT_TRACE)[1:]}
    assert {"StartView", "HandleRecoveryResponse", "Restart", "HandleNewState"} <= actions
    from lowpaxos.conformance.trace import load_trace

    assert load_trace(VR_SHORT_TRACE).protocol.spec_module == "VR"
    assert main(["conformance", "check", str(VR_SHORT_TRACE)]) == 0
    assert "conforms" in capsys.readouterr().out


def test_vr_coverage_of_the_committed_corpus():
    """Every action of VR.tla's Next but LoseMessage is taken by the committed VR traces
    (counted from the planned steps, as `make conformance` counts them after TLC)."""
    from collections import Counter

    from lowpaxos.conformance.cli import NOT_IN_TRACES, coverage_table
    from lowpaxos.conformance.trace import load_trace

    actions = spec_actions_of(module="VR")
    assert {"Propose", "StartView", "HandleRecoveryResponse", "Crash", "LoseMessage"} <= set(actions)
    taken: Counter = Counter()
    for path in sorted(TRACES_DIR.glob("vr-*.ndjson")):
        trace = load_trace(path)
        assert trace.protocol.name == "vr"
        plans = trace.protocol.mapping.plan_steps(trace)
        assert all(plan.unreachable is None for plan in plans)
        taken.update(plan.spec_action for plan in plans)
    missing = [a for a in actions if a not in NOT_IN_TRACES and taken[a] == 0]
    assert not missing, missing
    assert "action coverage of VR.tla" in coverage_table(taken, Counter(), TRACES_DIR.parent / "spec", "VR")


def test_vr_trace_with_a_log_cut_is_rejected_before_the_replay(tmp_path):
    """VR.tla keeps logs whole: a trace whose core cut its log is rejected at the first
    such line, with the reason, not explained away."""
    lines = _lines(VR_SHORT_TRACE)
    event = json.loads(lines[10])
    event["state"]["log_start"] = 1
    path = tmp_path / "cut.ndjson"
    path.write_text("\n".join(lines[:10] + [json.dumps(event)] + lines[11:]) + "\n",
                    encoding="utf-8")
    verdict = check_trace(path)
    assert not verdict.conforms and verdict.line == 11, verdict.report
    assert "checkpoints off" in verdict.report


def test_vr_bad_input_is_a_format_error_or_a_plain_module(tmp_path):
    """Values of a VR trace replaced by odd ones (seeded, 300 cases, no TLC): each file is
    a TraceFormatError naming its line, or is planned and written as a plain ASCII module
    with no number above TLC's integers."""
    import random
    import re

    from lowpaxos.conformance.check import CONFORMANCE_DIR
    from lowpaxos.conformance.trace import TraceFormatError, load_trace

    odd = [None, -1, 2**40, 10**400, "x", "\u00e9", [], {}, [1, 2], True, 1.5, {"id": [1]},
           [[1, 2, 3]], {"a": {"b": {"c": {"d": {"e": {"f": {"g": 1}}}}}}}]
    lines = [json.loads(line) for line in _lines(VR_SHORT_TRACE)[:60]]
    template = (CONFORMANCE_DIR / "TraceVR.tla").read_text(encoding="utf-8")
    rng = random.Random(8)

    def paths(value, prefix=()):
        yield prefix
        if isinstance(value, dict):
            for key, item in value.items():
                yield from paths(item, prefix + (key,))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                yield from paths(item, prefix + (index,))

    for case in range(300):
        edited = json.loads(json.dumps(lines))
        number = rng.randrange(1, len(edited))
        where = rng.choice([p for p in paths(edited[number]) if p])
        target = edited[number]
        for key in where[:-1]:
            target = target[key]
        target[where[-1]] = rng.choice(odd)
        path = tmp_path / f"case{case}.ndjson"
        path.write_text("\n".join(json.dumps(line) for line in edited) + "\n", encoding="utf-8")
        try:
            trace = load_trace(path)
            plans = trace.protocol.mapping.plan_steps(trace)
            text, _model = trace.protocol.mapping.write_module(trace, plans, "TraceCheck", template)
        except TraceFormatError as error:
            assert f"{path}:" in str(error)
            continue
        assert text.isascii()
        assert all(int(n) <= 2**31 - 1 for n in re.findall(r"\d+", text)), where
