"""Replay a spec behaviour against real cores, step by step.

The protocol-independent part: the network of messages the spec step sends
(each mapped to the core message that carries it), the checks after every
step, and the counts. What a spec action means to a core is the protocol's
adapter (``lowpaxos.specreplay.lowpaxos_adapter`` for LowPaxos):

* ``apply(step, deliver, waiting)`` takes the step at the core(s): it
  delivers the message the step handles (``deliver`` gives the core message
  that carries it), ticks with a timer due, hands in a client request, or
  restarts a core from its durable state, and returns the core's sends and
  trace events (``waiting(content)``: a core sent that content ahead of the
  spec, so the step needs no core input);
* ``message(sender, target, message)`` is a core message in the spec's
  encoding, split into its content and its target;
* ``split(spec_message)`` is the same for a message of the spec;
* ``compare(replica, spec_vars)`` lists the variables where a core differs;
* ``UNMODELLED_SENDS``: kinds of core message the spec has no step for, or
  sends in a step of its own later (they wait in a pool until it does);
* ``WIDER_DELIVERY``: kinds of spec message that may reach a replica the core
  did not address (documented in docs/spec-replay.md).

A divergence names the step, the action list so far and the first difference.
"""

from __future__ import annotations

import collections
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from lowpaxos.specreplay.generate import Behaviour, Step


@dataclass
class Divergence(Exception):
    behaviour: Behaviour
    step_index: int  # 0-based
    reason: str

    def report(self) -> str:
        lines = [f"spec replay diverged at step {self.step_index + 1} of {len(self.behaviour.steps)}: "
                 f"{self.reason}", "behaviour (spec replica ids, 1-based):"]
        for index, step in enumerate(self.behaviour.steps[: self.step_index + 1]):
            mark = ">>" if index == self.step_index else "  "
            param = "" if step.param == () else f" {format_value(step.param)}"
            lines.append(f"{mark} {index + 1:3d}. {step.action}({step.replica}){param}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.report()


def format_value(value) -> str:
    if isinstance(value, frozenset):
        return "{" + ", ".join(sorted(format_value(v) for v in value)) + "}"
    if isinstance(value, tuple):
        return "<<" + ", ".join(format_value(v) for v in value) + ">>"
    return json.dumps(value) if isinstance(value, str) else str(value)


@dataclass
class Outcome:
    """What a core step did: its sends as (sender, target, message) and its trace events."""

    sends: list = field(default_factory=list)
    events: list = field(default_factory=list)
    took_step: bool = True  # False when the spec step needed no core input


def replay(behaviour: Behaviour, adapter_factory, seed: int = 0) -> dict:
    """Replay one behaviour; raise Divergence on the first difference. Returns counts
    of the abstractions used (deliveries beyond the core's targets and the like)."""
    adapter = adapter_factory(seed)
    # spec message -> (sender, core message, the targets the core sent it to)
    network: dict = {}
    pool: dict = {}  # unmodelled sends waiting: content -> (sender, core message, targets)
    ever_sent: set = set()  # every content the spec has sent in this behaviour
    counts: collections.Counter = collections.Counter()
    for index, step in enumerate(behaviour.steps):  # bounded by the behaviour's length

        def fail(reason: str) -> None:
            raise Divergence(behaviour, index, reason)

        def deliver(message, target: int):
            carried = network.get(message)
            if carried is None:
                fail(f"the spec handles {format_value(message)}, which no core sent")
            sender, core_message, targets = carried
            if target not in targets:
                kind = message[0]
                if kind not in adapter.WIDER_DELIVERY:
                    fail(f"the spec delivers {format_value(message)} to {target}; the core sent it "
                         f"to {sorted(targets)} only")
                counts[f"delivered beyond the core's targets: {kind}"] += 1
            return sender, core_message

        if step.action == "LoseMessage":
            if step.param not in network:
                fail(f"the spec loses {format_value(step.param)}, which no core sent")
            del network[step.param]
            continue
        try:
            outcome = adapter.apply(step, deliver, pool.__contains__)
        except Divergence:
            raise
        except AssertionError as error:
            fail(f"core assertion failed in {step.action} at replica {step.replica}: {error}")
        except Exception as error:  # noqa: BLE001 - a core that crashes diverges
            fail(f"the core raised {type(error).__name__} in {step.action} at replica "
                 f"{step.replica}: {error}")
        if outcome.took_step and step.action not in outcome.events \
                and not adapter.silent_ok(step):
            fail(f"the core did not take {step.action} (its trace events: {outcome.events})")
        # Core sends by content: the targets each content went to.
        sent: dict = {}
        for sender, target, core_message in outcome.sends:
            content, spec_target = adapter.message(sender, target, core_message)
            if content is None:
                continue  # a message kind the spec does not model at all
            entry = sent.setdefault(content, [sender + 1, core_message, set()])
            entry[2].add(spec_target)
        # Every message the spec step sent must be one a core sent.
        new_contents = set()
        for spec_message in step.sent:
            content, spec_targets = adapter.split(spec_message)
            new_contents.add(content)
            carried = sent.get(content) or pool.pop(content, None)
            if carried is None:
                fail(f"the spec step sends {format_value(spec_message)}; no core sent it "
                     f"(core sends: {sorted(format_value(c) for c in sent)})")
            sender, core_message, targets = carried
            if spec_targets is not None and not set(targets) <= set(spec_targets):
                fail(f"the core sent {format_value(content)} to {sorted(targets)}, the spec to "
                     f"{sorted(spec_targets)}")
            if spec_targets is not None and adapter.exact_targets(step) \
                    and set(targets) != set(spec_targets):
                fail(f"{step.action}: the core sent {format_value(content)} to {sorted(targets)}, "
                     f"the spec to {sorted(spec_targets)}")
            network[spec_message] = (sender, core_message, frozenset(targets))
            ever_sent.add(content)
        # Every message a core sent must be one the spec has, or of a kind it leaves out.
        known = {adapter.split(m)[0] for m in network}
        for content, (sender, core_message, targets) in sent.items():
            if content in new_contents or content in known:
                continue
            if content in ever_sent:
                # A resend (the core answers a duplicate Prepare with its Promise again)
                # of a message the spec sent and has lost since: the spec's network keeps
                # messages, so to it a resend is no step; only a loss removes one.
                counts[f"core resends a message the spec lost: {content[0]}"] += 1
                continue
            if content[0] in adapter.UNMODELLED_SENDS:
                pool[content] = (sender, core_message, frozenset(targets))
                counts[f"core sends ahead of the spec: {content[0]}"] += 1
                continue
            fail(f"a core sent {format_value(content)} to {sorted(targets)}, which the spec step "
                 f"does not send")
        # The cores' states, mapped to the spec's variables, equal the spec's.
        if step.replica:
            differences = adapter.compare(step.replica, step.post)
            if differences:
                name, spec_value, core_value = differences[0]
                fail(f"after {step.action} at replica {step.replica}, {name} differs: spec "
                     f"{format_value(spec_value)}, core {format_value(core_value)}")
        adapter.check_others(step.replica, fail)
    return dict(counts)


@dataclass
class ReplayStats:
    behaviours: int = 0
    distinct: int = 0
    distinct_prefixes: int = 0
    steps: int = 0
    actions: collections.Counter = field(default_factory=collections.Counter)
    depths: collections.Counter = field(default_factory=collections.Counter)
    mixes: collections.Counter = field(default_factory=collections.Counter)
    notable: collections.Counter = field(default_factory=collections.Counter)  # adapter's labels
    competing: int = 0  # behaviours in which two replicas campaign or lead with different ballots
    abstractions: collections.Counter = field(default_factory=collections.Counter)
    divergences: list = field(default_factory=list)
    replay_seconds: float = 0.0
    # When the first divergence came: distinct behaviours replayed, seconds of replay.
    first_divergence: tuple[int, float] | None = None

    def merge(self, other: "ReplayStats") -> None:
        """Add a later batch's counts (its distinct behaviours are new ones)."""
        if self.first_divergence is None and other.first_divergence is not None:
            self.first_divergence = (self.distinct + other.first_divergence[0],
                                     self.replay_seconds + other.first_divergence[1])
        self.behaviours += other.behaviours
        self.distinct += other.distinct
        self.distinct_prefixes = max(self.distinct_prefixes, other.distinct_prefixes)
        self.steps += other.steps
        for name in ("actions", "depths", "mixes", "notable", "abstractions"):
            getattr(self, name).update(getattr(other, name))
        self.competing += other.competing
        self.divergences += other.divergences
        self.replay_seconds += other.replay_seconds

    def summary(self) -> str:
        depths = ", ".join(f"{d}: {n}" for d, n in sorted(self.depths.items()))
        lines = [f"{self.distinct} distinct behaviours replayed ({self.behaviours} printed, "
                 f"{self.distinct_prefixes} distinct prefixes without the last step), "
                 f"{self.steps} steps in {self.replay_seconds:.1f} s",
                 f"depths: {depths}",
                 "walk mixes: " + ", ".join(f"{m} {n}" for m, n in sorted(self.mixes.items())),
                 f"behaviours with two ballots competing: {self.competing}",
                 *(f"behaviours where {label}: {n}" for label, n in sorted(self.notable.items())),
                 "actions: " + ", ".join(f"{a} {n}" for a, n in sorted(self.actions.items()))]
        if self.abstractions:
            lines.append("abstractions used: " + "; ".join(
                f"{a} {n}" for a, n in sorted(self.abstractions.items())))
        lines.append(f"divergences: {len(self.divergences)}")
        if self.first_divergence is not None:
            lines.append(f"first divergence at distinct behaviour {self.first_divergence[0]}, "
                         f"after {self.first_divergence[1]:.2f} s of replay")
        return "\n".join(lines)


def competing_ballots(behaviour: Behaviour) -> bool:
    """Two replicas, at one time, each a candidate or leader with a ballot of its own."""
    campaigning: dict = {}
    for step in behaviour.steps:
        if not step.replica:
            continue
        role, promised = step.post[0], step.post[1]
        if role in ("candidate", "leader"):
            campaigning[step.replica] = promised
        else:
            campaigning.pop(step.replica, None)
        if len(set(campaigning.values())) >= 2:
            return True
    return False


def run(behaviours: list[Behaviour], adapter_factory, *, save_dir: Path | None = None,
        stop_after: int = 10, seen: set | None = None, prefixes: set | None = None
        ) -> ReplayStats:
    """Replay each distinct behaviour; collect coverage and divergences (the first
    ``stop_after`` are kept and, with ``save_dir``, saved as JSON test cases).
    ``seen`` and ``prefixes``, when given, are shared with earlier calls (batches):
    a behaviour replayed there is not replayed again."""
    stats = ReplayStats(behaviours=len(behaviours))
    seen = set() if seen is None else seen
    prefixes = set() if prefixes is None else prefixes
    already = len(seen)
    started = time.monotonic()
    for behaviour in behaviours:
        # Hashes, not the keys: a key holds the whole behaviour, and batches keep every
        # key seen (2.9 GB for the long profile). A 64-bit collision among 10^5 is
        # about 10^-9 likely, and would only skip one behaviour.
        key = hash(behaviour.key)
        if key in seen:
            continue
        seen.add(key)
        prefixes.add(hash(behaviour.prefix))
        stats.steps += len(behaviour.steps)
        stats.depths[len(behaviour.steps)] += 1
        covers = getattr(adapter_factory, "COVERS", {})
        for step in behaviour.steps:
            stats.actions.update(covers.get(step.action, (step.action,)))
        stats.mixes[behaviour.mix or "-"] += 1
        stats.competing += competing_ballots(behaviour)
        notable = getattr(adapter_factory, "notable", None)
        if notable is not None:
            stats.notable.update(notable(behaviour))
        try:
            stats.abstractions.update(replay(behaviour, adapter_factory, seed=len(seen)))
        except Divergence as divergence:
            if stats.first_divergence is None:
                stats.first_divergence = (len(seen), time.monotonic() - started)
            stats.divergences.append(divergence)
            if save_dir is not None:
                # Named by the behaviour's number, which batches continue.
                save(behaviour, save_dir / f"divergence-{len(seen)}.json")
            if len(stats.divergences) >= stop_after:
                break
    stats.distinct = len(seen) - already
    stats.distinct_prefixes = len(prefixes)
    stats.replay_seconds = time.monotonic() - started
    return stats


def spec_actions(spec: Path) -> list[str]:
    """The actions of a spec's next-state relation, in order: the name each disjunct
    of ``Next ==`` applies (``\\/ \\E r \\in Replicas : StartElection(r)``, ``\\/ LoseMessage``)."""
    lines = spec.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Next =="))
    names = []
    for line in lines[start + 1:]:  # bounded by the file
        if not line.strip():
            break
        if not line.strip().startswith("\\/"):
            continue
        tail = line.split(":")[-1] if ":" in line else line.strip()[2:]
        match = re.match(r"\s*([A-Z]\w*)", tail)
        if match:
            names.append(match.group(1))
    return names


def coverage_gaps(stats: ReplayStats, adapter, spec_dir: Path) -> list[str]:
    """Spec actions never replayed, but those the adapter lists with a reason."""
    excused = getattr(adapter, "NOT_REPLAYED", {})
    return [a for a in spec_actions(spec_dir / adapter.SPEC)
            if stats.actions.get(a, 0) == 0 and a not in excused]


def coverage_report(stats: ReplayStats, adapter, spec_dir: Path) -> str:
    """One line per spec action: how many replayed steps took it (or why none do)."""
    excused = getattr(adapter, "NOT_REPLAYED", {})
    lines = [f"spec actions of {adapter.SPEC} replayed:"]
    for action in spec_actions(spec_dir / adapter.SPEC):
        count = stats.actions.get(action, 0)
        note = f"  (not replayed: {excused[action]})" if action in excused else \
            ("  <- NEVER REPLAYED" if count == 0 else "")
        lines.append(f"  {action:22s} {count:8d}{note}")
    return "\n".join(lines)


def _thaw(value):
    if isinstance(value, frozenset):
        return {"set": sorted((_thaw(v) for v in value), key=repr)}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


def _refreeze(value):
    if isinstance(value, dict):
        return frozenset(_refreeze(v) for v in value["set"])
    if isinstance(value, list):
        return tuple(_refreeze(v) for v in value)
    return value


def save(behaviour: Behaviour, path: Path) -> None:
    """A behaviour as JSON, one step a line (``load`` reads it back)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as file:
        for step in behaviour.steps:
            file.write(json.dumps([step.action, step.replica, _thaw(step.param), _thaw(step.sent),
                                   _thaw(step.post)]) + "\n")


class BehaviourFileError(ValueError):
    pass


def save_all(behaviours: list[Behaviour], path: Path) -> None:
    """Many behaviours, one a line: [mix, steps] (``load_all`` reads them back)."""
    with open(path, "w", encoding="utf-8") as file:
        for behaviour in behaviours:
            steps = [[s.action, s.replica, _thaw(s.param), _thaw(s.sent), _thaw(s.post)]
                     for s in behaviour.steps]
            file.write(json.dumps([behaviour.mix, steps]) + "\n")


def load_all(path: Path) -> list[Behaviour]:
    behaviours = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise BehaviourFileError(f"{path}: cannot read: {error}") from error
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            mix, steps = json.loads(line)
            behaviours.append(Behaviour(tuple(
                Step(str(a), int(r), _refreeze(p), _refreeze(s), _refreeze(post))
                for a, r, p, s, post in steps), str(mix)))
        except (ValueError, TypeError, KeyError, RecursionError) as error:
            raise BehaviourFileError(f"{path}:{number}: not a list of replay steps: {error}") \
                from error
    if not behaviours:
        raise BehaviourFileError(f"{path}:1: no behaviours")
    return behaviours


def load(path: Path) -> Behaviour:
    steps = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise BehaviourFileError(f"{path}: cannot read: {error}") from error
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            action, replica, param, sent, post = json.loads(line)
            steps.append(Step(str(action), int(replica), _refreeze(param), _refreeze(sent),
                              _refreeze(post)))
        except (ValueError, TypeError, KeyError, RecursionError) as error:
            raise BehaviourFileError(f"{path}:{number}: not a replay step: {error}") from error
    if not steps:
        raise BehaviourFileError(f"{path}:1: no steps")
    return Behaviour(tuple(steps))
