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
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from lowpaxos.conformance.protocols import TraceProtocol

# A bound on what one line may hold, so that a corrupt file cannot exhaust memory,
# and on how deeply its JSON may nest (the deepest a core writes is 4: an event, its
# "sent", a message, its entries): deeper is malformed, and no recursive code below
# ever sees it.
LINE_BYTES_MAX = 4 * 1024 * 1024
EVENTS_MAX = 1_000_000
NESTING_MAX = 8
# The largest number a replica id, slot, index or count may be: TLC's integers are 32
# bits, and no trace of this checker comes near it. (The model's bounds do not come
# from these numbers but from the trace's extent, tlagen.model_of.)
NUMBER_MAX = 2**31 - 1
# Batch ids are the spec's values, written into TLA+ as strings: the core writes
# "noop" or "b" and ten hex digits (core.batch_id); any short id of these characters
# is accepted, nothing that would need escaping.
BATCH_ID = re.compile(r"[A-Za-z0-9_.:+-]{1,64}")
REPLICAS_MAX = 9


class TraceFormatError(ValueError):
    """A trace file that is not a well-formed trace; ``line`` is 1-based."""

    def __init__(self, path: str, line: int, reason: str) -> None:
        super().__init__(f"{path}:{line}: {reason}")
        self.path = path
        self.line = line
        self.reason = reason


@dataclass(slots=True)
class Event:
    line: int  # 1-based line in the file it came from
    action: str
    replica: int  # 0-based, as in Python
    state: Any  # the protocol's state (lowpaxos_format.State); None when not logged (Crash)
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
    protocol: "TraceProtocol"
    # Round numbers as the model has them (tlagen.renumber_rounds): trace round -> model round.
    rounds: dict[int, int] = field(default_factory=dict)


def fail(path: str, line: int, reason: str) -> NoReturn:
    raise TraceFormatError(path, line, reason)


def is_nat(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= NUMBER_MAX


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def ballot(path: str, line: int, what: str, value: object) -> tuple[int, int]:
    if not (isinstance(value, list) and len(value) == 2 and all(_is_int(x) for x in value)):
        fail(path, line, f"{what} must be a ballot [round, replica], got {_short(value)}")
    round_, replica = value
    if not (is_nat(round_) and -1 <= replica <= REPLICAS_MAX):
        fail(path, line, f"{what} {_short(value)} is not a ballot")
    return (round_, replica)


def _short(value: object, limit: int = 80) -> str:
    """A value for an error message, cut short (a line may hold megabytes)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def check_value(path: str, line: int, what: str, kind: str, value: object) -> None:
    if kind == "nat" and not is_nat(value):
        fail(path, line, f"{what} must be a natural number up to {NUMBER_MAX}, got {_short(value)}")
    elif kind == "slot" and not (is_nat(value) and value >= 1):
        fail(path, line, f"{what} must be a slot (1..{NUMBER_MAX}), got {_short(value)}")
    elif kind == "bool" and not isinstance(value, bool):
        fail(path, line, f"{what} must be true or false, got {_short(value)}")
    elif kind == "int" and not (_is_int(value) and abs(value) < 2**128):
        fail(path, line, f"{what} must be an integer, got {_short(value)}")
    elif kind == "position" and not (value is None or isinstance(value, list)):
        fail(path, line, f"{what} must be a list or null, got {_short(value)}")
    elif kind == "batch" and not (isinstance(value, str) and BATCH_ID.fullmatch(value)):
        fail(path, line, f"{what} must be a batch id (1 to 64 of A-Z a-z 0-9 _ . : + -), "
                         f"got {_short(value)}")
    elif kind == "batch?" and value is not None:  # a batch id, or null (not known)
        check_value(path, line, what, "batch", value)
    elif kind == "ballot":
        ballot(path, line, what, value)
    elif kind == "inst":  # an EPaxos instance id [replica, i], i >= 1
        if not (isinstance(value, list) and len(value) == 2 and is_nat(value[0])
                and value[0] < REPLICAS_MAX and is_nat(value[1]) and value[1] >= 1):
            fail(path, line, f"{what} must be an instance [replica, i] (i >= 1), got {_short(value)}")
    elif kind == "vector":  # one natural number per replica (EPaxos deps, frontiers)
        if not (isinstance(value, list) and 1 <= len(value) <= REPLICAS_MAX
                and all(is_nat(x) for x in value)):
            fail(path, line, f"{what} must be a list of 1 to {REPLICAS_MAX} natural numbers, "
                             f"got {_short(value)}")
    elif kind == "word" and not (isinstance(value, str) and 1 <= len(value) <= 32
                                 and value.isascii() and value.replace("-", "").isalpha()):
        fail(path, line, f"{what} must be a word (a-z and -), got {_short(value)}")
    elif kind == "entries":
        if not isinstance(value, list):
            fail(path, line, f"{what} must be a list of [slot, ballot, batch id]")
        for item in value:
            if not (isinstance(item, list) and len(item) == 3):
                fail(path, line, f"{what}: {_short(item)} is not [slot, ballot, batch id]")
            check_value(path, line, f"{what} slot", "slot", item[0])
            ballot(path, line, f"{what} ballot", item[1])
            check_value(path, line, f"{what} batch", "batch", item[2])


def check_message(path: str, line: int, message: object, protocol: "TraceProtocol",
                  what: str = "message") -> dict:
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        fail(path, line, f"{what} must be an object with a type")
    fields = protocol.message_fields.get(message["type"])
    if fields is None:
        fail(path, line, f"{what} has unknown type {_short(message['type'])}")
    for name, kind in fields.items():
        if name not in message:
            fail(path, line, f"{what} ({message['type']}) lacks {name!r}")
        check_value(path, line, f"{what}.{name}", kind, message[name])
    return message


def parse_event(path: str, line: int, obj: dict, replicas: int,
                protocol: "TraceProtocol") -> Event:
    action = obj.get("action")
    if not isinstance(action, str):
        fail(path, line, "an event needs an \"action\" (a string)")
    if action not in protocol.actions:
        fail(path, line, f"unknown action {_short(action)}")
    replica = obj.get("replica")
    if not (is_nat(replica) and replica < replicas):
        fail(path, line, f"replica must be an id in 0..{replicas - 1}, got {_short(replica)}")
    state = None
    if action not in protocol.stateless_actions:
        if "state" not in obj:
            fail(path, line, f"{action} needs the replica's post-state (\"state\")")
        state = protocol.parse_state(path, line, obj["state"])
    event = Event(line=line, action=action, replica=replica, state=state, raw=obj)
    if action in protocol.receive_actions:
        source = obj.get("source")
        if not (is_nat(source) and source < replicas and source != replica):
            fail(path, line, f"{action} needs a source replica other than {replica}, "
                             f"got {_short(source)}")
        event.source = source
        message = check_message(path, line, obj.get("message"), protocol)
        wanted = protocol.receive_actions[action]
        if message["type"] != wanted:
            fail(path, line, f"{action} handles a {wanted}, not a {message['type']}")
        event.message = message
    if action in protocol.slot_actions:
        if not (is_nat(obj.get("slot")) and obj["slot"] >= 1):
            fail(path, line, f"{action} needs a slot (1..{NUMBER_MAX}), got {_short(obj.get('slot'))}")
        event.slot = obj["slot"]
    if action in protocol.target_actions:
        target = obj.get("target")
        if not (is_nat(target) and target < replicas and target != replica):
            fail(path, line, f"{action} needs a target replica, got {_short(target)}")
        event.target = target
    if "step" in obj:
        if not is_nat(obj["step"]) and not (_is_int(obj["step"]) and 0 <= obj["step"] < 2**63):
            fail(path, line, f"step must be a natural number, got {_short(obj['step'])}")
        event.step = obj["step"]
    sent = obj.get("sent", [])
    if not isinstance(sent, list):
        fail(path, line, "sent must be a list")
    for item in sent:
        if isinstance(item, dict):  # simulator: {"ids", "target", "message"}
            if not (is_nat(item.get("target")) and item["target"] < replicas):
                fail(path, line, f"sent target must be a replica id, got {_short(item.get('target'))}")
            if not isinstance(item.get("ids"), list):
                fail(path, line, "sent ids must be a list")
            check_message(path, line, item.get("message"), protocol, "sent message")
            event.sent.append(item)
        elif not isinstance(item, list):  # runtime: [target, sender, counter]
            fail(path, line, f"sent item {_short(item)} is neither an object nor "
                             f"[target, sender, counter]")
    boot = obj.get("boot")
    if boot is not None and (isinstance(boot, bool) or not isinstance(boot, (int, str))):
        fail(path, line, f"boot must be a number or a string, got {_short(boot)}")
    return event


def _nesting(value: object) -> int:
    """How deeply a parsed JSON value nests (a scalar is 0), without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        if depth > NESTING_MAX:
            return depth
        stack.extend((child, depth + 1) for child in children)
    return deepest


def _read_json(path: str, number: int, data: bytes) -> dict:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        fail(path, number, f"not UTF-8 at byte {error.start}")
    try:
        obj = json.loads(text)
    except RecursionError:
        fail(path, number, f"JSON nested deeper than {NESTING_MAX} levels")
    except ValueError as error:  # JSONDecodeError, or an integer of thousands of digits
        fail(path, number, f"not JSON: {error}")
    if not isinstance(obj, dict):
        fail(path, number, "each line must be a JSON object")
    if _nesting(obj) > NESTING_MAX:
        fail(path, number, f"JSON nested deeper than {NESTING_MAX} levels")
    return obj


def _meta(path: str, number: int, meta: object, replicas: int | None, q1: int | None,
          q2: int | None) -> tuple["TraceProtocol", int, int, int]:
    """The protocol and the cluster shape: the arguments win, then the meta line, then
    3 replicas with majority quorums. Every value is checked, none silently replaced."""
    from lowpaxos.conformance.protocols import DEFAULT_PROTOCOL, known_protocols, trace_protocol

    if not isinstance(meta, dict):
        fail(path, number, "meta must be an object")
    name = meta.get("protocol", DEFAULT_PROTOCOL)
    protocol = trace_protocol(name) if isinstance(name, str) else None
    if protocol is None:
        fail(path, number, f"meta.protocol {_short(name)} has no conformance mapping "
                           f"(known: {', '.join(known_protocols())})")

    def pick(argument: int | None, key: str, default: int) -> tuple[int, str]:
        if argument is not None:
            return argument, f"the {key} given"
        # A protocol without configurable quorums (VR: majorities) writes them as null.
        if key in meta and not (meta[key] is None and protocol.name != "lowpaxos"):
            return meta[key], f"meta.{key}"
        return default, f"the default {key}"

    n, what = pick(replicas, "replicas", 3)
    if not (is_nat(n) and 1 <= n <= REPLICAS_MAX):
        fail(path, number, f"{what} must be a whole number in 1..{REPLICAS_MAX}, got {_short(n)}")
    quorum1, what1 = pick(q1, "q1", n // 2 + 1)
    quorum2, what2 = pick(q2, "q2", n // 2 + 1)
    for value, what in ((quorum1, what1), (quorum2, what2)):
        if not (is_nat(value) and 1 <= value <= n):
            fail(path, number, f"{what} must be a quorum size in 1..{n}, got {_short(value)}")
    if quorum1 == 1:
        # A candidate elected by its own promise takes no HandlePromise step.
        fail(path, number, f"{what1} = 1 cannot be checked: the spec does not model |Q1| = 1")
    return protocol, n, quorum1, quorum2


def load_trace(path: str | Path, replicas: int | None = None, q1: int | None = None,
               q2: int | None = None) -> Trace:
    """Read and validate a trace file. The cluster shape comes from the arguments,
    else from the meta line, else 3 replicas with majority quorums. Quorums that do
    not intersect (|Q1| + |Q2| <= N) are accepted: the replay checks the spec's
    safety invariants, so an unsafe run of such a cluster is caught where it breaks."""
    path = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as error:
        raise TraceFormatError(path, 0, f"cannot read: {error.strerror or error}") from error
    lines = raw.split(b"\n")
    if len(lines) > EVENTS_MAX + 2:
        fail(path, EVENTS_MAX + 2, f"more than {EVENTS_MAX} events")
    meta: dict | None = None
    meta_line = 1
    parsed: list[tuple[int, dict]] = []
    for index, data in enumerate(lines):
        number = index + 1
        if not data.strip():
            continue
        if len(data) > LINE_BYTES_MAX:
            fail(path, number, f"line longer than {LINE_BYTES_MAX} bytes")
        obj = _read_json(path, number, data)
        if "meta" in obj:
            if parsed or meta is not None:
                fail(path, number, "the meta line must come first")
            meta, meta_line = obj["meta"], number
            if not isinstance(meta, dict):
                fail(path, number, "meta must be an object")
            continue
        parsed.append((number, obj))
    protocol, n, quorum1, quorum2 = _meta(path, meta_line, meta or {}, replicas, q1, q2)
    if not parsed:
        fail(path, max(1, len(lines) - 1), "the trace has no events")
    events = [parse_event(path, number, obj, n, protocol) for number, obj in parsed]
    return Trace(path=path, events=with_restarts(events), replicas=n, q1=quorum1, q2=quorum2,
                 meta=meta or {}, protocol=protocol)


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


def load_runtime_traces(paths: list[Path], out: Path, meta: dict | None = None) -> Path:
    """Merge per-replica runtime files (happens-before order) into one trace file;
    ``meta`` adds to its meta line (a VR cluster's: protocol and disk mode)."""
    from lowpaxos.runtime.trace import merge_traces

    merged = merge_traces(paths)
    with open(out, "w", encoding="utf-8") as file:
        file.write(json.dumps({"meta": {"source": "runtime", "replicas": len(paths),
                                        **(meta or {})}}) + "\n")
        for event in merged:
            file.write(json.dumps(event, separators=(",", ":"), sort_keys=True) + "\n")
    return out
