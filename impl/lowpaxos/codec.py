"""The wire codec: compact, positional msgpack, validated on the way in.

A message on the wire is a msgpack array ``[type_tag, field1, field2, ...]``:
no field names, nested values as arrays too (``Ballot`` as ``[round, replica]``,
``Entry`` as ``[slot, ballot, batch]``, ``Command`` as
``[client_id, request_id, op_code, key, value, expected]``). A registry maps each
type tag to the message class and a schema of field kinds; every kind checks
its value both when encoding (a core that builds a malformed message has a bug,
so ``encode`` raises ``EncodeError``) and when decoding (bytes from the network
are untrusted, so ``decode`` raises ``DecodeError`` with a short reason and
never any other exception).

Type tags stay below 128 so that each is a one-byte positive fixint. Ranges:
0..15 shared client messages, 16..47 LowPaxos, 48..79 VR, 80..111 EPaxos.
Other protocols add their messages with ``register_message``.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any, Callable, Sequence

import msgpack

from lowpaxos.core.api import OPS, ClientReply, ClientRequest, Command, ReplyStatus
from lowpaxos.kvs import MGET_KEYS_MAX, MSET_PAIRS_MAX, SCAN_COUNT_MAX, valid_command
from lowpaxos.protocols.lowpaxos import messages as lp

# The largest message, encoded: room for an Accept or CatchupReply carrying one
# command with a 1 MiB value and a 1 MiB expected value (CAS), or a Promise with a
# few such slots. It bounds what a peer can make us parse and reassemble; the
# runtime sends a message larger than one datagram in fragments (runtime/fragments.py).
MESSAGE_BYTES_MAX = 4 << 20
TYPE_TAG_MAX = 127
UINT64_MAX = (1 << 64) - 1
INT64_MAX = (1 << 63) - 1
REPLICA_ID_MAX = 255  # resource-constrained clusters are small; -1 marks "no replica"
KEY_CHARS_MAX = 1024
ITEMS_MAX = 4096  # entries or commands in one message


class DecodeError(ValueError):
    """Bytes that are not exactly one well-formed message.

    ``reason`` is short and machine-readable: "oversized", "undecodable",
    "unknown_type" or "bad_field"; drivers count drops by it.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class EncodeError(ValueError):
    """A message the codec cannot represent: a programmer error in the sender."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class _Invalid(Exception):
    """Raised by field kinds; turned into DecodeError or EncodeError by the caller."""


# ---- Field kinds: each converts one value to its wire form and back, checking both ways ----


class Kind:
    def to_wire(self, value: Any) -> Any:
        raise NotImplementedError

    def from_wire(self, raw: Any) -> Any:
        raise NotImplementedError


class Int(Kind):
    """An int in ``[minimum, maximum]``; a bool is not an int here (msgpack tells them apart)."""

    __slots__ = ("minimum", "maximum")

    def __init__(self, minimum: int = 0, maximum: int = INT64_MAX) -> None:
        self.minimum = minimum
        self.maximum = maximum

    def check(self, value: Any) -> int:
        if type(value) is not int:
            raise _Invalid(f"expected int, got {type(value).__name__}")
        if not self.minimum <= value <= self.maximum:
            raise _Invalid(f"int {value} outside [{self.minimum}, {self.maximum}]")
        return value

    to_wire = check
    from_wire = check


class Bool(Kind):
    def check(self, value: Any) -> bool:
        if type(value) is not bool:
            raise _Invalid(f"expected bool, got {type(value).__name__}")
        return value

    to_wire = check
    from_wire = check


class Str(Kind):
    __slots__ = ("chars_max",)

    def __init__(self, chars_max: int = KEY_CHARS_MAX) -> None:
        self.chars_max = chars_max

    def check(self, value: Any) -> str:
        if type(value) is not str:
            raise _Invalid(f"expected str, got {type(value).__name__}")
        if len(value) > self.chars_max:
            raise _Invalid(f"str of {len(value)} chars, max {self.chars_max}")
        return value

    to_wire = check
    from_wire = check


class Bytes(Kind):
    def check(self, value: Any) -> bytes:
        if type(value) is not bytes:
            raise _Invalid(f"expected bytes, got {type(value).__name__}")
        return value

    to_wire = check
    from_wire = check


class Optional(Kind):
    """``None`` or a value of ``inner`` (msgpack nil on the wire)."""

    __slots__ = ("inner",)

    def __init__(self, inner: Kind) -> None:
        self.inner = inner

    def to_wire(self, value: Any) -> Any:
        return None if value is None else self.inner.to_wire(value)

    def from_wire(self, raw: Any) -> Any:
        return None if raw is None else self.inner.from_wire(raw)


class OneOf(Kind):
    """A value of the first kind whose Python type matches (for ``bytes | bool | None``)."""

    __slots__ = ("choices",)

    def __init__(self, *choices: tuple[type, Kind]) -> None:
        self.choices = choices

    def _pick(self, value: Any) -> Kind:
        for python_type, kind in self.choices:
            if type(value) is python_type:
                return kind
        raise _Invalid(f"unexpected {type(value).__name__}")

    def to_wire(self, value: Any) -> Any:
        return self._pick(value).to_wire(value)

    def from_wire(self, raw: Any) -> Any:
        return self._pick(raw).from_wire(raw)


class NoneKind(Kind):
    def check(self, value: Any) -> None:
        if value is not None:
            raise _Invalid("expected nil")
        return None

    to_wire = check
    from_wire = check


class EnumCode(Kind):
    """An Enum member as a small int code."""

    __slots__ = ("to_code", "from_code")

    def __init__(self, codes: dict[Any, int]) -> None:
        self.to_code = dict(codes)
        self.from_code = {code: member for member, code in codes.items()}
        assert len(self.from_code) == len(self.to_code), "enum codes are unique"

    def to_wire(self, value: Any) -> int:
        try:
            return self.to_code[value]
        except (KeyError, TypeError):
            raise _Invalid(f"not an encodable member: {value!r}") from None

    def from_wire(self, raw: Any) -> Any:
        if type(raw) is not int or raw not in self.from_code:
            raise _Invalid(f"unknown code {raw!r}")
        return self.from_code[raw]


class TupleOf(Kind):
    """A tuple of ``inner`` values (a msgpack array), at most ``items_max`` long."""

    __slots__ = ("inner", "items_max")

    def __init__(self, inner: Kind, items_max: int = ITEMS_MAX) -> None:
        self.inner = inner
        self.items_max = items_max

    def to_wire(self, value: Any) -> list:
        if type(value) is not tuple:
            raise _Invalid(f"expected tuple, got {type(value).__name__}")
        if len(value) > self.items_max:
            raise _Invalid(f"{len(value)} items, max {self.items_max}")
        inner = self.inner.to_wire
        return [inner(item) for item in value]

    def from_wire(self, raw: Any) -> tuple:
        if type(raw) is not list:
            raise _Invalid(f"expected array, got {type(raw).__name__}")
        if len(raw) > self.items_max:
            raise _Invalid(f"{len(raw)} items, max {self.items_max}")
        inner = self.inner.from_wire
        return tuple(inner(item) for item in raw)


class Struct(Kind):
    """A NamedTuple or dataclass as a positional array of its fields, exact arity.

    ``check`` (optional) returns why a decoded value is not well formed, or None;
    it sees the built value so cross-field rules (put carries a value) live here.
    ``optional_tail`` trailing fields may be left off the wire while they hold their
    defaults (fields added later cost no bytes where they are not used).
    """

    __slots__ = ("cls", "names", "kinds", "check", "optional_tail", "defaults")

    def __init__(
        self,
        cls: type,
        fields: Sequence[tuple[str, Kind]],
        check: Callable[[Any], str | None] | None = None,
        optional_tail: int = 0,
    ) -> None:
        names = tuple(name for name, _ in fields)
        declared = _field_names(cls)
        assert names == declared, f"{cls.__name__}: schema {names} != fields {declared}"
        self.cls = cls
        self.names = names
        self.kinds = tuple(kind for _, kind in fields)
        self.check = check
        self.optional_tail = optional_tail
        self.defaults = ()
        if optional_tail:
            by_name = {f.name: f.default for f in dataclasses.fields(cls)}
            self.defaults = tuple(by_name[name] for name in names[-optional_tail:])
            assert dataclasses.MISSING not in self.defaults, "optional fields have defaults"

    def to_wire(self, value: Any) -> list:
        if type(value) is not self.cls:
            raise _Invalid(f"expected {self.cls.__name__}, got {type(value).__name__}")
        if self.check is not None:
            why = self.check(value)
            if why is not None:
                raise _Invalid(f"{self.cls.__name__}: {why}")
        wire = [kind.to_wire(getattr(value, name)) for name, kind in zip(self.names, self.kinds)]
        if self.optional_tail:
            count = len(self.names)
            required = count - self.optional_tail
            while count > required and getattr(value, self.names[count - 1]) == \
                    self.defaults[count - 1 - required]:
                count -= 1
            del wire[count:]
        return wire

    def from_wire(self, raw: Any) -> Any:
        if type(raw) is not list:
            raise _Invalid(f"{self.cls.__name__}: expected array, got {type(raw).__name__}")
        if not len(self.kinds) - self.optional_tail <= len(raw) <= len(self.kinds):
            raise _Invalid(f"{self.cls.__name__}: {len(raw)} fields, expected {len(self.kinds)}")
        value = self.cls(*[kind.from_wire(item) for kind, item in zip(self.kinds, raw)])
        if self.check is not None:
            why = self.check(value)
            if why is not None:
                raise _Invalid(f"{self.cls.__name__}: {why}")
        return value


def _field_names(cls: type) -> tuple[str, ...]:
    if dataclasses.is_dataclass(cls):
        return tuple(f.name for f in dataclasses.fields(cls))
    fields = getattr(cls, "_fields", None)
    assert fields is not None, f"{cls.__name__} is neither a dataclass nor a NamedTuple"
    return tuple(fields)


# ---- Shared kinds ----

UINT = Int(0, INT64_MAX)
SLOT = UINT
REPLICA = Int(0, REPLICA_ID_MAX)
SESSION_ID = Int(0, UINT64_MAX)
OP_CODES = {op: code for code, op in enumerate(OPS)}  # get 0, put 1, delete 2, cas 3


class OpCode(Kind):
    def to_wire(self, value: Any) -> int:
        code = OP_CODES.get(value) if type(value) is str else None
        if code is None:
            raise _Invalid(f"unknown op {value!r}")
        return code

    def from_wire(self, raw: Any) -> str:
        if type(raw) is not int or not 0 <= raw < len(OPS):
            raise _Invalid(f"unknown op code {raw!r}")
        return OPS[raw]


def _command_problem(command: Command) -> str | None:
    # The KVS asserts a put carries a value, so the wire must never deliver one without;
    # every other shape rule is the KVS's own (valid_command).
    if command.op in ("put", "append") and command.value is None:
        return f"{command.op} without a value"
    return valid_command(command)


class ListOf(Kind):
    """A list of ``inner`` values, at most ``items_max`` long (client results)."""

    __slots__ = ("inner", "items_max")

    def __init__(self, inner: Kind, items_max: int = ITEMS_MAX) -> None:
        self.inner = inner
        self.items_max = items_max

    def _check(self, value: Any) -> list:
        if type(value) is not list:
            raise _Invalid(f"expected list, got {type(value).__name__}")
        if len(value) > self.items_max:
            raise _Invalid(f"{len(value)} items, max {self.items_max}")
        return value

    def to_wire(self, value: Any) -> list:
        return [self.inner.to_wire(item) for item in self._check(value)]

    def from_wire(self, raw: Any) -> list:
        return [self.inner.from_wire(item) for item in self._check(raw)]


class Pair(Kind):
    """A (str, bytes) pair as a two-element array (mset)."""

    def to_wire(self, value: Any) -> list:
        if type(value) is not tuple or len(value) != 2:
            raise _Invalid("expected a (key, value) pair")
        return [KEY.to_wire(value[0]), Bytes().to_wire(value[1])]

    def from_wire(self, raw: Any) -> tuple:
        if type(raw) is not list or len(raw) != 2:
            raise _Invalid("expected a [key, value] array")
        return (KEY.from_wire(raw[0]), Bytes().from_wire(raw[1]))


KEY = Str()


# Ops whose commands carry no pairs, keys or count: nearly every command of a batch.
_PLAIN_OPS = {op: OP_CODES[op] for op in
              ("get", "put", "delete", "cas", "getdel", "append", "strlen", "dbsize")}
_PLAIN_BY_CODE = {code: op for op, code in _PLAIN_OPS.items()}


class CommandStruct(Struct):
    """COMMAND, with a fast path for plain commands (no pairs, keys or count).

    A batch holds dozens of commands and the generic path dispatches per field: on the
    leader it was the largest share of encoding an Accept, and decoding one on each
    follower. The fast path only takes a value for which every check of the generic
    path passes, and builds the same wire form (or the same Command); anything else,
    including every malformed value, goes the generic way and gets its exact error.
    tests/test_codec.py checks that both paths agree.
    """

    def to_wire(self, value: Any) -> list:
        if type(value) is Command:
            client_id, request_id, op, key = (value.client_id, value.request_id, value.op,
                                              value.key)
            data, expected = value.value, value.expected
            code = _PLAIN_OPS.get(op) if type(op) is str else None
            if (code is not None and type(client_id) is int and 0 <= client_id <= UINT64_MAX
                    and type(request_id) is int and 0 <= request_id <= UINT64_MAX
                    and type(key) is str and len(key) <= KEY_CHARS_MAX
                    and (type(data) is bytes or data is None and op not in ("put", "append"))
                    and (expected is None or type(expected) is bytes)
                    and value.pairs == () and type(value.pairs) is tuple
                    and value.keys == () and type(value.keys) is tuple
                    and type(value.count) is int and value.count == 0):
                return [client_id, request_id, code, key, data, expected]
        return super().to_wire(value)

    def from_wire(self, raw: Any) -> Any:
        if type(raw) is list and len(raw) == 6:
            client_id, request_id, code, key, data, expected = raw
            op = _PLAIN_BY_CODE.get(code) if type(code) is int else None
            if (op is not None and type(client_id) is int and 0 <= client_id <= UINT64_MAX
                    and type(request_id) is int and 0 <= request_id <= UINT64_MAX
                    and type(key) is str and len(key) <= KEY_CHARS_MAX
                    and (type(data) is bytes or data is None and op not in ("put", "append"))
                    and (expected is None or type(expected) is bytes)):
                return Command(client_id, request_id, op, key, data, expected)
        return super().from_wire(raw)


BALLOT = Struct(lp.Ballot, [("round", UINT), ("replica", Int(-1, REPLICA_ID_MAX))])
COMMAND = CommandStruct(
    Command,
    [
        ("client_id", SESSION_ID),
        ("request_id", SESSION_ID),
        ("op", OpCode()),
        ("key", Str()),
        ("value", Optional(Bytes())),
        ("expected", Optional(Bytes())),
        ("pairs", TupleOf(Pair(), MSET_PAIRS_MAX)),
        ("keys", TupleOf(KEY, MGET_KEYS_MAX)),
        ("count", Int(0, SCAN_COUNT_MAX)),
    ],
    check=_command_problem,
    optional_tail=3,
)
BATCH = TupleOf(COMMAND)
ENTRY = Struct(lp.Entry, [("slot", SLOT), ("ballot", BALLOT), ("batch", BATCH)])
ENTRIES = TupleOf(ENTRY)
# A result: bytes, bool, int, nil, or a list of those (mget; scan's [next, [keys]]).
_SCALAR = ((bytes, Bytes()), (bool, Bool()), (int, Int(-INT64_MAX - 1, INT64_MAX)),
           (type(None), NoneKind()))
_ITEM = OneOf(*_SCALAR, (list, ListOf(OneOf(*_SCALAR))))
RESULT = OneOf(*_SCALAR, (list, ListOf(_ITEM)))
# Codes are fixed here, not taken from declaration order, so reordering the Enum
# cannot silently change the wire format.
REPLY_STATUS = EnumCode(
    {ReplyStatus.OK: 0, ReplyStatus.NOT_LEADER: 1, ReplyStatus.BUSY: 2, ReplyStatus.INVALID: 3}
)
assert set(REPLY_STATUS.to_code) == set(ReplyStatus), "every ReplyStatus has a wire code"


# ---- The registry ----

_BY_TAG: dict[int, Struct] = {}
_TAG_BY_CLASS: dict[type, int] = {}


def register_message(tag: int, cls: type, fields: Sequence[tuple[str, Kind]]) -> None:
    """Make ``cls`` encodable under ``tag``; ``fields`` lists every field, in order."""
    assert type(tag) is int and 0 <= tag <= TYPE_TAG_MAX, f"tag {tag} outside 0..{TYPE_TAG_MAX}"
    assert tag not in _BY_TAG, f"tag {tag} already names {_BY_TAG[tag].cls.__name__}"
    assert cls not in _TAG_BY_CLASS, f"{cls.__name__} already registered"
    _BY_TAG[tag] = Struct(cls, fields)
    _TAG_BY_CLASS[cls] = tag


def registered_types() -> dict[int, type]:
    return {tag: struct.cls for tag, struct in sorted(_BY_TAG.items())}


# Shared client messages.
register_message(1, ClientRequest, [("command", COMMAND)])
register_message(
    2,
    ClientReply,
    [
        ("client_id", SESSION_ID),
        ("request_id", SESSION_ID),
        ("status", REPLY_STATUS),
        ("result", RESULT),
        ("leader_hint", Optional(REPLICA)),
    ],
)

# LowPaxos (tags 16..47).
register_message(16, lp.Prepare, [("ballot", BALLOT), ("commit_index", SLOT)])
register_message(
    17, lp.Promise, [("ballot", BALLOT), ("entries", ENTRIES), ("commit_index", SLOT)]
)
register_message(
    18,
    lp.Accept,
    [
        ("ballot", BALLOT),
        ("slot", SLOT),
        ("batch", BATCH),
        ("commit_index", SLOT),
        ("truncate_index", SLOT),
    ],
)
register_message(19, lp.Accepted, [("ballot", BALLOT), ("slot", SLOT), ("commit_index", SLOT)])
register_message(20, lp.Reject, [("ballot", BALLOT), ("commit_index", SLOT), ("lagging", Bool())])
register_message(
    21, lp.Heartbeat, [("ballot", BALLOT), ("commit_index", SLOT), ("truncate_index", SLOT)]
)
register_message(22, lp.HeartbeatReply, [("ballot", BALLOT), ("commit_index", SLOT)])
register_message(23, lp.CatchupRequest, [("ballot", BALLOT), ("from_slot", SLOT)])
register_message(
    24, lp.CatchupReply, [("ballot", BALLOT), ("entries", ENTRIES), ("commit_index", SLOT)]
)
class FixedTuple(Kind):
    """A tuple of exactly ``len(kinds)`` values, one per kind (a msgpack array)."""

    __slots__ = ("kinds",)

    def __init__(self, *kinds: Kind) -> None:
        self.kinds = kinds

    def to_wire(self, value: Any) -> list:
        if type(value) is not tuple or len(value) != len(self.kinds):
            raise _Invalid(f"expected a {len(self.kinds)}-tuple")
        return [kind.to_wire(item) for kind, item in zip(self.kinds, value)]

    def from_wire(self, raw: Any) -> tuple:
        if type(raw) is not list or len(raw) != len(self.kinds):
            raise _Invalid(f"expected a {len(self.kinds)}-array")
        return tuple(kind.from_wire(item) for kind, item in zip(self.kinds, raw))


class Digest(Kind):
    """A 128-bit digest (kvs.DIGEST_MODULUS) as 16 bytes: msgpack ints stop at 64 bits."""

    def to_wire(self, value: Any) -> bytes:
        if type(value) is not int or not 0 <= value < 1 << 128:
            raise _Invalid("a digest is an int in [0, 2**128)")
        return value.to_bytes(16, "big")

    def from_wire(self, raw: Any) -> int:
        if type(raw) is not bytes or len(raw) != 16:
            raise _Invalid("a digest is 16 bytes")
        return int.from_bytes(raw, "big")


ROW_KIND = Int(0, 1)
VERSION = Int(-1, INT64_MAX)
# (phase, kind, key or None): see kvs.Cursor; (kind, key): a split point.
CURSOR = Optional(FixedTuple(Int(0, 1), ROW_KIND, Optional(KEY)))
SPLIT = Optional(FixedTuple(ROW_KIND, KEY))
ROW = FixedTuple(ROW_KIND, KEY, Optional(Bytes()), VERSION)
register_message(
    25,
    lp.SnapshotRequest,
    [("ballot", BALLOT), ("image_index", SLOT), ("base", SLOT), ("split", SPLIT),
     ("cursor", CURSOR), ("credits", Int(1, 1024))],
)
register_message(
    26,
    lp.SnapshotChunk,
    [("ballot", BALLOT), ("image_index", SLOT), ("digest", Digest()), ("base", SLOT),
     ("split", SPLIT), ("cursor", CURSOR), ("next_cursor", CURSOR), ("rows", TupleOf(ROW))],
)

assert all(cls in _TAG_BY_CLASS for cls in lp.MESSAGE_TYPES), "every LowPaxos message has a tag"


# ---- Encoding and decoding ----


def encode(message: Any) -> bytes:
    """The wire bytes of ``message``; raises EncodeError for anything not encodable."""
    tag = _TAG_BY_CLASS.get(type(message))
    if tag is None:
        raise EncodeError("unknown_type", type(message).__name__)
    try:
        wire = _BY_TAG[tag].to_wire(message)
    except _Invalid as error:
        raise EncodeError("bad_field", str(error)) from None
    wire[0:0] = [tag]
    data = msgpack.packb(wire, use_bin_type=True)
    if len(data) > MESSAGE_BYTES_MAX:
        raise EncodeError("oversized", f"{len(data)} bytes, max {MESSAGE_BYTES_MAX}")
    return data


def encoded_size(message: Any) -> int:
    return len(encode(message))


def decode(data: bytes | bytearray | memoryview) -> Any:
    """The message in ``data``; raises DecodeError (and nothing else) unless ``data`` is
    exactly one well-formed, registered message."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"decode takes bytes, got {type(data).__name__}")
    if len(data) > MESSAGE_BYTES_MAX:
        raise DecodeError("oversized", f"{len(data)} bytes, max {MESSAGE_BYTES_MAX}")
    try:
        wire = msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=True)
    except Exception as error:  # noqa: BLE001
        # msgpack reports malformed input through several exception types (ExtraData,
        # FormatError, StackError, OutOfData, UnicodeDecodeError, ValueError, TypeError);
        # all of them mean the same thing to a receiver: these bytes are not a message.
        raise DecodeError("undecodable", type(error).__name__) from None
    if type(wire) is not list or not wire:
        raise DecodeError("bad_field", "a message is a non-empty array")
    tag = wire[0]
    struct = _BY_TAG.get(tag) if type(tag) is int else None
    if struct is None:
        raise DecodeError("unknown_type", repr(tag)[:32])
    try:
        return struct.from_wire(wire[1:])
    except _Invalid as error:
        raise DecodeError("bad_field", str(error)) from None
    except (TypeError, ValueError) as error:
        # A class constructor may itself refuse a value (a later protocol's __post_init__);
        # that is still malformed input, not a crash.
        raise DecodeError("bad_field", f"{struct.cls.__name__}: {error}") from None
