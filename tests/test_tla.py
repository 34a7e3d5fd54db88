"""The TLA+ specification, checked by TLC through lowpaxos.tla.

The CI model takes about two minutes, each broken variant seconds to half a
minute; the parser tests take none. The bigger time-boxed models run in
make check-spec, not here.
"""

from __future__ import annotations

import functools

import pytest

from lowpaxos.tla.checks import BROKEN, CHECKS, SAFETY_CHECKS
from lowpaxos.tla.tlc import Code, Outcome, TlcResult, interpret, parse_messages, parse_state

# Captured from TLC 2.15 (-tool) on a one-variable spec whose invariant x < 3
# fails after three Next steps.
SAMPLE_VIOLATION = """\
@!@!@STARTMSG 2262:0 @!@!@
TLC2 Version 2.15 of Day Month 20?? (rev: d5b5a7f)
@!@!@ENDMSG 2262 @!@!@
@!@!@STARTMSG 2220:0 @!@!@
Starting SANY...
@!@!@ENDMSG 2220 @!@!@
Parsing file /tmp/tlatest/T.tla
Semantic processing of module T
@!@!@STARTMSG 2110:1 @!@!@
Invariant Inv is violated.
@!@!@ENDMSG 2110 @!@!@
@!@!@STARTMSG 2121:1 @!@!@
The behavior up to this point is:
@!@!@ENDMSG 2121 @!@!@
@!@!@STARTMSG 2217:4 @!@!@
1: <Initial predicate>
x = 0

@!@!@ENDMSG 2217 @!@!@
@!@!@STARTMSG 2217:4 @!@!@
2: <Next line 5, col 9 to line 5, col 27 of module T>
x = 1

@!@!@ENDMSG 2217 @!@!@
@!@!@STARTMSG 2217:4 @!@!@
3: <Next line 5, col 9 to line 5, col 27 of module T>
x = 2

@!@!@ENDMSG 2217 @!@!@
@!@!@STARTMSG 2217:4 @!@!@
4: <Next line 5, col 9 to line 5, col 27 of module T>
x = 3

@!@!@ENDMSG 2217 @!@!@
@!@!@STARTMSG 2200:0 @!@!@
Progress(4) at 2026-11-27 07:24:12: 4 states generated (303 s/min), 4 distinct states found (303 ds/min), 0 states left on queue.
@!@!@ENDMSG 2200 @!@!@
@!@!@STARTMSG 2199:0 @!@!@
4 states generated, 4 distinct states found, 0 states left on queue.
@!@!@ENDMSG 2199 @!@!@
@!@!@STARTMSG 2194:0 @!@!@
The depth of the complete state graph search is 4.
@!@!@ENDMSG 2194 @!@!@
@!@!@STARTMSG 2186:0 @!@!@
Finished in 800ms at (2026-11-27 07:24:12)
@!@!@ENDMSG 2186 @!@!@
"""

# A state of a spec with several variables, one value spread over lines, as
# TLC prints a LowPaxos error trace.
SAMPLE_STATE = """\
3: <HandlePrepare line 155, col 1 to line 155, col 16 of module LowPaxos>
/\\ promised = <<<<1, 1>>, <<1, 1>>, <<0, 0>>>>
/\\ msgs = { [bal |-> <<1, 1>>, commitIndex |-> 0, type |-> "Prepare", from |-> 1],
  [ bal |-> <<1, 1>>, commitIndex |-> 0, type |-> "Promise", from |-> 2, to |-> 1,
    entries |-> {} ] }
/\\ role = <<"candidate", "follower", "follower">>
"""


def _check(name: str):
    return next(c for c in CHECKS if c.name == name)


@functools.lru_cache(maxsize=None)
def _broken_result(name: str) -> TlcResult:
    """One TLC run per broken variant, shared by the tests that look at it."""
    return _check(name).run(workers=2, timeout_s=300)


def test_parser_reads_outcome_figures_and_trace_by_code() -> None:
    """The sample's codes give the outcome (2110), the figures (2199, 2194) and a
    four-state trace (2217); the trace heading (2121) is not taken for an error."""
    messages = parse_messages(SAMPLE_VIOLATION)
    assert [m.code for m in messages][:2] == [2262, 2220]
    assert Code.INVARIANT_VIOLATED_BEHAVIOR in {m.code for m in messages}
    result = interpret(messages, seconds=0.8, exit_code=12)
    assert result.outcome is Outcome.INVARIANT_VIOLATED
    assert result.violated_invariant == "Inv"
    assert result.violated_property is None
    assert result.distinct_states == 4
    assert result.states_generated == 4
    assert result.depth == 4
    assert result.error_trace == [{"x": "0"}, {"x": "1"}, {"x": "2"}, {"x": "3"}]
    assert result.error_actions == ["Initial predicate", "Next", "Next", "Next"]
    assert result.errors == []


def test_parser_reads_a_multi_variable_state() -> None:
    """Each ``/\\ name = value`` starts a variable; indented lines continue its value."""
    action, variables = parse_state(SAMPLE_STATE)
    assert action == "HandlePrepare"
    assert set(variables) == {"promised", "msgs", "role"}
    assert variables["promised"] == "<<<<1, 1>>, <<1, 1>>, <<0, 0>>>>"
    assert variables["msgs"].startswith("{ [bal |-> <<1, 1>>")
    assert variables["msgs"].endswith("entries |-> {} ] }")
    assert variables["role"] == '<<"candidate", "follower", "follower">>'


def test_parser_without_success_or_violation_is_an_error() -> None:
    """Output cut off before any verdict (a killed run) is never taken for success."""
    cut = SAMPLE_VIOLATION.split("@!@!@STARTMSG 2110")[0]
    result = interpret(parse_messages(cut), seconds=1.0, exit_code=None)
    assert result.outcome is Outcome.ERROR


def test_small_configuration_passes() -> None:
    """TLC explores the CI model of spec/LowPaxos.cfg completely, log cuts and state
    transfers included: TypeOK, Agreement, the committed-prefix invariants, CutIsChosen
    and the refinement of ReplicatedLog hold."""
    check = _check("LowPaxos")
    # 1.2 M states: about 2 minutes on a quiet machine, 8 at a load average of 10; at 15
    # to 20 it did not finish in 900 s (1.1 M states), hence the generous limit.
    result = check.run(workers=2, timeout_s=1200)
    assert result.outcome is Outcome.OK, result.errors
    assert result.distinct_states is not None and result.distinct_states > 1000
    assert result.depth is not None and result.depth > 10


def test_quorums_too_small_is_caught() -> None:
    """With Q1 + Q2 = N two leaders each choose a value in the same slot, and TLC
    reports it with a trace that ends in the violating state."""
    check = _check("broken/QuorumsTooSmall")
    result = check.run(workers=2, timeout_s=300)
    assert result.outcome is Outcome.INVARIANT_VIOLATED, result.errors
    assert result.violated_invariant in SAFETY_CHECKS
    assert check.verdict(result)[0]
    assert result.error_actions[0] == "Initial predicate"
    assert "Propose" in result.error_actions
    last = result.error_trace[-1]
    assert {"promised", "log", "commitIndex", "logStart", "role", "msgs", "votes", "applied"} <= set(last)


# What each broken variant's error trace must show, beyond a safety violation: the
# step that the bug is in (so a variant caught for some other reason fails here).
BUG_STEP = {
    "broken/LowerBallot": "HandleAccept",
    "broken/PromiseBelowCut": "TruncateLog",
    "broken/PromiseOtherBallot": "HandlePromise",
    "broken/FollowerCommitSkipsGap": "HandleAccept",
    "broken/LeaderCommitSkipsGap": "HandleAccepted",
    "broken/LastPromiseValue": "HandlePromise",
    "broken/RoundOnly": "HandlePrepare",
    "broken/InstallReplaysLog": "InstallSnapshot",
}


@pytest.mark.parametrize("name", [c.name for c in BROKEN if c.name in BUG_STEP])
def test_broken_variant_is_caught(name: str) -> None:
    """Each broken variant in spec/broken/ (a bug written into the spec) makes TLC
    report a violation of a safety invariant or of the refinement, with an error
    trace through the step the bug is in."""
    check = _check(name)
    result = _broken_result(name)
    good, verdict = check.verdict(result)
    assert good, (verdict, result.errors)
    assert BUG_STEP[name] in result.error_actions, result.error_actions


def test_every_broken_variant_has_a_test() -> None:
    """No broken variant in the checks goes untested here."""
    assert {c.name for c in BROKEN} == set(BUG_STEP) | {"broken/QuorumsTooSmall"}


def test_refinement_catches_what_the_invariants_do_not() -> None:
    """A replica that installs an image but applies its own stale log entries over it:
    no invariant over logs and votes sees it (the invariants-only run of the same
    model in make check-spec passes), and the refinement mapping, which reads what
    replicas applied, does: two replicas applied different values in one slot, so
    the abstract committed log would shrink."""
    result = _broken_result("broken/InstallReplaysLog")
    assert result.outcome is Outcome.PROPERTY_VIOLATED, (result.outcome, result.violated_invariant)
    assert result.violated_property == "ImplementsReplicatedLog"


def test_a_violated_action_property_is_named_from_the_configuration(tmp_path) -> None:
    """TLC reports a violated action property by its place in the module; with one
    PROPERTY in the configuration the check names it, so that it counts as caught;
    with two it cannot tell, and leaves TLC's text (which does not count)."""
    from lowpaxos.tla.checks import _name_violated_property, config_properties

    one = tmp_path / "one.cfg"
    one.write_text("INVARIANTS\n    TypeOK\nPROPERTY ImplementsReplicatedLog\n")
    two = tmp_path / "two.cfg"
    two.write_text("PROPERTIES\n    ImplementsReplicatedLog\n    Other \\* a comment\nINVARIANT TypeOK\n")
    assert config_properties(one) == ["ImplementsReplicatedLog"]
    assert config_properties(two) == ["ImplementsReplicatedLog", "Other"]
    text = "Action property line 776, col 8 to line 776, col 95 of module LowPaxos is violated."
    result = TlcResult(Outcome.PROPERTY_VIOLATED, 10, 10, 3, 1.0, violated_property=text)
    assert _name_violated_property(result, one).violated_property == "ImplementsReplicatedLog"
    assert _name_violated_property(result, two).violated_property == text
