"""The model-checking runs behind ``make check-spec``: which module, which
configuration, and what TLC must say about it.

A good configuration must check completely with no error. A broken one must
make TLC report a violation of one of the safety invariants or of the
refinement property: a broken variant that TLC passes means the model is too
small (or the invariants too weak) to catch that bug.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

from lowpaxos.tla.tlc import Outcome, TlcResult, run_tlc

# The folder of the TLA+ sources: <repository>/spec, beside <repository>/impl.
SPEC_DIR = Path(__file__).resolve().parents[3] / "spec"

# What a broken variant may be caught by. A TypeOK failure would mean a bug in
# the spec itself, so it does not count as catching the protocol bug.
SAFETY_CHECKS = frozenset({"Agreement", "CommittedPrefixesAgree", "CommittedIsChosen", "CutIsChosen",
                           "ImplementsReplicatedLog"})


class Expect(enum.Enum):
    PASS = "pass"
    VIOLATION = "violation"


@dataclass(frozen=True, slots=True)
class SpecCheck:
    name: str
    module: str  # relative to SPEC_DIR
    config: str  # relative to SPEC_DIR
    expect: Expect
    deep: bool = False  # only with --deep
    timeout_s: float = 600.0
    # A time-boxed check explores for timeout_s and passes if TLC found no
    # violation by then, saying that the search was incomplete.
    time_boxed: bool = False

    def run(self, spec_dir: Path = SPEC_DIR, workers: int = 2, timeout_s: float | None = None) -> TlcResult:
        return run_tlc(
            spec_dir / self.module,
            spec_dir / self.config,
            workers=workers,
            timeout_s=timeout_s if timeout_s is not None else self.timeout_s,
            library_dirs=(spec_dir,),
        )

    def verdict(self, result: TlcResult) -> tuple[bool, str]:
        """Whether the result is what this check expects, and a word on it."""
        if self.expect is Expect.PASS:
            if result.outcome is Outcome.OK:
                return True, "pass"
            if result.outcome is Outcome.TIMEOUT and self.time_boxed:
                return True, f"no violation within {self.timeout_s:.0f} s (time-boxed, incomplete)"
            return False, f"FAILED: expected no error, got {_describe(result)}"
        caught = result.violated_invariant or result.violated_property
        if result.outcome.is_violation and caught in SAFETY_CHECKS:
            return True, f"caught: {caught} violated ({len(result.error_trace)} states)"
        return False, f"FAILED: expected a safety violation, got {_describe(result)}"


def _describe(result: TlcResult) -> str:
    caught = result.violated_invariant or result.violated_property
    text = result.outcome.value + (f" ({caught})" if caught else "")
    if result.errors:
        text += ": " + result.errors[0].splitlines()[0][:200]
    return text


CHECKS: tuple[SpecCheck, ...] = (
    SpecCheck("ReplicatedLog", "ReplicatedLog.tla", "ReplicatedLog.cfg", Expect.PASS, timeout_s=120),
    SpecCheck("LowPaxos", "LowPaxos.tla", "LowPaxos.cfg", Expect.PASS, timeout_s=600),
    SpecCheck(
        "broken/QuorumsTooSmall",
        "LowPaxos.tla",
        "broken/LowPaxosQuorumsTooSmall.cfg",
        Expect.VIOLATION,
        timeout_s=300,
    ),
    SpecCheck(
        "broken/LowerBallot",
        "broken/LowPaxosLowerBallot.tla",
        "broken/LowPaxosLowerBallot.cfg",
        Expect.VIOLATION,
        timeout_s=300,
    ),
    SpecCheck(
        "broken/PromiseBelowCut",
        "broken/LowPaxosPromiseBelowCut.tla",
        "broken/LowPaxosPromiseBelowCut.cfg",
        Expect.VIOLATION,
        timeout_s=300,
    ),
    # Two slots, every replica cutting its log: 15 million distinct states (depth 29)
    # in 30 minutes on 2 shared cores without completing, so this check is
    # time-boxed (docs/spec.md).
    SpecCheck(
        "LowPaxos_deep",
        "LowPaxos.tla",
        "LowPaxos_deep.cfg",
        Expect.PASS,
        deep=True,
        timeout_s=1800,
        time_boxed=True,
    ),
)
