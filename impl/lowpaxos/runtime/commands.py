"""RESP command handlers: the COMMANDS table that ``Replica.run_command`` dispatches on.

A handler is ``async handler(replica, session, arguments) -> bytes``: it checks its
arguments (``replica.check_key``/``check_value``, raising ``BadArgument`` with the
RESP error text), runs KVS commands through ``replica.kvs`` and returns the encoded
RESP reply. Handlers never touch the core directly, so the replica's loops and the
command set change independently.
"""

from __future__ import annotations

from lowpaxos.runtime import resp

INCR_RETRIES_MAX = 16


class BadArgument(Exception):
    pass


class Session:
    """One RESP connection: one client id, request ids increasing from 1."""

    __slots__ = ("client_id", "request_id")

    def __init__(self, client_id: int) -> None:
        self.client_id = client_id
        self.request_id = 0

    def next_request_id(self) -> int:
        self.request_id += 1
        return self.request_id


# ---- Commands: name -> (arity as in Redis' COMMAND: negative means "at least"), handler ----


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


async def command_del(replica, session, arguments):
    keys = [replica.check_key(key) for key in arguments]
    deleted = 0
    for key in keys:  # one command per key: DEL of several keys is not atomic here
        deleted += bool(await replica.kvs(session, "delete", key))
    return resp.integer(deleted)


async def command_exists(replica, session, arguments):
    keys = [replica.check_key(key) for key in arguments]
    found = 0
    for key in keys:
        found += (await replica.kvs(session, "get", key)) is not None
    return resp.integer(found)


async def increment(replica, session, key_bytes: bytes, amount: int):
    """INCR family: a get, then a compare-and-set from the value read (the KVS has no
    increment), retried at most INCR_RETRIES_MAX times when another writer got between."""
    key = replica.check_key(key_bytes)
    for _ in range(INCR_RETRIES_MAX):
        current = await replica.kvs(session, "get", key)
        try:
            number = 0 if current is None else int(current)
        except ValueError:
            return resp.error("ERR value is not an integer or out of range")
        if not -(1 << 63) <= number + amount < (1 << 63):
            return resp.error("ERR increment or decrement would overflow")
        if await replica.kvs(session, "cas", key, str(number + amount).encode(), current):
            return resp.integer(number + amount)
    return resp.error(f"TRYAGAIN INCR lost {INCR_RETRIES_MAX} races for the key; retry")


def parse_amount(text: bytes) -> int:
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
    return await increment(replica, session, arguments[0], parse_amount(arguments[1]))


async def command_decrby(replica, session, arguments):
    return await increment(replica, session, arguments[0], -parse_amount(arguments[1]))


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


COMMANDS = {
    b"PING": (-1, command_ping),
    b"ECHO": (2, command_echo),
    b"GET": (2, command_get),
    b"SET": (-3, command_set),
    b"DEL": (-2, command_del),
    b"EXISTS": (-2, command_exists),
    b"INCR": (2, command_incr),
    b"INCRBY": (3, command_incrby),  # redis-py's incr() sends INCRBY key 1
    b"DECR": (2, command_decr),
    b"DECRBY": (3, command_decrby),
    b"CAS": (4, command_cas),
    b"INFO": (-1, command_info),
    b"QUIT": (1, command_ok),
    b"CLIENT": (-2, command_ok),  # redis-py sends CLIENT SETINFO on connect
    b"CONFIG": (-2, command_empty_array),  # redis-benchmark reads CONFIG GET at start
    b"COMMAND": (-1, command_empty_array),  # redis-cli asks for COMMAND DOCS
    b"SELECT": (2, command_select),
    b"HELLO": (-1, command_hello),
}
