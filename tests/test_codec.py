"""The wire codec: every message round-trips, and untrusted bytes only ever raise DecodeError."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from lowpaxos import codec
from lowpaxos.codec import DecodeError, EncodeError, decode, encode, encoded_size
from lowpaxos.core.api import ClientReply, ClientRequest, Command, ReplyStatus
from lowpaxos.protocols.lowpaxos import messages as lp

from tests.strategies import messages

ACCEPT = lp.Accept(lp.Ballot(3, 1), 5, (Command(7, 9, "put", "k", b"v"),), 4, 2)


def test_every_protocol_message_type_is_registered():
    """The registry covers LowPaxos MESSAGE_TYPES and the client messages, so nothing a core
    sends can be unencodable."""
    registered = set(codec.registered_types().values())
    assert set(lp.MESSAGE_TYPES) <= registered
    assert {ClientRequest, ClientReply} <= registered


@given(messages)
@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
def test_round_trip(message):
    """decode(encode(m)) == m for generated well-formed messages of every type, and
    encoded_size agrees with the bytes."""
    data = encode(message)
    assert decode(data) == message
    assert type(decode(data)) is type(message)
    assert encoded_size(message) == len(data)


def test_wire_form_is_positional_and_compact():
    """A message is [tag, fields...] with nested arrays and no field names."""
    wire = msgpack.unpackb(encode(ACCEPT), raw=False)
    assert wire == [18, [3, 1], 5, [[7, 9, 1, "k", b"v", None]], 4, 2]
    assert encoded_size(ACCEPT) < 24


@given(st.binary(max_size=256))
@settings(max_examples=1000)
@example(b"")
@example(b"\xc1")  # the one byte msgpack never uses
@example(b"\x90")  # empty array
@example(b"\x91\xc3")  # [true]: a bool where the tag goes
@example(b"\xdd\xff\xff\xff\xff")  # array32 claiming 4 billion items
def test_random_bytes_raise_only_decode_error(data):
    """Arbitrary bytes decode to a message or raise DecodeError, never anything else."""
    try:
        decode(data)
    except DecodeError as error:
        assert error.reason in {"undecodable", "unknown_type", "bad_field", "oversized"}


@given(messages, st.data())
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_truncated_and_bit_flipped_encodings(message, data):
    """Every proper prefix of an encoding is refused; a flipped bit either is refused or
    decodes to some well-formed message (which then re-encodes cleanly)."""
    encoded = encode(message)
    cut = data.draw(st.integers(min_value=0, max_value=len(encoded) - 1))
    with pytest.raises(DecodeError):
        decode(encoded[:cut])
    bit = data.draw(st.integers(min_value=0, max_value=len(encoded) * 8 - 1))
    flipped = bytearray(encoded)
    flipped[bit // 8] ^= 1 << (bit % 8)
    try:
        result = decode(bytes(flipped))
    except DecodeError:
        return
    assert decode(encode(result)) == result


def test_unknown_type_tag():
    """A tag nobody registered is "unknown_type"; so is a tag that is not an int."""
    for wire in ([99, 1, 2], [126], ["Accept", 1], [None]):
        with pytest.raises(DecodeError) as caught:
            decode(msgpack.packb(wire))
        assert caught.value.reason == "unknown_type"


@pytest.mark.parametrize(
    "wire",
    [
        [16, [1, 0], "5"],  # str where an int goes
        [16, [1, 0], -1],  # negative commit index
        [16, [1, 0], 1.5],  # float
        [16, [1, 0], True],  # bool is not an int on the wire
        [16, [1, 0]],  # missing field
        [16, [1, 0], 1, 2],  # extra field
        [16, [1], 1],  # short ballot
        [16, 1, 1],  # ballot not nested
        [16, [1, 300], 1],  # replica id out of range
        [18, [1, 0], -3, [], 0, 0],  # negative slot
        [18, [1, 0], 3, [[1, 2, 99, "k", None, None]], 0, 0],  # unknown op code
        [18, [1, 0], 3, [[1, 2, 1, "k", None, None]], 0, 0],  # put without a value
        [18, [1, 0], 3, [[1, 2, 0, "k", "v", None]], 0, 0],  # str where bytes go
        [18, [1, 0], 3, [1, 2, 0, "k", None, None], 0, 0],  # command not nested in a batch
        [17, [1, 0], [[1, [1, 0]]], 0],  # entry missing its batch
        [20, [1, 0], 0, 1],  # int where a bool goes
        [2, 1, 2, 9, None, None],  # unknown reply status
        [2, 1, 2, 0, 1.0, None],  # float result
        [2, 1, 2, 0, None, -1],  # negative leader hint
        [1, {"client_id": 1}],  # a map instead of an array
        {"tag": 16},  # not an array at all
        [],  # empty array
    ],
)
def test_wrong_fields_are_bad_field(wire):
    """Wrong type, missing or extra field, negative slot, wrong nesting: "bad_field"."""
    with pytest.raises(DecodeError) as caught:
        decode(msgpack.packb(wire, use_bin_type=True))
    assert caught.value.reason == "bad_field"


def test_trailing_bytes_and_oversized_input():
    """Bytes after a complete message and inputs over the bound are refused."""
    with pytest.raises(DecodeError) as caught:
        decode(encode(ACCEPT) + b"\x00")
    assert caught.value.reason == "undecodable"
    with pytest.raises(DecodeError) as caught:
        decode(b"\x00" * (codec.MESSAGE_BYTES_MAX + 1))
    assert caught.value.reason == "oversized"


def test_encode_refuses_malformed_messages():
    """A core that builds a malformed message has a bug; encode says so instead of sending it."""
    for message in (
        lp.Prepare(lp.Ballot(1, 0), -1),
        lp.Accepted(lp.Ballot(1, 0), True, 0),
        ClientRequest(Command(1, 1, "put", "k", None)),
        ClientRequest(Command(1, 1, "incr", "k", b"1")),
        lp.Promise(lp.Ballot(1, 0), [], 0),  # a list where a tuple goes
        object(),
    ):
        with pytest.raises(EncodeError):
            encode(message)


def test_reply_status_and_results():
    """ReplyStatus is a small int and every result shape survives."""
    for status in ReplyStatus:
        for result in (None, True, False, b"", b"x"):
            reply = ClientReply(1, 2, status, result, 0)
            assert decode(encode(reply)) == reply


# ---- The plain-command fast path agrees with the generic path ----

_GENERIC_COMMAND = codec.Struct(Command, list(zip(codec.COMMAND.names, codec.COMMAND.kinds)),
                                check=codec.COMMAND.check, optional_tail=3)
_FIELD = st.one_of(st.none(), st.booleans(), st.integers(-3, 2**64 + 3), st.text(max_size=4),
                   st.binary(max_size=4), st.just(()), st.just([]), st.just((("k", b"v"),)),
                   st.text(min_size=1020, max_size=1030))


def _outcome(kind, function, value):
    try:
        return ("ok", function(kind, value))
    except codec._Invalid as error:  # noqa: SLF001 - the reason must be the same too
        return ("invalid", str(error))


@given(st.one_of(
    st.builds(Command, _FIELD, _FIELD, st.sampled_from(codec.OPS + ("nope", 3)), _FIELD, _FIELD,
              _FIELD, st.one_of(st.just(()), _FIELD), st.one_of(st.just(()), _FIELD),
              st.one_of(st.just(0), _FIELD)),
    st.builds(Command, st.integers(0, 9), st.integers(0, 9), st.sampled_from(codec.OPS),
              st.text(max_size=3), st.one_of(st.none(), st.binary(max_size=3)),
              st.one_of(st.none(), st.binary(max_size=3)),
              st.sampled_from([(), (("k", b"v"),), [], ((1, b"v"),)]),
              st.sampled_from([(), ("k",), [], (b"k",)]),
              st.sampled_from([0, 0, 1, 7, -1, True, 10**7]))))
@settings(max_examples=400)
def test_command_fast_path_encodes_exactly_as_the_generic_path(command):
    """Every Command, well formed or not, gets the same wire form or the same error from
    CommandStruct's fast path as from the generic Struct path."""
    assert _outcome(codec.COMMAND, codec.CommandStruct.to_wire, command) == \
        _outcome(_GENERIC_COMMAND, codec.Struct.to_wire, command)


@given(st.lists(_FIELD, min_size=5, max_size=10) | st.builds(
    lambda c, r, code, key, value, expected: [c, r, code, key, value, expected],
    st.integers(-1, 2**64), st.integers(-1, 2**64), st.integers(-1, len(codec.OPS)),
    st.text(max_size=3) | st.binary(max_size=2), st.none() | st.binary(max_size=3) | st.text(max_size=1),
    st.none() | st.binary(max_size=3) | st.integers(0, 1)))
@settings(max_examples=400)
def test_command_fast_path_decodes_exactly_as_the_generic_path(raw):
    """Every wire array decodes to the same Command, or fails with the same reason, on
    the fast path as on the generic one."""
    assert _outcome(codec.COMMAND, codec.CommandStruct.from_wire, raw) == \
        _outcome(_GENERIC_COMMAND, codec.Struct.from_wire, raw)
