"""Reading NDJSON traces: validate every line, and say which line is wrong.

A trace file (docs/conformance.md) holds one JSON object per line: an optional
``{"meta": {...}}`` first line, then one event per spec action, in the order
the events happened. The simulator writes such files; the runtime writes one
file per replica, which ``lowpaxos.runtime.trace.merge_traces`` puts in one
order (``load_runtime_traces`` below).

Validation is strict because a checker that guesses would blame the protocol
for a malformed file: anything unexpected is a ``TraceFormatError`` naming the
line (1-based, as an editor shows it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

# Trace actions the checker knows, and what each event must carry besides the state.
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
ACTIONS = frozenset(RECEIVE_ACTIONS) | LOCAL_ACTIONS | DRIVER_ACTIONS
ROLES = frozenset({"follower", "candidate", "leader"})

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

# A bound on what one line may hold, so that a corrupt file cannot exhaust memory.
LINE_BYTES_MAX = 4 * 1024 * 1024
EVENTS_MAX = 1_000_000


class TraceFormatError(ValueError):
    """A trace file that is not a well-formed trace; ``line`` is 1-based."""

    def __init__(self, path: str, line: int, reason: str) -> None:
        super().__init__(f"{path}:{line}: {reason}")
        self.path = path
        self.line = line
        self.reason = reason


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


@dataclass(slots=True)
class Event:
    line: int  # 1-based line in the file it came from
    action: str
    replica: int  # 0-based, as in Python
    state: State | None  # None only for Crash (the core is gone)
    raw: dict  # the JSON object as read
    source: int | None = None
    message: dict | None = None
    slot: int | None = None
    target: int | None = None
    step: int | None = None  # simulator: events of one core step share it
    sent: list[dict] = field(default_factory=list)  # simulator: the step's sends, described


@dataclass(slots=True)
class Trace:
    path: str
    events: list[Event]
    replicas: int
    q1: int
    q2: int
    meta: dict


def _fail(path: str, line: int, reason: str) -> None:
    raise TraceFormatError(path, line, reason)


def _is_nat(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _ballot(path: str, line: int, what: str, value: object) -> tuple[int, int]:
    if (not isinstance(value, list) or len(value) != 2
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in value)):
        _fail(path, line, f"{what} must be a ballot [round, replica], got {value!r}")
    round_, replica = value
    if round_ < 0 or replica < -1:
        _fail(path, line, f"{what} {value!r} is not a ballot")
    return (round_, replica)


def _check_value(path: str, line: int, what: str, kind: str, value: object) -> None:
    if kind == "nat" and not _is_nat(value):
        _fail(path, line, f"{what} must be a natural number, got {value!r}")
    elif kind == "slot" and not (_is_nat(value) and value >= 1):
        _fail(path, line, f"{what} must be a slot (>= 1), got {value!r}")
    elif kind == "bool" and not isinstance(value, bool):
        _fail(path, line, f"{what} must be true or false, got {value!r}")
    elif kind == "int" and not (isinstance(value, int) and not isinstance(value, bool)):
        _fail(path, line, f"{what} must be an integer, got {value!r}")
    elif kind == "position" and not (value is None or isinstance(value, list)):
        _fail(path, line, f"{what} must be a list or null, got {value!r}")
    elif kind == "batch" and not (isinstance(value, str) and value):
        _fail(path, line, f"{what} must be a batch id (a string), got {value!r}")
    elif kind == "ballot":
        _ballot(path, line, what, value)
    elif kind == "entries":
        if not isinstance(value, list):
            _fail(path, line, f"{what} must be a list of [slot, ballot, batch id]")
        for item in value:
            if not (isinstance(item, list) and len(item) == 3):
                _fail(path, line, f"{what}: {item!r} is not [slot, ballot, batch id]")
            _check_value(path, line, f"{what} slot", "slot", item[0])
            _ballot(path, line, f"{what} ballot", item[1])
            _check_value(path, line, f"{what} batch", "batch", item[2])


def check_message(path: str, line: int, message: object, what: str = "message") -> dict:
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        _fail(path, line, f"{what} must be an object with a type")
    fields = MESSAGE_FIELDS.get(message["type"])
    if fields is None:
        _fail(path, line, f"{what} has unknown type {message['type']!r}")
    for name, kind in fields.items():
        if name not in message:
            _fail(path, line, f"{what} ({message['type']}) lacks {name!r}")
        _check_value(path, line, f"{what}.{name}", kind, message[name])
    return message


def _state(path: str, line: int, value: object) -> State:
    if not isinstance(value, dict):
        _fail(path, line, "state must be an object")
    for name in ("role", "promised", "log", "commit_index", "log_start"):
        if name not in value:
            _fail(path, line, f"state lacks {name!r}")
    if value["role"] not in ROLES:
        _fail(path, line, f"state.role must be one of {sorted(ROLES)}, got {value['role']!r}")
    promised = _ballot(path, line, "state.promised", value["promised"])
    for name in ("commit_index", "log_start"):
        if not _is_nat(value[name]):
            _fail(path, line, f"state.{name} must be a natural number, got {value[name]!r}")
    if not isinstance(value["log"], dict):
        _fail(path, line, "state.log must be an object {slot: [ballot, batch id]}")
    log: dict[int, Entry] = {}
    for key, item in value["log"].items():
        if not (isinstance(key, str) and key.isdigit() and int(key) >= 1):
            _fail(path, line, f"state.log key {key!r} is not a slot")
        if not (isinstance(item, list) and len(item) == 2):
            _fail(path, line, f"state.log[{key}] must be [ballot, batch id], got {item!r}")
        ballot = _ballot(path, line, f"state.log[{key}] ballot", item[0])
        _check_value(path, line, f"state.log[{key}] batch", "batch", item[1])
        log[int(key)] = Entry(ballot, item[1])
    return State(value["role"], promised, log, value["commit_index"], value["log_start"])


def parse_event(path: str, line: int, obj: dict, replicas: int) -> Event:
    action = obj.get("action")
    if not isinstance(action, str):
        _fail(path, line, "an event needs an \"action\" (a string)")
    if action not in ACTIONS:
        _fail(path, line, f"unknown action {action!r}")
    replica = obj.get("replica")
    if not (_is_nat(replica) and replica < replicas):
        _fail(path, line, f"replica must be an id in 0..{replicas - 1}, got {replica!r}")
    state = None
    if action != "Crash":
        if "state" not in obj:
            _fail(path, line, f"{action} needs the replica's post-state (\"state\")")
        state = _state(path, line, obj["state"])
    event = Event(line=line, action=action, replica=replica, state=state, raw=obj)
    if action in RECEIVE_ACTIONS:
        source = obj.get("source")
        if not (_is_nat(source) and source < replicas and source != replica):
            _fail(path, line, f"{action} needs a source replica other than {replica}, got {source!r}")
        event.source = source
        message = check_message(path, line, obj.get("message"))
        if message["type"] != RECEIVE_ACTIONS[action]:
            _fail(path, line, f"{action} handles a {RECEIVE_ACTIONS[action]}, not a {message['type']}")
        event.message = message
    if action in ("Propose", "RetryAccept", "TruncateLog"):
        if not (_is_nat(obj.get("slot")) and obj["slot"] >= 1):
            _fail(path, line, f"{action} needs a slot, got {obj.get('slot')!r}")
        event.slot = obj["slot"]
    if action in ("SendHeartbeat", "RequestCatchup", "RequestSnapshot"):
        target = obj.get("target")
        if not (_is_nat(target) and target < replicas and target != replica):
            _fail(path, line, f"{action} needs a target replica, got {target!r}")
        event.target = target
    if "step" in obj:
        if not _is_nat(obj["step"]):
            _fail(path, line, f"step must be a natural number, got {obj['step']!r}")
        event.step = obj["step"]
    sent = obj.get("sent", [])
    if not isinstance(sent, list):
        _fail(path, line, "sent must be a list")
    for item in sent:
        if isinstance(item, dict):  # simulator: {"ids", "target", "message"}
            if not (_is_nat(item.get("target")) and item["target"] < replicas):
                _fail(path, line, f"sent target must be a replica id, got {item.get('target')!r}")
            if not isinstance(item.get("ids"), list):
                _fail(path, line, "sent ids must be a list")
            check_message(path, line, item.get("message"), "sent message")
            event.sent.append(item)
        elif not isinstance(item, list):  # runtime: [target, sender, counter]
            _fail(path, line, f"sent item {item!r} is neither an object nor [target, sender, counter]")
    return event


def load_trace(path: str | Path, replicas: int | None = None, q1: int | None = None,
               q2: int | None = None) -> Trace:
    """Read and validate a trace file. The cluster shape comes from the meta line,
    else from the arguments, else 3 replicas with majority quorums."""
    path = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as error:
        raise TraceFormatError(path, 0, f"cannot read: {error.strerror or error}") from error
    lines = raw.split(b"\n")
    meta: dict = {}
    parsed: list[tuple[int, dict]] = []
    for index, data in enumerate(lines[: EVENTS_MAX + 2]):
        number = index + 1
        if not data.strip():
            continue
        if len(data) > LINE_BYTES_MAX:
            _fail(path, number, f"line longer than {LINE_BYTES_MAX} bytes")
        try:
            obj = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            _fail(path, number, f"not JSON: {error}")
        if not isinstance(obj, dict):
            _fail(path, number, "each line must be a JSON object")
        if "meta" in obj:
            if parsed or meta:
                _fail(path, number, "the meta line must come first")
            if not isinstance(obj["meta"], dict):
                _fail(path, number, "meta must be an object")
            meta = obj["meta"]
            continue
        parsed.append((number, obj))
    if len(lines) > EVENTS_MAX + 2:
        _fail(path, EVENTS_MAX + 2, f"more than {EVENTS_MAX} events")
    n = replicas or meta.get("replicas") or 3
    if not (_is_nat(n) and 1 <= n <= 9):
        _fail(path, 1, f"replicas must lie in 1..9, got {n!r}")
    quorum1 = q1 or meta.get("q1") or n // 2 + 1
    quorum2 = q2 or meta.get("q2") or n // 2 + 1
    if not parsed:
        _fail(path, max(1, len(lines) - 1), "the trace has no events")
    events = [parse_event(path, number, obj, n) for number, obj in parsed]
    return Trace(path=path, events=with_restarts(events), replicas=n, q1=quorum1, q2=quorum2,
                 meta=meta)


def with_restarts(events: list[Event]) -> list[Event]:
    """Runtime traces have no Restart line: a replica's new incarnation shows only as a
    new ``boot``. Put a Restart before the first event of each later incarnation, with
    no state (the restarted state is not logged; the spec chooses the commit hint and
    the next event of that replica pins it)."""
    result: list[Event] = []
    boots: dict[int, object] = {}
    for event in events:
        boot = event.raw.get("boot")
        if boot is not None:
            previous = boots.get(event.replica)
            if previous is not None and previous != boot:
                result.append(Event(line=event.line, action="Restart", replica=event.replica,
                                    state=None, raw={"action": "Restart", "synthetic": True}))
            boots[event.replica] = boot
        result.append(event)
    return result


def load_runtime_traces(paths: list[Path], out: Path) -> Path:
    """Merge per-replica runtime files (happens-before order) into one trace file."""
    from lowpaxos.runtime.trace import merge_traces

    merged = merge_traces(paths)
    with open(out, "w", encoding="utf-8") as file:
        file.write(json.dumps({"meta": {"source": "runtime", "replicas": len(paths)}}) + "\n")
        for event in merged:
            file.write(json.dumps(event, separators=(",", ":"), sort_keys=True) + "\n")
    return out
