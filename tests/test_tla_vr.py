"""spec/VR.tla (VR Revisited, issue 8), checked by TLC through lowpaxos.tla.

The CI model, the reachability witness of three view changes and the three
broken variants run here, through the same runner as ``make check-spec``
(``lowpaxos.tla.checks.VR_CHECKS``); the diskless and deep models run only in
make check-spec / check-spec-deep, as does the CI model with lagging commit
hints (VR_lagging). docs/spec.md has the states, depth and
seconds of each.
"""

from __future__ import annotations

import pytest

from lowpaxos.tla.checks import CHECKS, VR_CHECKS, Expect
from lowpaxos.tla.tlc import Outcome

# What the error trace of each broken variant must go through, beyond the named
# invariant: the step that the bug is in, so that a variant caught for another
# reason fails here.
BUG_STEP = {
    # The new primary takes the longer log of an older view.
    "broken/VROpNumberOnly": "StartView",
    # A diskless primary recovers without its own (the latest view's primary's) response.
    "broken/VRRecoveryWithoutPrimary": "HandleRecoveryResponse",
    # A replica cuts its log on news of a later view (a Commit or a Prepare) and
    # claims that view's log as its own.
    "broken/VRTruncateOnLaterView": ("HandleCommit", "HandlePrepare"),
    # The recovery bug again, with the invariants that catch it first left out of the
    # configuration, so that each safety check is shown able to fail.
    "broken/VRRecoveryWithoutPrimary (opsagree)": "HandleRecoveryResponse",
    "broken/VRRecoveryWithoutPrimary (refinement)": "HandleRecoveryResponse",
}
# Run by make check-spec only, to keep make test's share small (about 110,000 states).
CHECK_SPEC_ONLY = {"broken/VROpNumberOnly (prefixes)"}

VR_VARIABLES = {"view", "status", "last_normal_view", "log", "commit", "nonce", "msgs", "applied",
                "requested", "committedOps"}


def _check(name: str):
    return next(c for c in VR_CHECKS if c.name == name)


def test_vr_checks_are_registered_with_make_check_spec() -> None:
    """python -m lowpaxos.tla check runs the VR models: they are in CHECKS."""
    assert set(VR_CHECKS) <= set(CHECKS)
    assert {c.name for c in VR_CHECKS if c.expect is Expect.VIOLATION and c.name.startswith("broken/")} \
        == set(BUG_STEP) | CHECK_SPEC_ONLY


def test_vr_ci_model_passes() -> None:
    """TLC explores the CI model of spec/VR.cfg completely (3 replicas, views 0..3,
    a diskless replica that may crash once and recover, two sync replicas): TypeOK,
    the committed-op invariants and the refinement of ReplicatedLog hold."""
    check = _check("VR")
    result = check.run(workers=2)
    assert result.outcome is Outcome.OK, (result.outcome, result.violated_invariant, result.errors)
    assert result.distinct_states is not None and result.distinct_states > 10_000
    assert result.depth is not None and result.depth > 20


def test_vr_ci_model_reaches_three_view_changes() -> None:
    """The CI model's constants with the invariant "no replica is ever normal in view 3":
    TLC must refute it, with a trace in which three view changes complete (three
    StartView steps, views 1, 2 and 3)."""
    check = _check("VR_views3")
    result = check.run(workers=2)
    good, verdict = check.verdict(result)
    assert good, (verdict, result.errors)
    assert result.error_actions.count("StartView") >= 3, result.error_actions
    assert VR_VARIABLES <= set(result.error_trace[-1])


@pytest.mark.parametrize("name", sorted(BUG_STEP))
def test_vr_broken_variant_is_caught(name: str) -> None:
    """Each broken variant in spec/broken/VR*.tla makes TLC report the safety
    invariant (or the refinement property) named for it, with an error trace through
    the step the bug is in;
    the same model without the bug passes (test_vr_ci_model_passes and make
    check-spec cover the unbroken spec)."""
    check = _check(name)
    result = check.run(workers=2)
    good, verdict = check.verdict(result)
    assert good, (verdict, result.errors)
    steps = BUG_STEP[name] if isinstance(BUG_STEP[name], tuple) else (BUG_STEP[name],)
    assert any(step in result.error_actions for step in steps), result.error_actions
