"""LowPaxos's trace format: the actions its core logs, the messages, the post-state.

A core logs one event per action of spec/LowPaxos.tla (``_trace`` in
impl/lowpaxos/protocols/lowpaxos/core.py; docs/conformance.md lists the fields).
These tables drive the generic line validation in ``lowpaxos.conformance.trace``;
``lowpaxos.conformance.tlagen`` maps the validated events to the spec.
"""

from __future__ import annotations

from dataclasses import dataclass

from lowpaxos.conformance.trace import ballot, check_value, fail, is_nat

RECEIVE_ACTIONS = {
    "HandlePrepare": "Prepare",
    "HandlePromise": "Promise",
    "HandleReject": "Reject",
    "HandleAccept": "Accept",
    "HandleAccepted": "Accepted",
    "HandleHeartbeat": "Heartbeat",
    "HandleCatchupRequest": "CatchupRequest",
    "HandleCatchupReply": "CatchupReply",
    "HandleSnapshotRequest": "SnapshotRequest",
    "HandleSnapshotChunk": "SnapshotChunk",
}
LOCAL_ACTIONS = frozenset({
    "StartElection", "BecomeLeader", "Propose", "RetryAccept", "SendHeartbeat",
    "RequestCatchup", "StepDown", "TruncateLog", "InstallSnapshot", "RequestSnapshot",
})
DRIVER_ACTIONS = frozenset({"Crash", "Restart"})  # written by the simulator, not by a core
SLOT_ACTIONS = frozenset({"Propose", "RetryAccept", "TruncateLog"})
TARGET_ACTIONS = frozenset({"SendHeartbeat", "RequestCatchup", "RequestSnapshot"})
ROLES = frozenset({"follower", "candidate", "leader"})

# The safety invariants of spec/LowPaxos.tla that the replay checks in every state
# it reaches: Agreement (Paxos Made Simple §2.1, at most one value chosen per slot)
# and committed-prefix safety (the committed slots two replicas hold carry the same
# value). Together they cost the replay of a 936-event trace about 13 s of CPU on
# top of 8 (Agreement computes the chosen pairs, quadratic in the votes, in every
# state). CommittedIsChosen and CutIsChosen are left to model checking (docs/spec.md):
# each computes the chosen pairs again. (Agreement checked only on the steps that
# change votes, as an action property, was far slower in TLC: over 600 s.)
SAFETY_INVARIANTS = ("Agreement", "CommittedPrefixesAgree")

# Fields of each message type as describe_message writes them (core.py), with a
# check of each value. Entries are [slot, [round, replica], batch id]; the rows of
# a SnapshotChunk are a count (their contents are not in the spec); a split or a
# cursor of a transfer stream is a list or null.
MESSAGE_FIELDS = {
    "Prepare": {"ballot": "ballot", "commit_index": "nat"},
    "Promise": {"ballot": "ballot", "entries": "entries", "commit_index": "nat"},
    "Reject": {"ballot": "ballot", "commit_index": "nat", "lagging": "bool"},
    "Accept": {"ballot": "ballot", "slot": "slot", "value": "batch", "commit_index": "nat",
               "truncate_index": "nat"},
    "Accepted": {"ballot": "ballot", "slot": "slot", "commit_index": "nat"},
    "Heartbeat": {"ballot": "ballot", "commit_index": "nat", "truncate_index": "nat"},
    "HeartbeatReply": {"ballot": "ballot", "commit_index": "nat"},
    "CatchupRequest": {"ballot": "ballot", "from_slot": "nat"},
    "CatchupReply": {"ballot": "ballot", "entries": "entries", "commit_index": "nat"},
    "SnapshotRequest": {"ballot": "ballot", "image_index": "nat", "base": "nat",
                        "split": "position", "cursor": "position", "credits": "nat"},
    "SnapshotChunk": {"ballot": "ballot", "image_index": "nat", "digest": "int", "base": "nat",
                      "split": "position", "cursor": "position", "next_cursor": "position",
                      "rows": "nat"},
}


@dataclass(frozen=True, slots=True)
class Entry:
    ballot: tuple[int, int]
    batch: str


@dataclass(frozen=True, slots=True)
class State:
    """A replica's state in the spec's variables (core.py spec_state)."""

    role: str
    promised: tuple[int, int]
    log: dict[int, Entry]
    commit_index: int
    log_start: int


def parse_state(path: str, line: int, value: object) -> State:
    if not isinstance(value, dict):
        fail(path, line, "state must be an object")
    for name in ("role", "promised", "log", "commit_index", "log_start"):
        if name not in value:
            fail(path, line, f"state lacks {name!r}")
    if not (isinstance(value["role"], str) and value["role"] in ROLES):
        fail(path, line, f"state.role must be one of {sorted(ROLES)}, got {value['role']!r}")
    promised = ballot(path, line, "state.promised", value["promised"])
    for name in ("commit_index", "log_start"):
        if not is_nat(value[name]):
            fail(path, line, f"state.{name} must be a natural number, got {value[name]!r}")
    if not isinstance(value["log"], dict):
        fail(path, line, "state.log must be an object {slot: [ballot, batch id]}")
    log: dict[int, Entry] = {}
    for key, item in value["log"].items():
        if not (isinstance(key, str) and key.isascii() and key.isdigit() and len(key) <= 10
                and is_nat(int(key)) and int(key) >= 1):
            fail(path, line, f"state.log key {key!r} is not a slot")
        if not (isinstance(item, list) and len(item) == 2):
            fail(path, line, f"state.log[{key}] must be [ballot, batch id], got {item!r}")
        entry_ballot = ballot(path, line, f"state.log[{key}] ballot", item[0])
        check_value(path, line, f"state.log[{key}] batch", "batch", item[1])
        log[int(key)] = Entry(entry_ballot, item[1])
    return State(value["role"], promised, log, value["commit_index"], value["log_start"])
