"""RESP command handlers and the COMMANDS table that ``Replica.run_command`` dispatches on.

A handler is ``async handler(replica, session, arguments) -> bytes``: it checks its
arguments (``replica.check_key``/``check_value``, raising ``BadArgument`` with the
RESP error text), runs KVS commands through ``replica.kvs`` and returns the encoded
RESP reply. Handlers never touch the core directly, so the replica's loops and the
command set change independently.

Each table entry also says which keys the command touches. A connection runs its
pipelined commands concurrently (pipeline.py); these key sets are what keeps a
command from overtaking an earlier command of the same connection on one of its keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Awaitable, Callable

from lowpaxos.kvs import MGET_KEYS_MAX, MSET_PAIRS_MAX, SCAN_COUNT_MAX
from lowpaxos.runtime import resp

# Get-then-cas loops (INCR family, APPEND) give up after losing this many races.
CAS_RETRIES_MAX = 16
# MSET carries every pair in one log command, so its total (keys plus values) is
# bounded on its own: like the largest value, so an MSET travels in its own slot and
# one Accept (the core counts its pairs in its batch and window estimates).
MSET_BYTES_MAX = 1 << 20
SCAN_COUNT_DEFAULT = 10
# Python refuses to turn ints of more than 4300 decimal digits into text and back
# (sys.int_info.default_max_str_digits); a SCAN cursor of a key of n bytes has about
# 2.41 * (n + 1) digits, so cursors exist for keys up to this many bytes.
CURSOR_KEY_BYTES_MAX = 1780


class BadArgument(Exception):
    """An argument the command refuses; the message is the RESP error text."""


class Session:
    """One client id with request ids increasing from 1: one lane of a connection's
    pipeline (pipeline.Lanes), never used by two commands at once."""

    __slots__ = ("client_id", "request_id")

    def __init__(self, client_id: int) -> None:
        self.client_id = client_id
        self.request_id = 0

    def next_request_id(self) -> int:
        self.request_id += 1
        return self.request_id


Handler = Callable[..., Awaitable[bytes]]
# The keys a command touches, from its whole argument list (name first); None means
# every key (DBSIZE, SCAN): such a command is ordered after and before every other.
KeysOf = Callable[[list[bytes]], "frozenset[bytes] | None"]

NO_KEYS: frozenset[bytes] = frozenset()


def no_keys(arguments: list[bytes]) -> frozenset[bytes]:
    return NO_KEYS


def first_key(arguments: list[bytes]) -> frozenset[bytes]:
    return frozenset((arguments[1],))


def every_argument(arguments: list[bytes]) -> frozenset[bytes]:
    return frozenset(arguments[1:])


def pair_keys(arguments: list[bytes]) -> frozenset[bytes]:
    return frozenset(arguments[1::2])


def keyspace(arguments: list[bytes]) -> None:
    return None


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """One command: arity as in Redis' COMMAND (n exactly, -n at least n, the name
    counted), its handler, the keys it touches, whether it waits for every earlier
    command of its connection (multi-step and many-key commands), and whether the
    connection closes after its reply (QUIT)."""

    arity: int
    handler: Handler
    keys: KeysOf = no_keys
    after_all: bool = False
    closes: bool = False


def resolve(arguments: list[bytes]) -> CommandSpec | bytes:
    """The command's spec, or the RESP error for an unknown name or a wrong argument count."""
    name = arguments[0].upper()
    spec = COMMANDS.get(name)
    if spec is None:
        shown = arguments[0][:64].decode("utf-8", "replace")
        return resp.error(f"ERR unknown command '{shown}'")
    arity = spec.arity
    if (arity >= 0 and len(arguments) != arity) or (arity < 0 and len(arguments) < -arity):
        return wrong_arguments(name)
    return spec


def wrong_arguments(name: bytes) -> bytes:
    shown = name.decode("ascii", "replace").lower()
    return resp.error(f"ERR wrong number of arguments for '{shown}' command")


def check_key(limits, key: bytes) -> str:
    if len(key) > limits.key_bytes_max:
        raise BadArgument(f"ERR key of {len(key)} bytes; the maximum is {limits.key_bytes_max}")
    # latin-1 maps every byte string to a distinct str and back: binary keys work.
    return key.decode("latin-1")


def check_value(limits, value: bytes) -> bytes:
    if len(value) > limits.value_bytes_max:
        raise BadArgument(f"ERR value of {len(value)} bytes refused; the maximum is "
                          f"{limits.value_bytes_max} bytes (value_bytes_max)")
    return value


# ---- SCAN cursors ----
#
# Redis clients treat the cursor as an unsigned integer (redis-py's scan_iter does
# int(cursor)), and 0 both starts and ends a scan. The KVS continues after a key, so
# the cursor is that key as a number: int.from_bytes(b"\x01" + key). The leading 1
# keeps leading zero bytes of the key and makes every key, the empty one too, nonzero.


def encode_cursor(after: bytes | None) -> bytes:
    if after is None:
        return b"0"
    return str(int.from_bytes(b"\x01" + after, "big")).encode("ascii")


def decode_cursor(text: bytes, key_bytes_max: int) -> str | None:
    """The key a SCAN continues after (latin-1 str, as check_key gives), or None to
    start; BadArgument("ERR invalid cursor") for anything no SCAN returned."""
    key_bytes_max = min(key_bytes_max, CURSOR_KEY_BYTES_MAX)
    # 2.41 digits per byte, rounded up, checked before int() so a huge text costs nothing.
    digits_max = (key_bytes_max + 1) * 241 // 100 + 2
    if not text.isdigit() or len(text) > digits_max:
        raise BadArgument("ERR invalid cursor")
    number = int(text)
    if number == 0:
        return None
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    if raw[0] != 1 or len(raw) - 1 > key_bytes_max:
        raise BadArgument("ERR invalid cursor")
    return raw[1:].decode("latin-1")


# ---- Handlers ----


async def command_ping(replica, session, arguments):
    return resp.PONG if not arguments else resp.bulk(arguments[0])


async def command_echo(replica, session, arguments):
    return resp.bulk(arguments[0])


async def command_get(replica, session, arguments):
    key = replica.check_key(arguments[0])
    return resp.bulk(await replica.kvs(session, "get", key))


async def command_set(replica, session, arguments):
    key = replica.check_key(arguments[0])
    value = replica.check_value(arguments[1])
    options = [option.upper() for option in arguments[2:]]
    if not options:
        await replica.kvs(session, "put", key, value)
        return resp.OK
    if options == [b"NX"]:
        # Create only if absent: a compare-and-set against "no value".
        swapped = await replica.kvs(session, "cas", key, value, None)
        return resp.OK if swapped else resp.NIL
    return resp.error("ERR syntax error: SET supports only the NX option")


async def command_setnx(replica, session, arguments):
    """SETNX key value: SET NX with Redis' integer reply (1 set, 0 the key exists)."""
    key = replica.check_key(arguments[0])
    value = replica.check_value(arguments[1])
    swapped = await replica.kvs(session, "cas", key, value, None)
    return resp.integer(1 if swapped else 0)


async def command_getdel(replica, session, arguments):
    key = replica.check_key(arguments[0])
    return resp.bulk(await replica.kvs(session, "getdel", key))


async def command_append(replica, session, arguments):
    """APPEND key value: a get, then a compare-and-set to the joined value, retried at
    most CAS_RETRIES_MAX times. Not the KVS's append: that one has no bound, and a
    value must never outgrow value_bytes_max (it has to fit in a datagram and in a
    state-transfer chunk on every replica), so the new length is checked first."""
    key = replica.check_key(arguments[0])
    suffix = replica.check_value(arguments[1])
    limit = replica.limits.value_bytes_max
    for _ in range(CAS_RETRIES_MAX):
        current = await replica.kvs(session, "get", key)
        joined = (current or b"") + suffix
        if len(joined) > limit:
            return resp.error(f"ERR APPEND would make a value of {len(joined)} bytes; the "
                              f"maximum is {limit} bytes (value_bytes_max)")
        if await replica.kvs(session, "cas", key, joined, current):
            return resp.integer(len(joined))
    return resp.error(f"TRYAGAIN APPEND lost {CAS_RETRIES_MAX} races for the key; retry")


async def command_strlen(replica, session, arguments):
    key = replica.check_key(arguments[0])
    return resp.integer(await replica.kvs(session, "strlen", key))


async def command_mget(replica, session, arguments):
    """MGET key [key ...]: one KVS command, so the values are read at one point."""
    if len(arguments) > MGET_KEYS_MAX:
        raise BadArgument(f"ERR MGET of {len(arguments)} keys; the maximum is {MGET_KEYS_MAX}")
    keys = tuple(replica.check_key(key) for key in arguments)
    return resp.array(await replica.kvs(session, "mget", "", keys=keys))


async def command_mset(replica, session, arguments):
    """MSET key value [key value ...]: every pair in one KVS command, so no reader ever
    sees some pairs written and others not."""
    if len(arguments) % 2:
        return wrong_arguments(b"MSET")
    if len(arguments) // 2 > MSET_PAIRS_MAX:
        raise BadArgument(f"ERR MSET of {len(arguments) // 2} pairs; the maximum is "
                          f"{MSET_PAIRS_MAX}")
    pairs = tuple((replica.check_key(key), replica.check_value(value))
                  for key, value in zip(arguments[0::2], arguments[1::2]))
    total = sum(len(key) + len(value) for key, value in pairs)
    if total > MSET_BYTES_MAX:
        raise BadArgument(f"ERR MSET of {total} bytes (keys and values) refused; the maximum "
                          f"is {MSET_BYTES_MAX} bytes")
    await replica.kvs(session, "mset", "", pairs=pairs)
    return resp.OK


async def command_dbsize(replica, session, arguments):
    return resp.integer(await replica.kvs(session, "dbsize", ""))


async def command_scan(replica, session, arguments):
    """SCAN cursor [MATCH pattern] [COUNT n]: one consistent read through the log per
    call. COUNT is a hint as in Redis; above SCAN_COUNT_MAX it is taken as that."""
    after = decode_cursor(arguments[0], replica.limits.key_bytes_max)
    pattern: bytes | None = None
    count = SCAN_COUNT_DEFAULT
    options = arguments[1:]
    if len(options) % 2:
        raise BadArgument("ERR syntax error")
    for name, argument in zip(options[0::2], options[1::2]):  # bounded by arguments_max
        name = name.upper()
        if name == b"MATCH":
            if len(argument) > replica.limits.key_bytes_max:
                raise BadArgument(f"ERR MATCH pattern of {len(argument)} bytes; the maximum "
                                  f"is {replica.limits.key_bytes_max} (key_bytes_max)")
            # "*" matches everything: leave the KVS nothing to compare.
            pattern = None if argument == b"*" else argument
        elif name == b"COUNT":
            count = parse_integer(argument)
            if count < 1:
                raise BadArgument("ERR syntax error")
            count = min(count, SCAN_COUNT_MAX)
        else:
            raise BadArgument("ERR syntax error")
    keys = () if after is None else (after,)
    next_after, found = await replica.kvs(session, "scan", "", pattern, keys=keys, count=count)
    if next_after is not None and len(next_after) > CURSOR_KEY_BYTES_MAX:
        return resp.error(f"ERR SCAN cannot continue after a key of {len(next_after)} bytes "
                          f"(cursors exist for keys up to {CURSOR_KEY_BYTES_MAX} bytes)")
    return b"*2\r\n" + resp.bulk(encode_cursor(next_after)) + resp.array(found)


async def command_del(replica, session, arguments):
    keys = [replica.check_key(key) for key in arguments]
    deleted = 0
    for key in keys:  # one command per key: DEL of several keys is not atomic here
        deleted += bool(await replica.kvs(session, "delete", key))
    return resp.integer(deleted)


async def command_exists(replica, session, arguments):
    """EXISTS key [key ...]: one mget; a key named twice counts twice, as in Redis."""
    if len(arguments) > MGET_KEYS_MAX:
        raise BadArgument(f"ERR EXISTS of {len(arguments)} keys; the maximum is {MGET_KEYS_MAX}")
    keys = tuple(replica.check_key(key) for key in arguments)
    values = await replica.kvs(session, "mget", "", keys=keys)
    return resp.integer(sum(value is not None for value in values))


async def increment(replica, session, key_bytes: bytes, amount: int):
    """INCR family: a get, then a compare-and-set from the value read (the KVS has no
    increment), retried at most CAS_RETRIES_MAX times when another writer got between."""
    key = replica.check_key(key_bytes)
    for _ in range(CAS_RETRIES_MAX):
        current = await replica.kvs(session, "get", key)
        try:
            number = 0 if current is None else int(current)
        except ValueError:
            return resp.error("ERR value is not an integer or out of range")
        if not -(1 << 63) <= number + amount < (1 << 63):
            return resp.error("ERR increment or decrement would overflow")
        if await replica.kvs(session, "cas", key, str(number + amount).encode(), current):
            return resp.integer(number + amount)
    return resp.error(f"TRYAGAIN INCR lost {CAS_RETRIES_MAX} races for the key; retry")


def parse_integer(text: bytes) -> int:
    """A signed 64-bit integer argument, as Redis reads one."""
    try:
        amount = int(text)
    except ValueError:
        raise BadArgument("ERR value is not an integer or out of range") from None
    if not -(1 << 63) <= amount < (1 << 63):
        raise BadArgument("ERR value is not an integer or out of range")
    return amount


async def command_incr(replica, session, arguments):
    return await increment(replica, session, arguments[0], 1)


async def command_decr(replica, session, arguments):
    return await increment(replica, session, arguments[0], -1)


async def command_incrby(replica, session, arguments):
    return await increment(replica, session, arguments[0], parse_integer(arguments[1]))


async def command_decrby(replica, session, arguments):
    return await increment(replica, session, arguments[0], -parse_integer(arguments[1]))


async def command_cas(replica, session, arguments):
    """CAS key expected new: set key to new if it now holds expected; 1 if swapped, else 0."""
    key = replica.check_key(arguments[0])
    expected = arguments[1]
    value = replica.check_value(arguments[2])
    swapped = await replica.kvs(session, "cas", key, value, expected)
    return resp.integer(1 if swapped else 0)


async def command_info(replica, session, arguments):
    return resp.bulk(replica.info_text().encode())


async def command_ok(replica, session, arguments):
    return resp.OK


async def command_empty_array(replica, session, arguments):
    return resp.EMPTY_ARRAY


async def command_select(replica, session, arguments):
    if arguments[0] != b"0":
        return resp.error("ERR DB index is out of range (only database 0 exists)")
    return resp.OK


async def command_hello(replica, session, arguments):
    if arguments and arguments[0] not in (b"2",):
        return resp.error("NOPROTO unsupported protocol version; only RESP2")
    return resp.error("ERR HELLO is not supported; RESP2 is the default")


# The INCR family and APPEND are two log commands (a get, then a cas) and MGET reads
# many keys: they wait for every earlier command of their connection (after_all).
# DBSIZE and SCAN read the whole key space (keyspace): nothing of their connection
# passes them in either direction.
COMMANDS: dict[bytes, CommandSpec] = {
    b"PING": CommandSpec(-1, command_ping),
    b"ECHO": CommandSpec(2, command_echo),
    b"GET": CommandSpec(2, command_get, first_key),
    b"SET": CommandSpec(-3, command_set, first_key),
    b"SETNX": CommandSpec(3, command_setnx, first_key),
    b"GETDEL": CommandSpec(2, command_getdel, first_key),
    b"APPEND": CommandSpec(3, command_append, first_key, after_all=True),
    b"STRLEN": CommandSpec(2, command_strlen, first_key),
    b"MGET": CommandSpec(-2, command_mget, every_argument, after_all=True),
    b"MSET": CommandSpec(-3, command_mset, pair_keys),
    b"DBSIZE": CommandSpec(1, command_dbsize, keyspace),
    b"SCAN": CommandSpec(-2, command_scan, keyspace),
    b"DEL": CommandSpec(-2, command_del, every_argument),
    b"EXISTS": CommandSpec(-2, command_exists, every_argument),
    b"INCR": CommandSpec(2, command_incr, first_key, after_all=True),
    # redis-py's incr() sends INCRBY key 1
    b"INCRBY": CommandSpec(3, command_incrby, first_key, after_all=True),
    b"DECR": CommandSpec(2, command_decr, first_key, after_all=True),
    b"DECRBY": CommandSpec(3, command_decrby, first_key, after_all=True),
    b"CAS": CommandSpec(4, command_cas, first_key),
    b"INFO": CommandSpec(-1, command_info),
    b"QUIT": CommandSpec(1, command_ok, closes=True),
    b"CLIENT": CommandSpec(-2, command_ok),  # redis-py sends CLIENT SETINFO on connect
    b"CONFIG": CommandSpec(-2, command_empty_array),  # redis-benchmark reads CONFIG GET at start
    b"COMMAND": CommandSpec(-1, command_empty_array),  # redis-cli asks for COMMAND DOCS
    b"SELECT": CommandSpec(2, command_select),
    b"HELLO": CommandSpec(-1, command_hello),
}
