"""The model-checking runs behind ``make check-spec``: which module, which
configuration, and what TLC must say about it.

A good configuration must check completely with no error. A broken one must
make TLC report a violation of one of the safety invariants or of the
refinement property: a broken variant that TLC passes means the model is too
small (or the invariants too weak) to catch that bug.
"""

from __future__ import annotations

import dataclasses
import enum
import re
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
        result = run_tlc(
            spec_dir / self.module,
            spec_dir / self.config,
            workers=workers,
            timeout_s=timeout_s if timeout_s is not None else self.timeout_s,
            library_dirs=(spec_dir,),
        )
        return _name_violated_property(result, spec_dir / self.config)

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


_PROPERTY_LINE = re.compile(r"^\s*PROPERT(?:Y|IES)\b(.*)$")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def config_properties(config: Path) -> list[str]:
    """The names after PROPERTY or PROPERTIES in a TLC configuration (one keyword
    per section; names may follow on the same line or on the next lines)."""
    names: list[str] = []
    in_section = False
    for line in config.read_text().splitlines():  # bounded by the file
        text = line.split("\\*", 1)[0]
        heading = _PROPERTY_LINE.match(text)
        if heading is not None:
            in_section = True
            names += _NAME.findall(heading.group(1))
        elif in_section and text.startswith((" ", "\t")):
            names += _NAME.findall(text)
        elif text.strip():
            in_section = False
    return names


def _name_violated_property(result: TlcResult, config: Path) -> TlcResult:
    """TLC names a violated action property by its place in the module ("Action
    property line 776, col 8 to ... is violated"), not by name. With one property
    in the configuration, that is the one."""
    if result.outcome is not Outcome.PROPERTY_VIOLATED or result.violated_property in SAFETY_CHECKS:
        return result
    properties = config_properties(config)
    if len(properties) != 1:
        return result
    return dataclasses.replace(result, violated_property=properties[0])


def _describe(result: TlcResult) -> str:
    caught = result.violated_invariant or result.violated_property
    text = result.outcome.value + (f" ({caught})" if caught else "")
    if result.errors:
        text += ": " + result.errors[0].splitlines()[0][:200]
    return text


def broken_variant(name: str, protocol: str = "LowPaxos", timeout_s: float = 300.0) -> SpecCheck:
    """The broken variant spec/broken/<protocol><name>.tla, checked with the
    configuration of the same name (which replaces the definition the bug is in)."""
    return SpecCheck(f"broken/{name}", f"broken/{protocol}{name}.tla", f"broken/{protocol}{name}.cfg",
                     Expect.VIOLATION, timeout_s=timeout_s)


CHECKS: tuple[SpecCheck, ...] = (
    SpecCheck("ReplicatedLog", "ReplicatedLog.tla", "ReplicatedLog.cfg", Expect.PASS, timeout_s=120),
    SpecCheck("LowPaxos", "LowPaxos.tla", "LowPaxos.cfg", Expect.PASS, timeout_s=1200),
    SpecCheck(
        "broken/QuorumsTooSmall",
        "LowPaxos.tla",
        "broken/LowPaxosQuorumsTooSmall.cfg",
        Expect.VIOLATION,
        timeout_s=300,
    ),
    broken_variant("LowerBallot"),
    broken_variant("PromiseBelowCut"),
    # Issue 12, point 2: the three bugs the CI model (one round, one slot) cannot show.
    broken_variant("PromiseOtherBallot"),
    broken_variant("FollowerCommitSkipsGap"),
    broken_variant("LeaderCommitSkipsGap"),
    # Realistic bug classes of the core (issue 12, point 1), written into the spec.
    broken_variant("LastPromiseValue"),
    broken_variant("RoundOnly"),
    # Caught by the refinement mapping only: the invariants-only run below passes.
    broken_variant("InstallReplaysLog"),
    SpecCheck(
        "broken/InstallReplaysLog (invariants only)",
        "broken/LowPaxosInstallReplaysLog.tla",
        "broken/LowPaxosInstallReplaysLog_invariants.cfg",
        Expect.PASS,
        timeout_s=1200,
    ),
    # Bigger models, time-boxed: two rounds per replica, two slots, both.
    SpecCheck("LowPaxos_rounds2", "LowPaxos.tla", "LowPaxos_rounds2.cfg", Expect.PASS,
              timeout_s=300, time_boxed=True),
    SpecCheck("LowPaxos_slots2", "LowPaxos.tla", "LowPaxos_slots2.cfg", Expect.PASS,
              timeout_s=300, time_boxed=True),
    # Two rounds and two slots, every replica cutting its log, lagging commit
    # hints: does not complete on 2 shared cores, so it is time-boxed (docs/spec.md).
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

# The broken variants, for tests/test_tla.py.
BROKEN: tuple[SpecCheck, ...] = tuple(c for c in CHECKS if c.expect is Expect.VIOLATION)


# ---- VR Revisited: spec/VR.tla (issue 8) --------------------------------------------
# Appended after BROKEN, which stays LowPaxos's list for tests/test_tla.py;
# tests/test_tla_vr.py tests these. docs/spec.md has the figures.


@dataclass(frozen=True, slots=True)
class NamedViolationCheck(SpecCheck):
    """A check that must end with TLC reporting one named invariant violated: a
    broken variant caught by the invariant its bug breaks, or a reachability
    witness (an invariant saying a state is never reached, which TLC must refute)."""

    invariant: str = ""
    # The name is the configuration's one PROPERTY, not an invariant. TLC 2.15 names a
    # violated action property by its source location, so any property violation counts.
    is_property: bool = False

    def verdict(self, result: TlcResult) -> tuple[bool, str]:
        assert self.expect is Expect.VIOLATION and self.invariant
        if self.is_property and result.outcome is Outcome.PROPERTY_VIOLATED:
            return True, f"caught: {self.invariant} violated ({len(result.error_trace)} states)"
        if result.outcome is Outcome.INVARIANT_VIOLATED and result.violated_invariant == self.invariant:
            return True, f"caught: {self.invariant} violated ({len(result.error_trace)} states)"
        return False, f"FAILED: expected {self.invariant} violated, got {_describe(result)}"


def _vr_broken(name: str, invariant: str, config: str = "", timeout_s: float = 300.0) -> NamedViolationCheck:
    """A broken variant spec/broken/VR<name>.tla with its own configuration
    (broken/VR<name><config>.cfg), caught by the invariant (or property) named."""
    label = f"broken/VR{name}" + (f" ({config.strip('_')})" if config else "")
    return NamedViolationCheck(label, f"broken/VR{name}.tla", f"broken/VR{name}{config}.cfg",
                               Expect.VIOLATION, timeout_s=timeout_s, invariant=invariant,
                               is_property=invariant == "ImplementsReplicatedLog")


VR_CHECKS: tuple[SpecCheck, ...] = (
    SpecCheck("VR", "VR.tla", "VR.cfg", Expect.PASS, timeout_s=600),
    # The CI model's constants with NeverNormalInView3: three view changes are reachable.
    NamedViolationCheck("VR_views3", "VR.tla", "VR_views3.cfg", Expect.VIOLATION, timeout_s=600,
                        invariant="NeverNormalInView3"),
    _vr_broken("OpNumberOnly", "CommittedSurvivesViewChange"),
    _vr_broken("RecoveryWithoutPrimary", "CommittedSurvivesViewChange"),
    _vr_broken("TruncateOnLaterView", "CommittedSurvivesViewChange"),
    # The same bug with the invariants that catch it first left out: each safety
    # check of VR.tla is shown able to fail.
    _vr_broken("RecoveryWithoutPrimary", "CommittedOpsAgree", "_opsagree"),
    _vr_broken("RecoveryWithoutPrimary", "ImplementsReplicatedLog", "_refinement"),
    _vr_broken("OpNumberOnly", "CommittedPrefixesAgree", "_prefixes"),
    # Not in make test: every replica diskless; the CI model with lagging commit hints.
    SpecCheck("VR_diskless", "VR.tla", "VR_diskless.cfg", Expect.PASS, timeout_s=900),
    SpecCheck("VR_lagging", "VR.tla", "VR_lagging.cfg", Expect.PASS, timeout_s=900),
    SpecCheck("VR_deep", "VR.tla", "VR_deep.cfg", Expect.PASS, deep=True, timeout_s=1800,
              time_boxed=True),
)

CHECKS = CHECKS + VR_CHECKS


# ---- EPaxos: spec/EPaxos.tla (issue 9) ------------------------------------------------
# tests/test_tla_epaxos.py tests these; docs/spec.md (EPaxos) has the figures.


def _epaxos_broken(name: str, invariant: str, module: str = "", config: str = "",
                   timeout_s: float = 600.0) -> NamedViolationCheck:
    """A negative check of spec/EPaxos.tla: the configuration
    spec/broken/EPaxos<name><config>.cfg, run against spec/broken/EPaxos<module>.tla (a
    broken variant) or, with no module, against spec/EPaxos.tla itself (a bad
    constant); caught by the invariant (or, for Stability, the property) named."""
    tla = f"broken/EPaxos{module}.tla" if module else "EPaxos.tla"
    label = f"broken/EPaxos{name}" + (f" ({config.strip('_')})" if config else "")
    return NamedViolationCheck(label, tla, f"broken/EPaxos{name}{config}.cfg", Expect.VIOLATION,
                               timeout_s=timeout_s, invariant=invariant, is_property=invariant == "Stability")


EPAXOS_CHECKS: tuple[SpecCheck, ...] = (
    # The CI model: 3 replicas, two writes on one key, two concurrent recoveries of
    # replica 1's instance (replicas 2 and 3).
    SpecCheck("EPaxos", "EPaxos.tla", "EPaxos.cfg", Expect.PASS, timeout_s=1200),
    # The CI model's constants with NoConcurrentRecoveries: TLC must refute it (two
    # recoveries of one instance from two replicas each reach Phase 2).
    NamedViolationCheck("EPaxos_concurrent", "EPaxos.tla", "EPaxos_concurrent.cfg", Expect.VIOLATION,
                        timeout_s=600, invariant="NoConcurrentRecoveries"),
    # Three recoveries of one instance (rounds up to 2) after its leader's PreAccept
    # is lost: passes; with one ballot variable (Sutra 2019) two values are committed.
    SpecCheck("EPaxos_recoveries", "EPaxos.tla", "EPaxos_recoveries.cfg", Expect.PASS, timeout_s=1200),
    _epaxos_broken("SingleBallot", "Agreement", module="SingleBallot"),
    # A fast quorum one too small (3 replicas: the leader alone).
    _epaxos_broken("FastQuorumTooSmall", "Consistency"),
    # The same with Consistency left out: the per-key execution invariant catches it.
    _epaxos_broken("FastQuorumTooSmall", "ExecutionAgrees", config="_execution"),
    # A committed replica takes a later Accept (Stability), a recovery fills a gap
    # with a client command (Nontriviality): each safety check is shown able to fail.
    _epaxos_broken("AcceptAfterCommit", "Stability", module="AcceptAfterCommit"),
    _epaxos_broken("InventedCommand", "Nontriviality", module="InventedCommand"),
)

CHECKS = CHECKS + EPAXOS_CHECKS
