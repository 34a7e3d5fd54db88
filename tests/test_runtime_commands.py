"""RESP command handlers (commands.py) and a connection's pipeline (pipeline.py) without
sockets or a cluster: the handlers run against an in-memory KVS whose commands take
random delays, so pipelined commands finish out of order as they do at a real leader."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import pytest
from hypothesis import given, settings, strategies as st

from lowpaxos.core.api import Command
from lowpaxos.kvs import KeyValueStore, valid_command
from lowpaxos.runtime import commands, resp
from lowpaxos.runtime.cluster import Limits
from lowpaxos.runtime.commands import BadArgument, Session, decode_cursor, encode_cursor, resolve
from lowpaxos.runtime.pipeline import Lanes, Pipeline


class FakeReplica:
    """What handlers use of a Replica (limits, check_key, check_value, kvs) over one
    in-memory KeyValueStore. Each command waits a random time before it is applied and
    again before its answer, and the fake fails a test that puts two requests of one
    client id in flight (the KVS client table would drop the older as stale)."""

    def __init__(self, limits: Limits = Limits(), seed: int = 0, delay_s_max: float = 0.0) -> None:
        self.limits = limits
        self.store = KeyValueStore()
        self.rng = random.Random(seed)
        self.delay_s_max = delay_s_max
        self.index = 0
        self.in_flight: set[int] = set()
        self.in_flight_max = 0
        self.applied: list[Command] = []
        self.session = Session(1)  # one_by_one's, kept across calls so request ids grow

    def check_key(self, key: bytes) -> str:
        return commands.check_key(self.limits, key)

    def check_value(self, value: bytes) -> bytes:
        return commands.check_value(self.limits, value)

    async def pause(self) -> None:
        if self.delay_s_max:
            await asyncio.sleep(self.rng.uniform(0, self.delay_s_max))

    async def kvs(self, session, op, key, value=None, expected=None, *, pairs=(), keys=(),
                  count=0):
        command = Command(session.client_id, session.next_request_id(), op, key, value, expected,
                          pairs=pairs, keys=keys, count=count)
        assert valid_command(command) is None, command
        assert command.client_id not in self.in_flight, "two requests of one client id in flight"
        self.in_flight.add(command.client_id)
        self.in_flight_max = max(self.in_flight_max, len(self.in_flight))
        try:
            await self.pause()
            self.index += 1
            result = self.store.apply(command, self.index)
            self.applied.append(command)
            await self.pause()
            return result
        finally:
            self.in_flight.discard(command.client_id)

    def info_text(self) -> str:
        return "role:leader\r\n"


async def run_command(replica, session, spec, arguments):
    """Replica.run_command without the replica process around it."""
    try:
        return await spec.handler(replica, session, arguments[1:]), spec.closes
    except BadArgument as error:
        return resp.error(str(error)), False


class ListWriter:
    def __init__(self) -> None:
        self.data = bytearray()
        self.closing = False

    def is_closing(self) -> bool:
        return self.closing

    def write(self, data: bytes) -> None:
        assert not self.closing, "no write after the client closed"
        self.data += data

    async def drain(self) -> None:
        await asyncio.sleep(0)


def encode(arguments) -> list[bytes]:
    return [a if isinstance(a, bytes) else str(a).encode() for a in arguments]


async def pipelined(replica, program, depth_max=16) -> tuple[bytes, Pipeline]:
    """Every command of ``program`` through one Pipeline; the bytes written back."""
    pipeline = Pipeline(lambda *a: run_command(replica, *a), depth_max)
    writer = ListWriter()
    replies = asyncio.create_task(pipeline.write_replies(writer))
    for arguments in program:
        if not await pipeline.start(encode(arguments)):
            break
    pipeline.end_input()
    await replies
    return bytes(writer.data), pipeline


async def one_by_one(replica, program) -> bytes:
    """Every command of ``program`` run alone, in order, in one session: the reference."""
    session = replica.session
    out = []
    for arguments in map(encode, program):
        spec = resolve(arguments)
        if type(spec) is bytes:
            out.append(spec)
            continue
        reply, close = await run_command(replica, session, spec, arguments)
        out.append(reply)
        if close:
            break
    return b"".join(out)


def call(replica, *arguments) -> bytes:
    return asyncio.run(one_by_one(replica, [arguments]))


def replies(data: bytes) -> list:
    parser = resp.ReplyParser()
    parser.feed(data)
    out = []
    while (reply := parser.next_reply()) is not None:
        out.append(reply)
    return out


# ---- handlers ----


def test_string_commands_reply_as_redis():
    """SETNX answers 1/0, GETDEL returns and removes, APPEND and STRLEN count bytes,
    MGET gives nil for absent keys, MSET sets every pair and DBSIZE counts keys."""
    r = FakeReplica()
    assert call(r, "SETNX", "k", "v1") == b":1\r\n"
    assert call(r, "SETNX", "k", "v2") == b":0\r\n"
    assert call(r, "GET", "k") == b"$2\r\nv1\r\n"
    assert call(r, "APPEND", "k", "23") == b":4\r\n"
    assert call(r, "APPEND", "new", "abc") == b":3\r\n"
    assert call(r, "STRLEN", "k") == b":4\r\n"
    assert call(r, "STRLEN", "absent") == b":0\r\n"
    assert call(r, "GETDEL", "k") == b"$4\r\nv123\r\n"
    assert call(r, "GETDEL", "k") == resp.NIL
    assert call(r, "MSET", "a", "1", "b", "2", "a", "3") == resp.OK  # the last pair wins
    assert call(r, "MGET", "a", "absent", "b") == b"*3\r\n$1\r\n3\r\n$-1\r\n$1\r\n2\r\n"
    assert call(r, "DBSIZE") == b":3\r\n"
    assert call(r, "EXISTS", "a", "a", "absent") == b":2\r\n"


def test_argument_errors_are_clear_and_change_nothing(monkeypatch):
    """Oversized keys and values, an odd MSET, an MSET beyond the size bound and an
    APPEND that would outgrow value_bytes_max get RESP errors and store nothing."""
    monkeypatch.setattr(commands, "MSET_BYTES_MAX", 20)
    r = FakeReplica(Limits(value_bytes_max=8, key_bytes_max=4))
    assert call(r, "SETNX", "toolong", "v").startswith(b"-ERR key of 7 bytes")
    assert call(r, "MSET", "a", "1", "b").startswith(b"-ERR wrong number of arguments for 'mset'")
    assert call(r, "MSET", "a", "123456789").startswith(b"-ERR value of 9 bytes refused")
    too_big = call(r, "MSET", "a", "12345678", "b", "12345678", "c", "12345678")
    assert too_big.startswith(b"-ERR MSET of 27 bytes (keys and values) refused; the maximum is 20")
    assert call(r, "APPEND", "a", "12345") == b":5\r\n"
    assert call(r, "APPEND", "a", "6789").startswith(b"-ERR APPEND would make a value of 9 bytes")
    assert call(r, "GET", "a") == b"$5\r\n12345\r\n"
    assert call(r, "DBSIZE") == b":1\r\n"
    assert call(r, "DBSIZE", "x").startswith(b"-ERR wrong number of arguments for 'dbsize'")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=512))
def test_scan_cursor_round_trips_every_key(key):
    """A cursor is a positive decimal integer that decodes back to the exact key bytes."""
    cursor = encode_cursor(key)
    assert cursor.isdigit() and int(cursor) > 0
    assert decode_cursor(cursor, 512) == key.decode("latin-1")


@pytest.mark.parametrize("cursor", [b"abc", b"-1", b"+1", b" 1", b"2", b"255", b"1" * 2000,
                                    str(int.from_bytes(b"\x01" + b"x" * 513, "big")).encode()])
def test_scan_cursor_that_no_scan_returned_is_invalid(cursor):
    """Text that is not a cursor of a key within key_bytes_max gives ERR invalid cursor."""
    with pytest.raises(BadArgument, match="ERR invalid cursor"):
        decode_cursor(cursor, 512)
    assert decode_cursor(b"0", 512) is None and decode_cursor(b"00", 512) is None


def test_scan_options_and_errors():
    """SCAN reads COUNT and MATCH in any order and refuses a bad COUNT, an unknown option
    and a bad cursor as Redis does."""
    r = FakeReplica()
    call(r, "MSET", "a1", "x", "a2", "x", "b1", "x")
    assert replies(call(r, "SCAN", "0", "COUNT", "10", "MATCH", "a*")) == [("*", [b"0", [b"a1", b"a2"]])]
    assert replies(call(r, "SCAN", "0", "match", "*")) == [("*", [b"0", [b"a1", b"a2", b"b1"]])]
    assert call(r, "SCAN", "0", "COUNT", "0") == resp.error("ERR syntax error")
    assert call(r, "SCAN", "0", "COUNT", "x").startswith(b"-ERR value is not an integer")
    assert call(r, "SCAN", "0", "COUNT") == resp.error("ERR syntax error")
    assert call(r, "SCAN", "0", "TYPE", "string") == resp.error("ERR syntax error")
    assert call(r, "SCAN", "x") == resp.error("ERR invalid cursor")


def test_scan_pages_return_every_key_exactly_once():
    """Following cursors from 0 back to 0 with MATCH and a small COUNT yields each
    matching key once, binary keys included."""
    r = FakeReplica()
    names = [b"user:%d" % i for i in range(120)] + [b"item:%d" % i for i in range(40)]
    names += [b"user:\x00\xff", b"user:"]
    for start in range(0, len(names), 20):
        call(r, "MSET", *[part for name in names[start:start + 20] for part in (name, b"v")])
    seen, cursor, pages = [], b"0", 0
    while True:
        ((_, (cursor, keys)),) = replies(call(r, "SCAN", cursor, "MATCH", "user:*", "COUNT", "7"))
        seen += keys
        pages += 1
        if cursor == b"0":
            break
        assert pages < 100, "a scan ends"
    assert sorted(seen) == sorted(n for n in names if n.startswith(b"user:"))


# ---- the pipeline ----

KEYS = [b"a", b"b", b"c", b"d"]


def random_command(rng: random.Random) -> list:
    key = rng.choice(KEYS)
    other = rng.choice(KEYS)
    value = b"%d" % rng.randrange(100)
    return rng.choice([
        ["SET", key, value], ["GET", key], ["SETNX", key, value], ["GETDEL", key],
        ["APPEND", key, value], ["STRLEN", key], ["MGET", key, other],
        ["MSET", key, value, other, value + b"x"], ["DEL", key, other], ["EXISTS", key, other],
        ["INCR", rng.choice([b"n1", b"n2"])], ["DBSIZE"], ["SCAN", "0", "COUNT", "3"],
        ["PING"], ["NOSUCH", key], ["GET"], ["CAS", key, value, value + b"y"],
    ])


@pytest.mark.parametrize("seed", range(8))
def test_pipeline_replies_equal_running_one_by_one(seed):
    """200 random commands on a few keys, pipelined with random delays, give the same
    replies as the same commands run one at a time."""
    rng = random.Random(seed)
    program = [random_command(rng) for _ in range(200)]
    fast = FakeReplica(seed=seed, delay_s_max=0.002)
    written, _ = asyncio.run(pipelined(fast, program))
    assert written == asyncio.run(one_by_one(FakeReplica(), program))
    assert fast.in_flight_max > 1, "commands on other keys overlapped"


def test_set_then_get_of_one_key_sees_the_new_value():
    """A GET pipelined behind a SET of its key waits for it even when the SET is slow,
    while a GET of another key does not wait."""
    r = FakeReplica(seed=3, delay_s_max=0.005)
    program = [["SET", "k", "v%d" % i] if i % 2 == 0 else ["GET", "k"] for i in range(40)]
    written, pipeline = asyncio.run(pipelined(r, program))
    gets = [value for kind, value in replies(written) if kind == "$"]
    assert gets == [b"v%d" % i for i in range(0, 40, 2)]
    assert pipeline.stats["pipeline_waits"] >= 39


def test_pipeline_depth_bounds_commands_and_client_ids():
    """With depth 4, at most 4 commands of a connection are in flight, each under its
    own client id, and the connection never creates more than 4 client ids."""
    r = FakeReplica(seed=5, delay_s_max=0.003)
    program = [["SET", "key%d" % i, "v"] for i in range(60)]
    written, pipeline = asyncio.run(pipelined(r, program, depth_max=4))
    assert written == resp.OK * 60
    assert r.in_flight_max == 4
    assert pipeline.lanes.created == 4
    assert len({command.client_id for command in r.applied}) == 4
    per_client = Counter(command.client_id for command in r.applied)
    for client_id in per_client:
        ids = [c.request_id for c in r.applied if c.client_id == client_id]
        assert ids == list(range(1, len(ids) + 1)), "each client id's requests run in order"


def test_whole_keyspace_commands_order_both_ways():
    """DBSIZE waits for every earlier write of its connection, and a later write of a
    new key does not overtake it."""
    r = FakeReplica(seed=11, delay_s_max=0.004)
    program = [["SET", "k%d" % i, "v"] for i in range(10)] + [["DBSIZE"]]
    program += [["SET", "late%d" % i, "v"] for i in range(10)] + [["DBSIZE"]]
    written, _ = asyncio.run(pipelined(r, program))
    assert [v for kind, v in replies(written) if kind == ":"] == [10, 20]


def test_quit_ends_the_pipeline_after_earlier_replies():
    """Replies before QUIT are written, QUIT answers +OK, and nothing after it runs."""
    r = FakeReplica(seed=2, delay_s_max=0.003)
    written, _ = asyncio.run(pipelined(r, [["SET", "a", "1"], ["QUIT"], ["SET", "b", "2"]]))
    assert written == resp.OK + resp.OK
    assert r.store.get_value("b") is None


def test_lanes_reuse_sessions_and_respect_the_bound():
    """A session given back is taken again (its request ids keep increasing), and the
    pool never holds more sessions than its bound."""
    ids = iter(range(100))
    lanes = Lanes(2, new_client_id=lambda: next(ids))
    first, second = lanes.take(), lanes.take()
    assert (first.client_id, second.client_id) == (0, 1)
    first.next_request_id()
    lanes.give(first)
    again = lanes.take()
    assert again is first and again.next_request_id() == 2
    with pytest.raises(AssertionError, match="more sessions than commands in flight"):
        lanes.take()


def test_replies_stop_when_the_client_is_gone():
    """Once the client's connection is closing, the writer stops with ConnectionResetError
    instead of writing the remaining replies into it."""
    async def scenario():
        r = FakeReplica(seed=4, delay_s_max=0.002)
        pipeline = Pipeline(lambda *a: run_command(r, *a), 8)
        writer = ListWriter()
        replies = asyncio.create_task(pipeline.write_replies(writer))
        await pipeline.start(encode(["SET", "a", "1"]))
        while not writer.data:  # bounded: the SET answers within delay_s_max
            await asyncio.sleep(0.001)
        writer.closing = True
        await pipeline.start(encode(["SET", "b", "2"]))
        pipeline.end_input()
        with pytest.raises(ConnectionResetError):
            await replies
        assert bytes(writer.data) == resp.OK
    asyncio.run(scenario())
