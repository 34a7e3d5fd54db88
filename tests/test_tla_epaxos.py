"""spec/EPaxos.tla (issue 9), checked by TLC through lowpaxos.tla.

The same runner as ``make check-spec`` (``lowpaxos.tla.checks.EPAXOS_CHECKS``):
the CI model passes (long: tests/conftest.py LONG_TESTS), two concurrent
recoveries of one instance are reachable in it, and each negative check ends
with TLC reporting the invariant its bug breaks, through the step the bug is
in. EPaxos_recoveries (three recoveries, rounds up to 2) runs in make
check-spec only. docs/spec.md has the states and seconds of each.
"""

from __future__ import annotations

import pytest

from lowpaxos.tla.checks import CHECKS, EPAXOS_CHECKS, Expect
from lowpaxos.tla.tlc import Outcome

# What the error trace of each negative check must go through, beyond the
# named invariant: the step that the bug is in.
BUG_STEP = {
    # One ballot variable: a recovery that sees two accepted values at "the same"
    # ballot picks the one never chosen and commits it through Phase 2.
    "broken/EPaxosSingleBallot": "HandleAcceptOK",
    # The leader commits on the fast path with no other replica's agreement.
    "broken/EPaxosFastQuorumTooSmall": "HandlePreAcceptOK",
    "broken/EPaxosFastQuorumTooSmall (execution)": "HandlePreAcceptOK",
    # A committed replica goes back to accepted on an Accept.
    "broken/EPaxosAcceptAfterCommit": "HandleAccept",
    # Case 5 of a recovery commits a client command where nobody held one.
    "broken/EPaxosInventedCommand": "HandlePrepareOK",
}
# Slow ones (about a minute each on two shared cores): tests/conftest.py LONG_TESTS.
LONG = {"broken/EPaxosSingleBallot"}

EPAXOS_VARIABLES = {"status", "ballot", "vballot", "cmd", "seq", "deps", "unchanged", "executed",
                    "msgs", "proposed", "committedValues"}


def _check(name: str):
    return next(c for c in EPAXOS_CHECKS if c.name == name)


def test_epaxos_checks_are_registered_with_make_check_spec() -> None:
    """python -m lowpaxos.tla check runs the EPaxos models: they are in CHECKS."""
    assert set(EPAXOS_CHECKS) <= set(CHECKS)
    assert {c.name for c in EPAXOS_CHECKS if c.name.startswith("broken/")} == set(BUG_STEP)
    assert all(c.expect is Expect.VIOLATION for c in EPAXOS_CHECKS if c.name.startswith("broken/"))


def test_epaxos_ci_model_passes() -> None:
    """TLC explores the CI model of spec/EPaxos.cfg completely (3 replicas, two writes
    on one key, recoveries of replica 1's instance by replicas 2 and 3): TypeOK,
    Nontriviality, Agreement, Consistency, the per-key execution invariant and the
    Stability property hold."""
    result = _check("EPaxos").run(workers=2)
    assert result.outcome is Outcome.OK, (result.outcome, result.violated_invariant, result.errors)
    assert result.distinct_states is not None and result.distinct_states > 50_000
    assert result.depth is not None and result.depth > 15


def test_epaxos_ci_model_reaches_two_concurrent_recoveries() -> None:
    """The CI model's constants with NoConcurrentRecoveries: TLC must refute it, with
    a trace in which replicas 2 and 3 both recover replica 1's instance and both
    reach Phase 2 (two StartRecovery steps, two Accepts at recovery ballots)."""
    check = _check("EPaxos_concurrent")
    result = check.run(workers=2)
    good, verdict = check.verdict(result)
    assert good, (verdict, result.errors)
    assert result.error_actions.count("StartRecovery") >= 2, result.error_actions
    assert EPAXOS_VARIABLES <= set(result.error_trace[-1])


@pytest.mark.parametrize("name", sorted(BUG_STEP))
def test_epaxos_negative_check_is_caught(name: str) -> None:
    """Each negative check makes TLC report the safety invariant named for it, with
    an error trace through the step the bug is in; the same models without the bug
    pass (the CI model here, EPaxos_recoveries in make check-spec)."""
    check = _check(name)
    result = check.run(workers=2)
    good, verdict = check.verdict(result)
    assert good, (verdict, result.errors)
    assert BUG_STEP[name] in result.error_actions, result.error_actions
