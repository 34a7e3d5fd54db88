"""LowPaxos's part of spec replay: spec actions as core inputs, core state and
messages in the spec's terms (spec/LowPaxos.tla through ReplayLowPaxos.tla).

Replica ids: the spec's replica r is the core's r - 1. Ballots: the core's
``Ballot(round, replica)`` is the spec's ``<<round, replica + 1>>`` (the zero
ballot ``(0, -1)`` is ``<<0, 0>>``). Values: the spec's value v is a one-command
batch, a put of ``b"v<v>"`` by a client of its own (so that every proposal is a
new request); the empty batch is NoOp (0). The state mapping is the conformance
checker's (``LowPaxosReplica.spec_state``, the variables of trace events), with
the batch ids read back to the spec's values, and adds the leader's and the
candidate's volatile variables (nextSlot, acks of the open slots, who promised).

Timers: the spec has none; any enabled action may happen at any time. The core
runs with every timeout so long (``REPLAY_OPTIONS``) that a tick never fires one
by itself, and a spec action that the core takes on a timer is one tick with
that timer made due (``_due``): StartElection (the election deadline),
SendHeartbeat (every peer's heartbeat), RetryAccept (the slot's retry),
StepDown (no peer heard from for two election timeouts), RequestCatchup (the
catch-up retry). A Prepare is delivered with the follower's leader lease
expired, as if an election timeout had passed without a tick. Thrifty phase 2
picks the followers heard from most recently, so before a Propose the spec's
target is made the one heard from last. The commit hint is written at every
step (``commit_hint_ticks = 0``), as the model's Crash (LaggingCommitHint
FALSE) restarts with the commit index the replica had.

Log cuts and transfers: the core cuts inside a commit step, every
``snapshot_slots`` applied slots, below the truncation hint. The replay runs it
with ``snapshot_slots`` beyond reach, and a spec ``TruncateLog(r, i)`` is the
core's own cut routine (``_maybe_snapshot``) run once with ``snapshot_slots``
1 and the hint at ``i`` (a follower's ``truncate_hint``; a leader's
truncation index, the least commit point its peers reported). A state transfer
serves an image of the serving core's current rows: images are closed after
every step (as if ``image_idle_ticks`` had passed), so none is reused later.
The store is a few rows, so an image is one chunk, and the chunk that starts
a transfer installs it (spec HandleSnapshotChunk then InstallSnapshot, one
replay step named InstallSnapshot).
"""

from __future__ import annotations

import dataclasses
import random

from lowpaxos.core.api import ClientRequest, Command
from lowpaxos.protocols.registry import PROTOCOLS
from lowpaxos.specreplay.replay import Outcome

# Far beyond any tick count of a replay (a behaviour has a few dozen ticks), and
# ordered as the config requires (heartbeat < election). The core's own "never"
# is -(10**9) ticks ago, which these keep below every timeout.
NEVER = 10**15
REPLAY_OPTIONS = dict(
    batching=False,  # one command per slot, proposed at once: a Propose is one request
    thrifty=True,
    heartbeat_ticks=10**10,
    accept_retry_ticks=10**10,
    election_ticks=10**12,
    prepare_retry_ticks=10**13,
    catchup_retry_ticks=10**10,
    transfer_retry_ticks=10**10,
    image_idle_ticks=10**13,
    commit_hint_ticks=0,
    invariant_full_scan_steps=1,
    # No cut of the core's own: a cut is a spec step (TruncateLog), driven below.
    snapshot_slots=10**6,
    log_slots_max=2 * 10**6,
)
ROLE_NAMES = ("follower", "candidate", "leader")


def spec_ballot(ballot) -> tuple[int, int]:
    return (ballot[0], ballot[1] + 1)


class LowPaxosAdapter:
    # Core messages the spec has no step for at this point: the Heartbeats a new
    # leader sends at once (the spec's SendHeartbeat comes later), the
    # CatchupRequest a follower sends in the step that shows it is behind (the
    # spec's RequestCatchup is a step of its own), HeartbeatReply (not modelled).
    # SnapshotRequest: the core asks for the next window after a chunk that is not an
    # image's last; with one-chunk images it never does, and a send would wait here.
    UNMODELLED_SENDS = frozenset({"Heartbeat", "CatchupRequest", "SnapshotRequest"})
    # A retried Accept goes, in the spec, to every other replica; the core sends it
    # to those that have not acknowledged. A CatchupRequest has no addressee in the
    # spec (any replica that has committed further serves it); the core asks one.
    WIDER_DELIVERY = frozenset({"Accept", "CatchupRequest"})
    # The spec actions each replay step stands for, where it is more than its own name:
    # a one-chunk image is handled and installed in one step (see the module docstring).
    COVERS = {"InstallSnapshot": ("HandleSnapshotChunk", "InstallSnapshot")}
    # The spec (in spec/) whose Next lists the actions coverage is counted against, and
    # the actions not replayed, each with the reason. Every other action must be.
    SPEC = "LowPaxos.tla"
    _ONE_CHUNK = ("the spec's transfer is abstract: a chunk is only its image's index, so in "
                  "its set network a chunk sent again is the same message and the model cannot "
                  "tell which chunk of a core stream a step means or which is the last; the "
                  "replay's images are one chunk, which installs at once, so the core never has "
                  "a transfer open between steps to ask more for (trace conformance and "
                  "tests/test_lowpaxos_core.py check multi-chunk transfers)")
    NOT_REPLAYED: dict[str, str] = {
        "RequestSnapshot": _ONE_CHUNK,
        "HandleSnapshotRequest": _ONE_CHUNK,
    }

    def __init__(self, seed: int, replicas: int = 3) -> None:
        protocol = PROTOCOLS["lowpaxos"]
        self.protocol = protocol
        self.config = protocol.make_config(replicas, **REPLAY_OPTIONS)
        self.seed = seed
        self.durable = [protocol.new_durable() for _ in range(replicas)]
        self.cores = [self._build(i) for i in range(replicas)]
        self.values: dict[str, int] = {"noop": 0}  # batch id -> spec value
        self.clients = 0
        self.spec_vars: dict[int, tuple] = {}  # spec replica -> its variables after its last step

    def _build(self, index: int):
        rng = random.Random(self.seed * 31 + index)
        durable = self.durable[index].copy()
        return self.protocol.make_core(self.config, index, rng, durable, True)

    # ------------------------------------------------------------ messages

    def message(self, sender: int, target: int, message) -> tuple[tuple | None, int]:
        """A core message as (spec content, spec target); content None when unmodelled."""
        kind = type(message).__name__
        source, to = sender + 1, target + 1
        if kind == "Prepare":
            return ("Prepare", source, spec_ballot(message.ballot), message.commit_index), to
        if kind == "Promise":
            return ("Promise", source, to, spec_ballot(message.ballot),
                    self._entries(message.entries), message.commit_index), to
        if kind == "Reject":
            return ("Reject", source, to, spec_ballot(message.ballot), message.lagging), to
        if kind == "Accept":
            return ("Accept", source, spec_ballot(message.ballot), message.slot,
                    self._value(message.batch), message.commit_index), to
        if kind == "Accepted":
            return ("Accepted", source, to, spec_ballot(message.ballot), message.slot), to
        if kind == "Heartbeat":
            return ("Heartbeat", source, spec_ballot(message.ballot), message.commit_index), to
        if kind == "CatchupRequest":
            return ("CatchupRequest", source, message.from_slot - 1), to
        if kind == "CatchupReply":
            return ("CatchupReply", source, to, self._entries(message.entries),
                    message.commit_index), to
        if kind == "HeartbeatReply":
            return None, to
        if kind == "SnapshotChunk":
            return ("SnapshotChunk", source, to, message.image_index), to
        if kind == "SnapshotRequest":
            return ("SnapshotRequest", source, message.image_index), to
        return (kind, source), to

    @staticmethod
    def split(spec_message: tuple) -> tuple[tuple, frozenset | None]:
        """A spec message as (content, the replicas it is addressed to, or None)."""
        if spec_message[0] == "Accept":
            kind, source, to, ballot, slot, value, commit = spec_message
            return (kind, source, ballot, slot, value, commit), to
        if spec_message[0] in ("Promise", "Reject", "Accepted", "CatchupReply", "SnapshotChunk"):
            return spec_message, frozenset({spec_message[2]})
        return spec_message, None

    def _value(self, batch) -> int:
        from lowpaxos.protocols.lowpaxos.core import batch_id

        return self.values.get(batch_id(batch), -1)

    def _entries(self, entries) -> frozenset:
        return frozenset((e.slot, spec_ballot(e.ballot), self._value(e.batch)) for e in entries)

    # ------------------------------------------------------------- actions

    def apply(self, step, deliver, waiting) -> Outcome:
        outcome = self._apply(step, deliver, waiting)
        for core in self.cores:  # images idle from now on (see the module docstring)
            for index in list(core.images):
                core.images.pop(index)[0].close()
        return outcome

    def _apply(self, step, deliver, waiting) -> Outcome:
        r = step.replica
        index = r - 1
        core = self.cores[index]
        action = step.action
        if action == "Crash":
            self.cores[index] = self._build(index)
            return Outcome(events=["Crash"])
        if action == "TruncateLog":
            return self._cut(index, step.param)
        if action == "Ignore":
            # The spec takes no step that changes anything: the core may repeat one whose
            # effect the spec has (a duplicate), so its trace events are not checked, but
            # its mapped state must not change and it may send only what the spec has.
            sender, core_message = deliver(step.param, r)
            outcome = self._outcome(index, core.on_message(sender - 1, core_message))
            outcome.took_step = False
            return outcome
        if action.startswith("Handle") or action == "InstallSnapshot":
            message = step.param
            sender, core_message = deliver(message, r)
            sender -= 1  # the core's id
            if action == "HandlePrepare":
                core.leader_heard_tick = core.now - NEVER  # the leader lease has run out
            return self._outcome(index, core.on_message(sender, core_message))
        if action == "Propose":
            value, targets = step.param
            for peer in core.peers:  # the spec's targets are the followers heard from last
                core.peer_heard_tick[peer] = core.now if peer + 1 in targets else core.now - 10**11
            self.clients += 1
            command = Command(self.clients, 1, "put", "x", f"v{value}".encode())
            from lowpaxos.protocols.lowpaxos.core import batch_id

            self.values[batch_id((command,))] = value
            return self._outcome(index, core.on_client_request(ClientRequest(command)))
        if action == "StartElection":
            core.election_deadline = core.now + 1
        elif action == "SendHeartbeat":
            for peer in core.peers:
                core.peer_sent_tick[peer] = core.now - NEVER
        elif action == "RetryAccept":
            if step.param not in core.accept_sent_tick:
                return Outcome(events=[f"(slot {step.param} is not open at the core)"])
            core.accept_sent_tick[step.param] = core.now - NEVER
        elif action == "StepDown":
            for peer in core.peers:
                core.peer_heard_tick[peer] = core.now - NEVER
        elif action == "RequestCatchup":
            wanted = ("CatchupRequest", r, core.commit_index)
            if waiting(wanted):  # the core asked already, in the step that showed it is behind
                return Outcome(took_step=False)
            core.catchup_sent_tick = core.now - NEVER
        else:
            raise AssertionError(f"no core input for the spec action {action}")
        return self._outcome(index, core.on_tick())

    def _cut(self, index: int, slot: int) -> Outcome:
        """The core's cut policy (``_maybe_snapshot``) run now, cutting in steps of one
        slot, with the truncation hint at ``slot``; the core's settings are restored."""
        from lowpaxos.core.api import Effects
        from lowpaxos.protocols.lowpaxos.core import Role

        core = self.cores[index]
        saved = core.config, core.truncate_hint, core.peer_commit
        core.config = dataclasses.replace(core.config, snapshot_slots=1)
        if core.role is Role.LEADER:
            core.peer_commit = {peer: slot for peer in core.peers}
        else:
            core.truncate_hint = slot
        effects = Effects()
        try:
            core._maybe_snapshot(effects)
        finally:
            core.config, core.truncate_hint, core.peer_commit = saved
        core._finish_step(effects)
        return self._outcome(index, effects)

    def _outcome(self, index: int, effects) -> Outcome:
        for record in effects.persist:
            self.durable[index].apply(record)
        return Outcome(sends=[(index, target, m) for target, m in effects.send],
                       events=[event["action"] for event in effects.trace])

    @staticmethod
    def silent_ok(step) -> bool:
        """Spec steps the core may take without a trace event of that name: an Accepted
        for a slot the leader has committed changes only acks of a committed slot."""
        return step.action == "HandleAccepted"

    @staticmethod
    def exact_targets(step) -> bool:
        return step.action in ("Propose", "HandlePromise")

    @staticmethod
    def notable(behaviour) -> list[str]:
        """What a behaviour reaches that the bug classes of phase 1 need (counted in the
        summary): a leader elected on reports (its own log above its commit index and
        the promises it counted) holding two different values of different ballots in
        one slot, which it must resolve to the value of the highest ballot (Paxos Made
        Simple §2.2, P2c)."""
        logs: dict = {}
        promises: dict = {}
        found = []
        for step in behaviour.steps:
            if step.action == "StartElection":
                promises[step.replica] = []
            elif step.action == "HandlePromise":
                promises.setdefault(step.replica, []).append(step.param[4])
                before = logs.get(step.replica)
                if step.post[0] == "leader" and before is not None:
                    values: dict = {}
                    for slot, (ballot, value) in enumerate(before[2], 1):
                        if ballot != (0, 0) and slot > before[3]:
                            values.setdefault(slot, set()).add(value)
                    for entries in promises[step.replica]:
                        for slot, _ballot, value in entries:
                            values.setdefault(slot, set()).add(value)
                    if any(len(v) > 1 for v in values.values()):
                        found.append("a new leader resolves two values reported for one slot")
            if step.replica:
                logs[step.replica] = step.post
        return sorted(set(found))

    # --------------------------------------------------------------- state

    def core_vars(self, index: int) -> dict:
        core = self.cores[index]
        state = core.spec_state()
        slots = self._slots
        log = []
        for slot in range(1, slots + 1):
            entry = state["log"].get(str(slot))
            if entry is None:
                log.append(((0, 0), 0))
            else:
                log.append((spec_ballot(entry[0]), self.values.get(entry[1], -1)))
        result = {
            "role": state["role"],
            "promised": spec_ballot(state["promised"]),
            "log": tuple(log),
            "commitIndex": state["commit_index"],
            "logStart": state["log_start"],
        }
        if state["role"] == "candidate":
            result["promises"] = frozenset(p + 1 for p in core.promises if p != index)
        if state["role"] == "leader":
            result["nextSlot"] = core.next_slot
            result["acks"] = {s: frozenset(p + 1 for p in core.acks.get(s, ()))
                              for s in range(core.commit_index + 1, core.next_slot)}
        return result

    @staticmethod
    def spec_named(post: tuple) -> dict:
        role, promised, log, commit, log_start, promises, next_slot, acks = post
        result = {"role": role, "promised": promised, "log": log, "commitIndex": commit,
                  "logStart": log_start}
        if role == "candidate":
            result["promises"] = promises
        if role == "leader":
            result["nextSlot"] = next_slot
            result["acks"] = {s: acks[s - 1] for s in range(commit + 1, next_slot)}
        return result

    def compare(self, replica: int, post: tuple) -> list:
        """Differences (name, spec, core) between each core and the spec, the stepping
        replica first."""
        self._slots = len(post[2])
        self.spec_vars[replica] = post
        differences = []
        for other in [replica] + sorted(r for r in self.spec_vars if r != replica):
            spec = self.spec_named(self.spec_vars[other])
            core = self.core_vars(other - 1)
            for name in ("role", "promised", "log", "commitIndex", "logStart", "promises",
                         "nextSlot", "acks"):
                if spec.get(name) != core.get(name):
                    label = name if other == replica else f"{name} of replica {other}"
                    differences.append((label, spec.get(name), core.get(name)))
            if differences:
                break
        return differences

    def check_others(self, replica: int, fail) -> None:
        return None
