"""Trace validation of the EPaxos core against spec/EPaxos.tla (lowpaxos.conformance,
conformance/TraceEPaxos.tla), short profile.

A simulator run of the core conforms through the CLI; the short bad traces of
traces/bad/epaxos-* are rejected at the lines their notes name (a hand-written
fast commit on a disagreeing reply, the same with a fast quorum one too small,
where the replay's Consistency check fails, and a mutant's commit without a
reply); the committed EPaxos corpus takes every action of EPaxos.tla's Next
(counted from the planned steps, without TLC); malformed EPaxos lines are format
errors naming the line. The long checks (the whole corpus, the edited traces of
300 lines and more) run in `make conformance`.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest

from lowpaxos.cli import main
from lowpaxos.conformance.check import CONFORMANCE_DIR, check_trace, spec_actions_of
from lowpaxos.conformance.cli import BAD_DIR, NOT_IN_TRACES, TRACES_DIR, expected_line
from lowpaxos.conformance.corpus import SimRun, sim_trace
from lowpaxos.conformance.trace import TraceFormatError, load_trace

assert shutil.which("java") is not None, "TLC needs java: run the suite through `make test`"

EPAXOS_TRACES = sorted(TRACES_DIR.glob("epaxos-*.ndjson"))
EPAXOS_BAD = sorted(BAD_DIR.glob("epaxos-*.ndjson"))
# Rejected after a replay of 37 to 310 lines (one TLC run each, then the witness run of
# the report): 10 to 70 s under load; `make conformance` checks them.
LONG_BAD = {"epaxos-edited-commit-deps", "epaxos-preaccept-after-higher-promise"}
SHORT_BAD = [p for p in EPAXOS_BAD if p.stem not in LONG_BAD]


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def test_simulator_trace_conforms(tmp_path, capsys):
    """A short simulator run of the EPaxos core (two shared keys: fast and slow paths,
    loss, reordering) is a behaviour of spec/EPaxos.tla; the CLI picks the spec from the
    trace's meta line and says so with exit status 0."""
    path = tmp_path / "epaxos.ndjson"
    result = sim_trace(SimRun(seed=21, protocol="epaxos", ops=12, keys=2, crashes=0,
                              partitions=0), path)
    assert result["linearizable"]
    events = [json.loads(line) for line in _lines(path)[1:]]
    assert {"Propose", "HandlePreAccept", "HandlePreAcceptOK", "Commit", "HandleCommit",
            "Execute"} <= {e["action"] for e in events}
    assert load_trace(path).protocol.spec_module == "EPaxos"
    assert main(["conformance", "check", str(path)]) == 0
    assert "conforms" in capsys.readouterr().out


@pytest.mark.parametrize("bad", SHORT_BAD, ids=[p.stem for p in SHORT_BAD])
def test_bad_trace_is_rejected_at_its_line(bad):
    """Each short EPaxos bad trace is rejected exactly at the line its note names, with
    a report naming that line and why (an invariant, or the spec state there)."""
    want = expected_line(bad)
    assert want is not None, f"{bad.with_suffix('.txt')} must say reject-at-line: N"
    # The report's witness run (one more TLC run) for one of them; the headline for the
    # others.
    explain = bad.stem == "epaxos-fast-commit-disagreeing-reply"
    verdict = check_trace(bad, explain=explain)
    assert verdict.error is None, verdict.error
    assert not verdict.conforms and verdict.line == want, verdict.report
    assert f"{bad}:{want}:" in verdict.report
    if bad.stem == "epaxos-fast-quorum-too-small-consistency":
        assert verdict.violated == "Consistency", verdict.report
        assert "[1, 1]: bBBBBBBBBBB:1.1 seq 1 deps [0, 0, 0]" in verdict.report
    else:
        assert verdict.violated is None
        assert "is not a step of EPaxos.tla" in verdict.report, verdict.report
    if explain:
        assert "spec state before it, replica 1, instance [1, 1]" in verdict.report
        assert "the state the step must reach: instance [1, 1] committed" in verdict.report


def test_at_least_three_bad_epaxos_traces():
    """The corpus keeps at least three EPaxos traces the checker must reject, each with
    its note."""
    assert len(EPAXOS_BAD) >= 3
    assert all(expected_line(p) is not None for p in EPAXOS_BAD)


def test_corpus_takes_every_spec_action():
    """The committed EPaxos traces take every action of EPaxos.tla's Next but those the
    format says the core never takes (none), counted from the planned steps as `make
    conformance` counts them; the core's HandleNack lines are collect steps (the spec
    has no HandleNack: a Nack changes no spec variable)."""
    from lowpaxos.conformance import epaxos_format

    actions = spec_actions_of(module="EPaxos")
    assert {"Propose", "HandlePreAcceptOK", "StartRecovery", "HandlePrepareOK", "Execute",
            "Crash"} <= set(actions)
    taken: Counter = Counter()
    for path in EPAXOS_TRACES:
        trace = load_trace(path)
        assert trace.protocol.name == "epaxos"
        plans = epaxos_format.plan_steps(trace)
        assert all(plan.unreachable is None for plan in plans), path
        taken.update(plan.spec_action for plan in plans)
    not_expected = {**NOT_IN_TRACES, **epaxos_format.NOT_IN_TRACES}
    missing = [a for a in actions if a not in not_expected and taken[a] == 0]
    assert not missing, missing
    assert "HandleNack" not in actions and taken["HandleNack"] == 0


def test_recovery_cases_in_the_corpus():
    """The committed simulator traces hold the recoveries the corpus is for: a command
    leader's instance recovered by another replica, two replicas recovering one
    instance at once (both reach Phase 2: Accepts of two recovery ballots), Phase 1
    again at a recovery ballot (case 4), a NOP (case 5), a restart."""
    accepts: dict[tuple, set] = {}
    seen = Counter()
    for path in EPAXOS_TRACES:
        for line in _lines(path)[1:]:
            event = json.loads(line)
            seen[event["action"]] += 1
            for item in event.get("sent", []):
                if not isinstance(item, dict):
                    continue
                message = item["message"]
                if message["type"] == "Accept" and message["ballot"][0] > 0:
                    accepts.setdefault((path.name, tuple(message["inst"])), set()).add(
                        tuple(message["ballot"]))
                    if message["batch"] == "noop":
                        seen["accept-noop"] += 1
                if message["type"] == "PreAccept" and message["ballot"][0] > 0:
                    seen["recovery-preaccept"] += 1
    assert any(len(ballots) >= 2 for ballots in accepts.values()), accepts
    assert seen["StartRecovery"] and seen["HandlePrepareOK"] and seen["Restart"]
    assert seen["accept-noop"] and seen["recovery-preaccept"]


def test_bad_epaxos_input_is_a_format_error_or_a_plain_module(tmp_path):
    """Values of an EPaxos trace replaced by odd ones (seeded, 300 cases, no TLC): each
    file is a TraceFormatError naming its line, or is planned and written as a plain
    ASCII module with no number above TLC's integers."""
    odd = [None, -1, 2**40, 10**400, "x", "\u00e9", [], {}, [1, 2], [9, 1], [0, 0, 0, 0],
           True, 1.5, {"read": 1}, [[1, 2, 3]], {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}]
    source = TRACES_DIR / "epaxos-sim-seed57-concurrent-recoveries-noop-nack.ndjson"
    lines = [json.loads(line) for line in _lines(source)[:80]]
    template = (CONFORMANCE_DIR / "TraceEPaxos.tla").read_text(encoding="utf-8")
    rng = random.Random(9)

    def paths(value, prefix=()):
        yield prefix
        if isinstance(value, dict):
            for key, item in value.items():
                yield from paths(item, prefix + (key,))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                yield from paths(item, prefix + (index,))

    formats = 0
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
            formats += 1
            continue
        assert text.isascii()
        assert all(int(n) <= 2**31 - 1 for n in re.findall(r"\d+", text)), where
    assert formats > 100  # most edits are caught by the format checks


def test_malformed_epaxos_line_exits_2_with_its_line(tmp_path, capsys):
    """An instance id naming a replica the cluster lacks, and a deps vector of the wrong
    length, are bad input: exit status 2, FILE:LINE, no traceback."""
    source = _lines(TRACES_DIR / "epaxos-sim-seed21-fast-slow-paths.ndjson")[:6]
    for edit, reason in ((lambda e: e["state"].update(inst=[5, 1]), "names replica 5 of 3"),
                         (lambda e: e["state"].update(deps=[0, 0]), "2 entries for 3 replicas")):
        event = json.loads(source[1])
        edit(event)
        path = tmp_path / "bad.ndjson"
        path.write_text("\n".join([source[0], json.dumps(event)] + source[2:]) + "\n",
                        encoding="utf-8")
        assert main(["conformance", "check", str(path)]) == 2
        err = capsys.readouterr().err
        assert f"{path}:2:" in err and reason in err, err
        assert "Traceback" not in err


def test_five_replica_trace_with_timed_out_slow_path():
    """The committed corpus holds a 5-replica trace (F = 2, fast quorum 4) in which leaders
    whose PreAccept timed out with F unchanged replies take the slow path: each
    PreAcceptTimeout line is planned as a step that must reach the accepted state its
    Accepts show (TraceEPaxos.tla's PreAcceptTimeoutStep), not a stutter."""
    from lowpaxos.conformance import epaxos_format

    path = TRACES_DIR / "epaxos-sim-seed92-5-replicas-timeout-slow-path.ndjson"
    trace = load_trace(path)
    assert trace.replicas == 5
    plans = [p for p in epaxos_format.plan_steps(trace) if p.event.action == "PreAcceptTimeout"]
    assert len(plans) >= 3
    for plan in plans:
        assert plan.spec_action == "PreAcceptTimeout" and plan.check
        assert plan.pre.status == "preaccepted" and plan.state.status == "accepted"
