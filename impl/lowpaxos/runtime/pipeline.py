"""One RESP connection's pipeline: its commands run concurrently, replies leave in order.

Theory of operation
-------------------
``serve_client`` parses commands and hands each to ``Pipeline.start``, which puts
an entry on ``outstanding`` (parse order) and starts the command as a task;
``write_replies`` takes entries off the front as they finish and writes their
replies, so replies keep the order of the commands whatever order they finish in.

Order between commands of one connection. Pipelined commands are concurrent to
the client (it sent them without waiting), so linearizability allows any order
among them; Redis users still expect a connection's commands to act in the order
sent. So a command does not start before every earlier command of its connection
that touches one of its keys has its answer: an answered command is applied, and
a command proposed after that comes after it in the log (even through another
replica: the leader orders it). Commands that read the whole key space (DBSIZE,
SCAN) conflict with every command, and those marked ``after_all`` (MGET, the INCR
family, APPEND) wait for every earlier command. Commands on disjoint keys run at
once, and another client may see them take effect in either order.

Client ids. The KVS client table keeps only each client's latest request id (VR
Revisited §4): a client id with two requests in flight would have the older one
dropped as stale. So each connection has a pool of sessions (``Lanes``), each a
client id with its own request ids; a running command holds one, which makes at
most one request per client id in flight.

Bounds: ``outstanding`` holds at most ``depth_max`` entries (parsed, reply not yet
written); ``start`` waits for room, and the connection is not read meanwhile. So
at most ``depth_max`` commands run and at most ``depth_max`` sessions exist per
connection, and the dependency scan of ``start`` looks at most at ``depth_max``
entries.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections import Counter, deque
from dataclasses import dataclass
from typing import Awaitable, Callable

from lowpaxos.runtime.commands import CommandSpec, Session, resolve

# run(session, spec, arguments) -> (reply, close the connection after it)
Run = Callable[[Session, CommandSpec, list[bytes]], Awaitable[tuple[bytes, bool]]]


class Lanes:
    """A connection's pool of sessions: one is taken per running command and given
    back when the command has its answer, so no client id has two requests in flight."""

    __slots__ = ("free", "created", "sessions_max", "new_client_id")

    def __init__(self, sessions_max: int,
                 new_client_id: Callable[[], int] = lambda: secrets.randbits(63)) -> None:
        self.free: list[Session] = []
        self.created = 0
        self.sessions_max = sessions_max
        self.new_client_id = new_client_id

    def take(self) -> Session:
        if self.free:
            return self.free.pop()
        # The pipeline runs at most depth_max commands, each holding one session.
        assert self.created < self.sessions_max, "more sessions than commands in flight"
        self.created += 1
        return Session(self.new_client_id())

    def give(self, session: Session) -> None:
        assert session not in self.free, "a session is given back once"
        self.free.append(session)


@dataclass(slots=True)
class _Running:
    keys: frozenset[bytes] | None  # None: every key
    task: asyncio.Task


class Pipeline:
    def __init__(self, run: Run, depth_max: int, stats: Counter | None = None,
                 lanes: Lanes | None = None) -> None:
        assert depth_max >= 1, "at least one command in flight"
        self.run = run
        self.depth_max = depth_max
        self.stats = stats if stats is not None else Counter()
        self.lanes = lanes if lanes is not None else Lanes(depth_max)
        # Replies in command order: futures of (reply, close); at most depth_max.
        self.outstanding: deque[asyncio.Future] = deque()
        # Commands that touch keys and have no answer yet, in order; a subset of outstanding.
        self.running: dict[int, _Running] = {}
        self.numbers = itertools.count()
        self.arrived = asyncio.Event()  # an entry joined outstanding, or input ended
        self.room = asyncio.Event()  # an entry left outstanding, or the writer stopped
        self.input_ended = False
        self.closed = False  # the writer stopped: nothing more is written

    # ---- the reading side ----

    async def start(self, arguments: list[bytes]) -> bool:
        """Queue one parsed command, waiting while depth_max are outstanding. False when
        the connection is closing (after QUIT, or the writer stopped): stop reading."""
        if not await self.wait_for_room():
            return False
        spec = resolve(arguments)
        if type(spec) is bytes:
            self.reply_now(spec)
            return True
        keys = spec.keys(arguments)
        if keys is not None and not keys and not spec.after_all:
            # A local command (PING, INFO, ...): no order to keep but that of replies.
            task = asyncio.create_task(self.run_one((), spec, arguments))
        else:
            earlier = self.conflicts(keys, spec.after_all)
            if earlier:
                self.stats["pipeline_waits"] += 1
            task = asyncio.create_task(self.run_one(earlier, spec, arguments))
            number = next(self.numbers)
            self.running[number] = _Running(keys, task)
            task.add_done_callback(lambda _, number=number: self.running.pop(number, None))
        self.push(task)
        return not spec.closes

    def conflicts(self, keys: frozenset[bytes] | None, after_all: bool) -> list[asyncio.Task]:
        """The earlier unanswered commands this one must wait for (at most depth_max)."""
        if after_all or keys is None:
            return [entry.task for entry in self.running.values()]
        return [entry.task for entry in self.running.values()
                if entry.keys is None or not keys.isdisjoint(entry.keys)]

    async def run_one(self, earlier: list[asyncio.Task], spec: CommandSpec,
                      arguments: list[bytes]) -> tuple[bytes, bool]:
        if earlier:
            # asyncio.wait never raises for a failed task; the writer reports that one.
            await asyncio.wait(earlier)
        session = self.lanes.take()
        try:
            return await self.run(session, spec, arguments)
        finally:
            self.lanes.give(session)

    async def wait_for_room(self) -> bool:
        """Wait while depth_max replies are outstanding; False if the writer stopped."""
        while len(self.outstanding) >= self.depth_max and not self.closed:
            self.room.clear()
            await self.room.wait()
        return not self.closed

    def reply_now(self, reply: bytes, close: bool = False) -> None:
        """An answer known at parse time (an unknown command, a wrong argument count),
        kept in order behind the replies still outstanding. The caller made room."""
        assert len(self.outstanding) < self.depth_max, "room was made for the reply"
        future = asyncio.get_running_loop().create_future()
        future.set_result((reply, close))
        self.push(future)

    async def reply_last(self, reply: bytes) -> None:
        """The last reply of the connection (a protocol error): written after every
        outstanding reply, then the connection closes. Ends the input."""
        if await self.wait_for_room():
            self.reply_now(reply, close=True)
        self.end_input()

    def push(self, future: asyncio.Future) -> None:
        self.outstanding.append(future)
        self.arrived.set()

    def end_input(self) -> None:
        """No more commands: the writer stops once every outstanding reply is written."""
        self.input_ended = True
        self.arrived.set()

    # ---- the writing side ----

    async def write_replies(self, writer: asyncio.StreamWriter) -> None:
        """Write replies in command order until input ended and all are written, a
        closing reply (QUIT, protocol error) is written, or the connection breaks."""
        try:
            while True:
                while not self.outstanding:
                    if self.input_ended:
                        return
                    self.arrived.clear()
                    await self.arrived.wait()
                await asyncio.wait([self.outstanding[0]])
                # Every finished reply at the front goes out in one write (bounded by depth_max).
                chunks = []
                close = False
                while self.outstanding and self.outstanding[0].done() and not close:
                    reply, close = self.outstanding.popleft().result()
                    chunks.append(reply)
                self.room.set()
                if writer.is_closing():
                    # The client is gone: writing on would only log each failed send.
                    raise ConnectionResetError("the client closed the connection")
                writer.write(b"".join(chunks))
                await writer.drain()
                if close:
                    return
        finally:
            self.closed = True
            self.room.set()

    def cancel(self) -> None:
        """Stop every command still running (the connection is gone)."""
        for future in self.outstanding:
            future.cancel()
        self.outstanding.clear()
