"""EPaxos's trace format and its mapping onto spec/EPaxos.tla.

The EPaxos core (impl/lowpaxos/protocols/epaxos/core.py, ``_trace``) logs one event
per action of spec/EPaxos.tla (the names of the handlers, /tmp contract of issue 9:
Propose, HandlePreAccept, HandlePreAcceptOK, HandleAccept, HandleAcceptOK,
HandleCommit, StartRecovery, HandlePrepare, HandlePrepareOK, HandleNack, Execute,
HandleStatus, and ``Commit`` after the handler whose reply completed a quorum).
Unlike LowPaxos and VR, the logged ``state`` is not the whole replica but the ONE
instance the action touched, after the action, in the spec's variables:

    {"inst": [R, i], "status": ..., "ballot": [round, replica],
     "vballot": [round, replica], "batch": batch id | "noop" | null, "seq": n,
     "deps": [d0, ..., dN-1], "unchanged": bool}

The tables here drive the generic line validation of ``lowpaxos.conformance.trace``;
``plan_steps``, ``write_module`` and ``write_config`` turn the validated events into
a copy of conformance/TraceEPaxos.tla (docs/conformance.md, "EPaxos").
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lowpaxos.conformance.trace import (NUMBER_MAX, Event, Trace, TraceFormatError, ballot,
                                        check_value, fail, is_nat)

RECEIVE_ACTIONS = {
    "HandlePreAccept": "PreAccept",
    "HandlePreAcceptOK": "PreAcceptOK",
    "HandleAccept": "Accept",
    "HandleAcceptOK": "AcceptOK",
    "HandleCommit": "Commit",
    "HandlePrepare": "Prepare",
    "HandlePrepareOK": "PrepareOK",
    "HandleNack": "Nack",
    "HandleStatus": "Status",
}
LOCAL_ACTIONS = frozenset({
    "Propose", "StartRecovery", "Commit", "Execute",
    # Not spec actions (each sends again what is already in the network, or changes no
    # spec variable): retries of a phase, the frontier messages, garbage collection.
    "RetryPreAccept", "RetryAccept", "RetryPrepare", "SendStatus", "ResendCommit", "Collect",
})
DRIVER_ACTIONS = frozenset({"Crash", "Restart"})
# Logged without an instance's state: Crash (the core is gone), the frontier and
# collection events (they touch no one instance), and Restart, whose state is the
# restarted replica's frontiers (read by plan_steps from the raw line).
STATELESS_ACTIONS = frozenset({"Crash", "Restart", "SendStatus", "HandleStatus",
                               "ResendCommit", "Collect"})
SLOT_ACTIONS: frozenset[str] = frozenset()
TARGET_ACTIONS: frozenset[str] = frozenset({"ResendCommit"})
STATUSES = ("none", "preaccepted", "accepted", "committed", "executed")
COMMIT_PATHS = frozenset({"fast", "slow", "recovered"})
# The KVS commands' keys as an Execute event lists them; "*" is every key (dbsize, scan).
KEYS_MAX = 4096

# Fields of each message type as the core's describe_message writes them, with a check
# of each value (trace.check_value kinds). A batch is its batch id ("noop" for NOP).
MESSAGE_FIELDS = {
    "PreAccept": {"ballot": "ballot", "inst": "inst", "batch": "batch", "seq": "nat",
                  "deps": "vector"},
    "PreAcceptOK": {"ballot": "ballot", "inst": "inst", "seq": "nat", "deps": "vector",
                    "unchanged": "bool"},
    "Accept": {"ballot": "ballot", "inst": "inst", "batch": "batch", "seq": "nat",
               "deps": "vector"},
    "AcceptOK": {"ballot": "ballot", "inst": "inst"},
    "Commit": {"inst": "inst", "batch": "batch", "seq": "nat", "deps": "vector"},
    "Prepare": {"ballot": "ballot", "inst": "inst"},
    "PrepareOK": {"ballot": "ballot", "inst": "inst", "status": "word", "batch": "batch?",
                  "seq": "nat", "deps": "vector", "vballot": "ballot", "unchanged": "bool"},
    "Nack": {"inst": "inst", "ballot": "ballot"},
    "Status": {"executed": "vector", "committed": "vector"},
}

# The safety invariants of spec/EPaxos.tla checked in every replayed state (set from
# the spec once it is written; see SAFETY_INVARIANTS below).
SAFETY_INVARIANTS: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class State:
    """One instance at one replica, in EPaxos.tla's variables (core.py spec_state)."""

    inst: tuple[int, int]
    status: str
    ballot: tuple[int, int]
    vballot: tuple[int, int]
    batch: str | None  # None: the replica does not know the instance's command
    seq: int
    deps: tuple[int, ...]
    unchanged: bool

    def describe(self) -> str:
        return (f"instance {list(self.inst)} {self.status}, ballot {list(self.ballot)}, "
                f"vballot {list(self.vballot)}, batch {self.batch}, seq {self.seq}, "
                f"deps {list(self.deps)}, unchanged {self.unchanged}")


def parse_inst(path: str, line: int, what: str, value: object) -> tuple[int, int]:
    check_value(path, line, what, "inst", value)
    return (value[0], value[1])  # type: ignore[index]


def parse_state(path: str, line: int, value: object) -> State:
    if not isinstance(value, dict):
        fail(path, line, "state must be an object (the instance the action touched)")
    for name in ("inst", "status", "ballot", "vballot", "batch", "seq", "deps", "unchanged"):
        if name not in value:
            fail(path, line, f"state lacks {name!r}")
    inst = parse_inst(path, line, "state.inst", value["inst"])
    if not (isinstance(value["status"], str) and value["status"] in STATUSES):
        fail(path, line, f"state.status must be one of {list(STATUSES)}, got {value['status']!r}"[:200])
    check_value(path, line, "state.batch", "batch?", value["batch"])
    check_value(path, line, "state.seq", "nat", value["seq"])
    check_value(path, line, "state.deps", "vector", value["deps"])
    check_value(path, line, "state.unchanged", "bool", value["unchanged"])
    return State(inst, value["status"], ballot(path, line, "state.ballot", value["ballot"]),
                 ballot(path, line, "state.vballot", value["vballot"]), value["batch"],
                 value["seq"], tuple(value["deps"]), value["unchanged"])
