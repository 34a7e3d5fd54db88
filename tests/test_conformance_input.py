"""Bad input to the trace checker: malformed traces are exit status 2 with FILE:LINE,
never a traceback; no number in a trace sizes the model; a reordered trace diverges
at the line where causality breaks (issue 12, point 5).

The Hypothesis tests feed garbage and mutated traces to the checker's whole Python
path (read, validate, plan the spec steps, write the TLA+ module and configuration),
which is everything before TLC; a few cases go through the whole CLI with TLC.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lowpaxos.cli import main
from lowpaxos.conformance.check import CONFORMANCE_DIR
from lowpaxos.conformance.cli import BAD_DIR, TRACES_DIR
from lowpaxos.conformance.tlagen import plan_steps, write_config, write_module
from lowpaxos.conformance.trace import NUMBER_MAX, TraceFormatError, load_trace

assert shutil.which("java") is not None, "TLC needs java: run the suite through `make test`"

TEMPLATE = (CONFORMANCE_DIR / "TraceLowPaxos.tla").read_text(encoding="utf-8")
# A short real trace (the first 60 lines of a simulator run with a crash and a transfer)
# to mutate, and the hand-written 11-line trace for the runs through TLC.
SEED_LINES = (TRACES_DIR / "sim-seed2-crash-transfer.ndjson").read_text(encoding="utf-8") \
    .splitlines()[:60]
SMALL = BAD_DIR / "quorums_disjoint_agreement.ndjson"
FUZZ = settings(max_examples=max(100, settings.default.max_examples), deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def _prepare(path: Path):
    """Everything the checker does before TLC; returns (trace, plans, module, config)."""
    trace = load_trace(path)
    plans = plan_steps(trace)
    module, model = write_module(trace, plans, "TraceCheck", TEMPLATE)
    config = write_config(model, model.safety_invariants)
    return trace, plans, module, model, config


def _assert_bounded(trace, plans, module: str, model) -> None:
    """What reaches TLC is plain ASCII, every number in it fits TLC's integers, and the
    model's bounds come from the trace's extent, not from the numbers it holds."""
    assert module.isascii()
    assert all(int(n) <= NUMBER_MAX for n in re.findall(r"\d+", module))
    proposes = sum(1 for e in trace.events if e.action == "Propose")
    assert model.max_slot <= proposes + 1
    assert model.max_round <= max(1, len(trace.events) * 3)
    assert 1 <= model.replicas <= 9 and 2 <= model.q1 <= model.replicas


def _check_path(path: Path) -> None:
    """The checker's Python path either accepts the file (bounded) or names a line."""
    try:
        trace, plans, module, model, _config = _prepare(path)
    except TraceFormatError as error:
        assert str(error).startswith(f"{path}:{error.line}: "), str(error)
        assert error.line >= 1 and error.reason
        return
    _assert_bounded(trace, plans, module, model)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70)
    | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
odd_values = st.one_of(
    json_values,
    st.integers(min_value=NUMBER_MAX - 2, max_value=10**30),
    st.sampled_from([10**7, 10**12, -1, 0, 2**31, "b\u00e9t", "b\x01", 'b"x', "", "noop",
                     "x" * 65, [1, 0], [10**9, 0], [1, 9], [1, -2], {"type": "Accept"}]),
    st.integers(min_value=10, max_value=3000).map(lambda n: json.loads("[" * n + "]" * n)
                                                  if n < 900 else "[" * n + "]" * n),
)


def _paths(obj, prefix=()):
    """Every (path to a value) in a JSON object, for mutation."""
    yield prefix
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(obj, list):
        for index, value in enumerate(obj):
            yield from _paths(value, prefix + (index,))


@FUZZ
@given(data=st.binary(max_size=400))
def test_random_bytes_are_malformed_at_a_line(tmp_path_factory, data):
    """Random bytes as a trace file: always a TraceFormatError naming a line (exit 2)."""
    path = tmp_path_factory.mktemp("fuzz") / "bytes.ndjson"
    path.write_bytes(data)
    with pytest.raises(TraceFormatError) as error:
        _prepare(path)
    assert str(error.value).startswith(f"{path}:{error.value.line}: ")


@FUZZ
@given(objects=st.lists(json_values, min_size=1, max_size=6))
def test_random_json_lines_are_malformed_at_a_line(tmp_path_factory, objects):
    """Random JSON values, one per line: always a TraceFormatError naming a line."""
    path = tmp_path_factory.mktemp("fuzz") / "json.ndjson"
    path.write_text("\n".join(json.dumps(o) for o in objects) + "\n", encoding="utf-8")
    with pytest.raises(TraceFormatError) as error:
        _prepare(path)
    assert str(error.value).startswith(f"{path}:{error.value.line}: ")


@FUZZ
@given(data=st.data())
def test_mutated_valid_traces_never_crash_the_checker(tmp_path_factory, data):
    """A real trace with a few values replaced (huge numbers, deep nesting, odd strings,
    wrong types, keys removed, lines swapped or raw text spliced in): the checker either
    names the line (exit 2) or accepts it with a model bounded by the trace's extent."""
    lines = list(SEED_LINES)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        index = data.draw(st.integers(0, len(lines) - 1), label="line")
        kind = data.draw(st.sampled_from(["replace", "delete", "swap", "raw"]), label="kind")
        if kind == "swap":
            other = data.draw(st.integers(0, len(lines) - 1), label="other line")
            lines[index], lines[other] = lines[other], lines[index]
            continue
        if kind == "raw":
            lines[index] = data.draw(st.sampled_from([
                "[" * 5000, '{"action": "Crash", "replica": 0, "x": ' + "[" * 2000 + "]" * 2000 + "}",
                '{"action": "Crash", "replica": 1' + "0" * 5000 + "}", "\x00\x01", "{}",
                '{"meta": {"replicas": 3}}', "NaN", '{"action": "Crash", "replica": 0.5}']))
            continue
        try:
            obj = json.loads(lines[index])
        except (ValueError, RecursionError):  # a line spliced in before
            continue
        paths = [p for p in _paths(obj) if p]
        if not paths:
            continue
        path = data.draw(st.sampled_from(paths), label="path")
        parent = obj
        for key in path[:-1]:
            parent = parent[key]
        if kind == "delete" and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            value = data.draw(odd_values, label="value")
            if isinstance(value, str) and value.startswith("[["):
                lines[index] = lines[index].replace('"replica":', '"x":' + value + ',"replica":', 1)
                continue
            parent[path[-1]] = value
        lines[index] = json.dumps(obj)
    target = tmp_path_factory.mktemp("fuzz") / "mutated.ndjson"
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    _check_path(target)


@pytest.mark.parametrize("meta, reason", [
    ({"replicas": 3, "q1": "2", "q2": 2}, "meta.q1 must be a quorum size in 1..3, got '2'"),
    ({"replicas": 3, "q1": 2, "q2": 0}, "meta.q2 must be a quorum size in 1..3, got 0"),
    ({"replicas": 3, "q1": 1, "q2": 3}, "the spec does not model |Q1| = 1"),
    ({"replicas": 0}, "meta.replicas must be a whole number in 1..9, got 0"),
    ({"replicas": True}, "meta.replicas must be a whole number in 1..9, got True"),
    ({"protocol": "raft"}, "meta.protocol 'raft' has no conformance mapping"),
    ({"replicas": 3, "q1": 4}, "meta.q1 must be a quorum size in 1..3, got 4"),
])
def test_meta_line_is_validated(tmp_path, capsys, meta, reason):
    """The meta line's values are checked, never silently replaced: exit 2 at line 1."""
    lines = SMALL.read_text(encoding="utf-8").splitlines()
    lines[0] = json.dumps({"meta": meta})
    path = tmp_path / "meta.ndjson"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert main(["conformance", "check", str(path)]) == 2
    error = capsys.readouterr().err
    assert f"{path}:1: " in error and reason in error and "Traceback" not in error, error


@pytest.mark.parametrize("edit, line, reason", [
    (lambda e: e["state"]["log"].update({"1": [[1, 0], "b\u00e9\x01"]}), 6, "must be a batch id"),
    (lambda e: e["state"].update(commit_index=10**40), 6, "state.commit_index must be a natural"),
    (lambda e: e.update(deep=json.loads("[" * 500 + "]" * 500)), 6, "nested deeper than"),
])
def test_malformed_values_exit_2_through_the_cli(tmp_path, capsys, edit, line, reason):
    """A batch id with control characters, a number beyond TLC's integers, deeply nested
    JSON: exit status 2 with FILE:LINE and the reason, never a traceback."""
    lines = SMALL.read_text(encoding="utf-8").splitlines()
    event = json.loads(lines[line - 1])
    edit(event)
    lines[line - 1] = json.dumps(event)
    path = tmp_path / "bad.ndjson"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert main(["conformance", "check", str(path)]) == 2
    error = capsys.readouterr().err
    assert f"{path}:{line}: " in error and reason in error and "Traceback" not in error, error


def test_a_handlepromise_line_that_ends_in_becomeleader_is_compared(tmp_path, capsys):
    """The line of a HandlePromise whose step ends in BecomeLeader logs the state before
    the election; it is compared with the spec state before the step (it once was not,
    and an Agreement-violating state there conformed: traces/bad/promise_line_disagrees).
    Here replica 2's HandlePromise line claims slot 1 committed with replica 0's value in
    replica 2's ballot: rejected at that line, with the fields that differ."""
    lines = SMALL.read_text(encoding="utf-8").splitlines()
    event = json.loads(lines[8])
    assert event["action"] == "HandlePromise" and '"BecomeLeader"' in lines[9]
    event["state"].update(commit_index=1, log={"1": [[1, 2], "bset-x-1"]})
    lines[8] = json.dumps(event)
    path = tmp_path / "promise.ndjson"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert main(["conformance", "check", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"{path}:9: event 8 (HandlePromise at replica 2) is not a step" in out, out
    assert "commit_index: spec 0, trace 1" in out and "log[1]: spec (empty)" in out, out


def test_a_huge_commit_index_diverges_without_sizing_the_model(tmp_path, capsys):
    """A commit index of 10^7 (which once sized the model to 5.7 GB) is a slot no spec
    state has: the model's MaxSlot stays at the trace's extent, and TLC rejects the
    trace at that line (exit 1) in seconds."""
    lines = SMALL.read_text(encoding="utf-8").splitlines()
    event = json.loads(lines[5])
    event["state"]["commit_index"] = 10**7
    lines[5] = json.dumps(event)
    path = tmp_path / "huge.ndjson"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    _trace, _plans, _module, model, _config = _prepare(path)
    assert model.max_slot == 3 and model.max_round == 1  # two Propose events
    assert main(["conformance", "check", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"{path}:6: event 5 (Propose at replica 0) is not a step" in out, out
    assert "state.commit_index is 10000000, and no spec state has that slot" in out, out


def test_a_reordered_trace_diverges_where_causality_breaks(tmp_path, capsys):
    """BecomeLeader moved before the HandlePromise that completes its quorum is a
    divergence at the BecomeLeader line (exit 1, with why), not a malformed file."""
    lines = SMALL.read_text(encoding="utf-8").splitlines()
    lines[3], lines[4] = lines[4], lines[3]  # BecomeLeader (line 5) now before HandlePromise
    path = tmp_path / "reordered.ndjson"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert main(["conformance", "check", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"{path}:4: event 3 (BecomeLeader at replica 0) is not a step" in out, out
    assert "it must come right after the HandlePromise of replica 0" in out, out


def test_rounds_are_renumbered_by_order(tmp_path):
    """Rounds 7 and 10^6 in a trace become model rounds 1 and 2: MaxRound is the number of
    distinct rounds, and no large number reaches the TLA+ module (no TLC run)."""
    text = SMALL.read_text(encoding="utf-8").replace("[1,0]", "[7,0]").replace("[1,2]", "[1000000,2]")
    path = tmp_path / "rounds.ndjson"
    path.write_text(text, encoding="utf-8")
    trace, _plans, module, model, _config = _prepare(path)
    assert trace.rounds == {0: 0, 7: 1, 1000000: 2} and model.max_round == 2
    assert "1000000" not in module
