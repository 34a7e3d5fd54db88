"""Behaviours from TLC's simulation mode.

The replay model (ReplayLowPaxos.tla for LowPaxos) keeps a history variable
``hist`` and prints it, with ``PrintT``, once a behaviour has ``Depth`` steps.
TLC 2.15 checks the invariant on every successor it computes, so the last step
of a walk is printed once for each successor of the chosen action: those are
distinct behaviours that share all but their last step, and are kept as such
(``Behaviour.prefix`` tells them apart for the counts).

TLC prints TLA+ values; the dump uses only tuples, sets, integers, strings and
booleans, so it becomes JSON by replacing brackets (sets are marked so that
they come back as frozensets), which the C JSON parser reads quickly.
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from lowpaxos.tla.checks import SPEC_DIR
from lowpaxos.tla.tlc import TlcError, run_tlc

HERE = Path(__file__).resolve().parent
MARKER = '"SPECREPLAY"'
SET_TAG = "$set"


class GenerateError(RuntimeError):
    """TLC did not produce behaviours (an error in the spec or the model, or no java)."""


@dataclass(frozen=True, slots=True)
class Step:
    action: str
    replica: int  # the spec's replica id (1-based); 0 for LoseMessage
    param: object  # the message handled, Propose's (value, targets), a slot, a hint
    sent: frozenset  # messages the step added to the network
    post: tuple  # the replica's variables after the step (the model's Vars(r))


@dataclass(frozen=True, slots=True)
class Behaviour:
    steps: tuple[Step, ...]
    # The walk mix the model drew (not part of the behaviour's identity).
    mix: str = field(default="", compare=False)

    @property
    def key(self) -> tuple:
        """What makes two behaviours the same: the actions and their parameters."""
        return tuple((s.action, s.replica, s.param, s.post) for s in self.steps)

    @property
    def prefix(self) -> tuple:
        return self.key[:-1]


def _freeze(value):
    if isinstance(value, list):
        if value and value[0] == SET_TAG:
            return frozenset(_freeze(v) for v in value[1:])
        return tuple(_freeze(v) for v in value)
    return value


_TLA_TO_JSON = [("<<", "["), (">>", "]"), ("{}", f'["{SET_TAG}"]'), ("{", f'["{SET_TAG}",'),
                ("}", "]"), ("TRUE", "true"), ("FALSE", "false")]


def tla_to_python(text: str):
    """A dumped TLA+ value (tuples, sets, numbers, strings, booleans) as Python values."""
    for old, new in _TLA_TO_JSON:
        text = text.replace(old, new)
    return _freeze(json.loads(text))


def parse_dumps(output: str) -> list[Behaviour]:
    """Every ``<<"SPECREPLAY", hist>>`` that TLC printed, in order."""
    behaviours = []
    # A dump starts at its marker and runs to the next line that starts a new
    # dump or a TLC message frame.
    starts = [m.start() for m in re.finditer(r'^<< ?"SPECREPLAY"', output, re.M)]
    for index, start in enumerate(starts):
        end = starts[index + 1] if index + 1 < len(starts) else len(output)
        frame = output.find("@!@!@", start, end)
        text = output[start: frame if frame >= 0 else end].strip()
        value = tla_to_python(text)
        steps = tuple(Step(action, replica, param, sent, post)
                      for action, replica, param, sent, post in value[1])
        behaviours.append(Behaviour(steps, value[2] if len(value) > 2 else ""))
    return behaviours


@dataclass(frozen=True, slots=True)
class Model:
    """A replay model: the TLA+ module and configuration beside this file."""

    module: str
    config: str


# Mix tables of the replay model: "all" draws from every mix (MixTable), a mix's
# name draws from that mix alone (ReplayLowPaxos.tla, "Mixes").
MIX_TABLES = {"all": "MixTable", "elections": "OnlyElections", "phase2": "OnlyPhase2",
              "recovery": "OnlyRecovery"}


def write_config(model: Model, depth: int, folder: Path, mix: str = "all") -> Path:
    """A copy of the model's configuration with Depth and the mix table set."""
    text = (HERE / model.config).read_text()
    text, count = re.subn(r"(?m)^(\s*Depth\s*=\s*)\d+", rf"\g<1>{depth}", text)
    assert count == 1, f"{model.config} sets Depth once"
    if mix not in MIX_TABLES:
        raise GenerateError(f"no mix {mix!r} (have: {', '.join(MIX_TABLES)})")
    text, count = re.subn(r"(?m)^(\s*Mixes\s*<-\s*)\w+", rf"\g<1>{MIX_TABLES[mix]}", text)
    assert count == 1, f"{model.config} sets Mixes once"
    path = folder / model.config
    path.write_text(text)
    # TLC looks the configuration up beside the module, so the module goes there too.
    (folder / model.module).write_text((HERE / model.module).read_text())
    return path


def generate(model: Model, traces: int, depth: int, seed: int, *, mix: str = "all",
             spec_dir: Path = SPEC_DIR, timeout_s: float = 900.0
             ) -> tuple[list[Behaviour], float]:
    """``traces`` random walks of ``depth`` steps from seed ``seed``: the behaviours
    TLC printed (see the module docstring) and TLC's seconds."""
    assert traces >= 1 and depth >= 1
    with tempfile.TemporaryDirectory(prefix="lowpaxos-specreplay-") as scratch:
        folder = Path(scratch)
        config = write_config(model, depth, folder, mix)
        try:
            result = run_tlc(folder / model.module, config, workers=1, timeout_s=timeout_s,
                             library_dirs=(spec_dir,), keep_output=True,
                             extra_args=("-simulate", f"num={traces}", "-depth", str(depth + 2),
                                         "-seed", str(seed)))
        except TlcError as error:
            raise GenerateError(str(error)) from error
    if result.errors:
        raise GenerateError("TLC failed on the replay model: " + result.errors[0][:2000])
    behaviours = parse_dumps(result.output)
    if not behaviours:
        raise GenerateError(f"TLC printed no behaviour ({result.outcome.value})")
    return behaviours, result.seconds
