"""Spec-driven test generation (docs/spec-replay.md): behaviours TLC generates from
spec/LowPaxos.tla drive real LowPaxos cores step by step, and after every step the
cores' mapped state and sent messages must be the spec's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lowpaxos.specreplay.generate import generate, tla_to_python
from lowpaxos.specreplay.models import MODELS
from lowpaxos.specreplay.replay import (Divergence, ReplayStats, coverage_gaps, coverage_report,
                                        load, replay, run, save, spec_actions)
from lowpaxos.tla.checks import SPEC_DIR

ROOT = Path(__file__).resolve().parents[1]
# The CI profile: 6,000 random walks of 20 steps drawn from the model's mixes
# (ReplayLowPaxos.tla, MixTable); a walk prints about 2.5 behaviours (the last
# step's siblings, see generate.py), of which about 1.9 are distinct: 11,486 with
# seed 1 (docs/spec-replay.md), so over 10,000.
CI_WALKS = 6000
CI_DEPTH = 20
CI_BEHAVIOURS_MIN = 10_000


@pytest.fixture(scope="module")
def generated():
    model = MODELS["lowpaxos"]()
    behaviours, _ = generate(model.model, CI_WALKS, CI_DEPTH, seed=1)
    return model, behaviours


def test_ci_profile_replays_every_behaviour(generated, tmp_path):
    """At least 10,000 distinct behaviours of depth 20, thousands with two ballots competing,
    replay against the cores with no divergence, and every action of the spec's Next
    is replayed (but the exceptions the adapter lists, each with its reason)."""
    model, behaviours = generated
    stats = run(behaviours, model.adapter, save_dir=tmp_path, stop_after=3)
    print(stats.summary())
    print(coverage_report(stats, model.adapter, SPEC_DIR))
    assert not stats.divergences, "a core diverges from spec/LowPaxos.tla (saved under " \
        f"{tmp_path}):\n" + "\n\n".join(d.report() for d in stats.divergences)
    assert stats.distinct >= CI_BEHAVIOURS_MIN, stats.summary()
    assert min(stats.depths) >= 20, stats.summary()
    # Two ballots compete in 2,579 of 11,486 (the phase2 and recovery mixes elect one
    # at a time); the bound leaves room for changes of the spec.
    assert stats.competing >= stats.distinct // 8, stats.summary()
    gaps = coverage_gaps(stats, model.adapter, SPEC_DIR)
    assert not gaps, f"spec actions never replayed: {gaps}\n" + \
        coverage_report(stats, model.adapter, SPEC_DIR)


def test_coverage_is_counted_against_the_spec():
    """The action list comes from the spec's Next (all 21 of spec/LowPaxos.tla); an action
    with no replayed step is a gap unless the adapter gives the reason it is not replayed."""
    model = MODELS["lowpaxos"]()
    actions = spec_actions(SPEC_DIR / model.adapter.SPEC)
    assert len(actions) >= 21 and actions[0] == "StartElection" and "LoseMessage" in actions
    assert set(model.adapter.NOT_REPLAYED) <= set(actions)
    stats = ReplayStats()
    stats.actions.update({a: 1 for a in actions if a != "HandleCatchupReply"})
    assert coverage_gaps(stats, model.adapter, SPEC_DIR) == ["HandleCatchupReply"]
    assert "HandleCatchupReply" in coverage_report(stats, model.adapter, SPEC_DIR)


def test_a_log_cut_and_an_install_are_checked(generated):
    """The cut and the transfer are replayed, not only counted: a TruncateLog or an
    InstallSnapshot whose logStart (or commit index) is changed diverges at that step."""
    model, behaviours = generated
    for action, variable, name in (("TruncateLog", 4, "logStart"),
                                   ("InstallSnapshot", 3, "commitIndex")):
        behaviour = next(b for b in behaviours if any(s.action == action for s in b.steps))
        index = next(i for i, s in enumerate(behaviour.steps) if s.action == action)
        replay(behaviour, model.adapter)  # as generated, it replays
        post = list(behaviour.steps[index].post)
        post[variable] -= 1
        with pytest.raises(Divergence) as raised:
            replay(_edited(behaviour, index, tuple(post)), model.adapter)
        assert raised.value.step_index == index, raised.value.report()
        assert f"{name} differs" in raised.value.reason, raised.value.report()


def _edited(behaviour, index: int, post: tuple):
    steps = list(behaviour.steps)
    step = steps[index]
    steps[index] = type(step)(step.action, step.replica, step.param, step.sent, post)
    return type(behaviour)(tuple(steps))


def test_a_state_the_core_does_not_reach_is_a_divergence(generated):
    """The check can fail: a behaviour whose commit index (or role) after one step is
    changed diverges exactly at that step, and the report names the variable."""
    model, behaviours = generated
    behaviour = next(b for b in behaviours if any(s.action == "HandleAccept" for s in b.steps))
    index = next(i for i, s in enumerate(behaviour.steps) if s.action == "HandleAccept")
    post = list(behaviour.steps[index].post)
    post[0] = "candidate" if post[0] != "candidate" else "follower"
    with pytest.raises(Divergence) as raised:
        replay(_edited(behaviour, index, tuple(post)), model.adapter)
    assert raised.value.step_index == index
    assert "role differs" in raised.value.reason
    post = list(behaviour.steps[index].post)
    post[3] += 1
    with pytest.raises(Divergence) as raised:
        replay(_edited(behaviour, index, tuple(post)), model.adapter)
    assert "commitIndex differs" in raised.value.reason


def test_a_message_no_core_sent_is_a_divergence(generated):
    """A spec step that claims a send the core did not make fails at that step."""
    model, behaviours = generated
    behaviour = next(b for b in behaviours if b.steps[0].action == "StartElection")
    step = behaviour.steps[0]
    forged = frozenset({("Prepare", step.replica, (9, step.replica), 0)})
    steps = (type(step)(step.action, step.replica, step.param, forged, step.post),) + behaviour.steps[1:]
    with pytest.raises(Divergence) as raised:
        replay(type(behaviour)(steps), model.adapter)
    assert raised.value.step_index == 0 and "no core sent it" in raised.value.reason


def test_saved_behaviour_replays_and_bad_files_are_refused(generated, tmp_path):
    """A behaviour saved as a test case replays from its file (exit 0); a malformed
    file is exit 2 with FILE:LINE, never a traceback."""
    model, behaviours = generated
    path = tmp_path / "case.json"
    save(behaviours[0], path)
    assert load(path) == behaviours[0]
    env = dict(os.environ, PYTHONPATH=str(ROOT / "impl"))
    ok = subprocess.run([sys.executable, "-m", "lowpaxos.cli", "spec-replay", "replay", str(path)],
                        capture_output=True, text=True, env=env, timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(["StartElection", 1]) + "\n")
    refused = subprocess.run([sys.executable, "-m", "lowpaxos.cli", "spec-replay", "replay", str(bad)],
                             capture_output=True, text=True, env=env, timeout=120)
    assert refused.returncode == 2 and f"{bad}:1:" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr


def test_dump_reader():
    """TLC's printed values come back as Python tuples, frozensets, ints, strings."""
    value = tla_to_python('<< "A", {}, {<<1, 2>>}, <<>>, TRUE, << <<"x">> >> >>')
    assert value == ("A", frozenset(), frozenset({(1, 2)}), (), True, (("x",),))
