"""One replica process: the asyncio driver of a sans-I/O core of any registered protocol.

The cluster file names the protocol (cluster.py); the core is built through the
registry (protocols/registry.py) and read only through the status interface of
core/api.py (``is_leader``, ``leader_hint``, ``commit_index``, ``kvs``,
``info_fields``), so LowPaxos, VR and later EPaxos run here unchanged.

Theory of operation
-------------------
Three inputs reach the core, one at a time, on the event loop: datagrams from
peers (``receive_loop``), ticks (``tick_loop``) and client commands (the RESP
server through ``submit``). Each call returns an ``Effects`` batch, which
``enqueue`` turns into sealed datagrams and puts on the pending list.

``flush_loop`` carries pending batches out in the order api.py binds:
persist -> send -> reply -> applied. It takes *every* batch pending at that
moment, writes all their persist records in one SQLite transaction (fsynced),
and only then sends, replies and writes trace events (group commit). While the
fsync runs in the storage thread, the loop keeps feeding the core; those newer
batches wait for the next transaction. This is safe: nothing of a batch leaves
the process before its records are durable, so a crash loses only inputs the
rest of the cluster never saw answered, which is the same as losing messages.

Client commands (``submit``) go to the core of the replica believed to lead:
the local core, or a peer's core over UDP as a ``ClientRequest``; the peer's
runtime sends the ``ClientReply`` back the same way. NOT_LEADER replies redirect,
BUSY backs off, silence retries; everything under one deadline. Retries reuse
the request id, so the KVS client table runs each command at most once
(VR Revisited §4). A RESP connection runs its pipelined commands concurrently,
each under a client id of its own pool, and writes replies in order; a command
waits for earlier commands of its connection on the same keys (pipeline.py).

Messages travel as one datagram each, or, when their encoding is larger than
``fragment_payload_bytes``, as fragments of that size, each its own authenticated
datagram (framing.py). The receiver reassembles them and asks for missing ones
with a NACK (fragments.py; ``fragment_loop`` sends NACKs): a lost fragment costs
one fragment's retransmission. Fragments leave only from the flush loop (or with a
forwarded client message), so nothing of a batch is sent, nor resent on a NACK,
before its records are durable.

Bounds: at most pipeline_depth_max commands and reply futures per connection
(connections <= connections_max), forwarded requests <= forwarded_requests_max,
datagrams <= datagram_bytes_max, messages <= codec.MESSAGE_BYTES_MAX, client
requests <= REQUEST_BYTES_MAX, fragments kept for NACKs <= fragment_store_bytes_max,
reassembly <= reassembly_bytes_max and reassembly_messages_max, in-flight commands
<= the core's window and queue.

Failures
--------
The process never dies of one bad input or one failed send; it logs a JSON line,
counts the failure (INFO) and goes on. A send the kernel refuses, an error the
socket reports later (asyncio-dgram raises it from the next ``recv``), a message
the codec refuses to encode (it is then lost, which Paxos tolerates) and an
exception while handling one datagram, tick or command are all caught where they
happen. An exception inside the core is different: the core may be left half
updated (say, a promise raised in memory whose record never reached the batch),
and going on with it could break the rule that the replica acts only on durable
state. So the runtime stops feeding that core, lets the flush loop write and send
the batches it already returned (they are whole and valid), and then builds a new
core from the database: exactly what a crash and restart would do, without losing
the process, its sockets or its clients. What still ends the process on purpose:
a storage write that fails (exit 3: without durable storage a replica must not
speak), durable state that cannot be read back for a rebuild (the same), and one
of the three loops ending by a bug it did not catch (exit 4). ``lowpaxos cluster``
restarts a replica that exits (launcher.py).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import errno
import fcntl
import os
import random
import resource
import signal
import sys
import termios
import time
import traceback
from collections import Counter, OrderedDict

from lowpaxos import __version__, codec
from lowpaxos.core.api import ClientReply, ClientRequest, Command, Core, Effects, ReplyStatus
from lowpaxos.protocols.registry import PROTOCOLS
from lowpaxos.runtime import framing, resp
from lowpaxos.runtime.commands import BadArgument, CommandSpec, Session, check_key, check_value
from lowpaxos.runtime.cluster import ClusterFileError, ClusterSpec, load_cluster, load_key
from lowpaxos.runtime.fragments import FragmentReceiver, FragmentSender, nack_indices_max
from lowpaxos.runtime.framing import FrameError, open_frame, seal, seal_fragment, seal_nack
from lowpaxos.runtime.logs import Logger
from lowpaxos.runtime.pipeline import Pipeline
from lowpaxos.runtime.rowstore import IMAGES_MAX
from lowpaxos.runtime.storage import SqliteStorage, StorageCorrupt
from lowpaxos.runtime.trace import TraceWriter

ATTEMPT_TIMEOUT_S = 1.0  # one try at the believed leader before trying elsewhere
NO_LEADER_PAUSE_S = 0.05  # wait this long when nobody knows the leader (an election runs)
BUSY_PAUSE_S = 0.01
# A command whose commit point keeps moving waits at most this many request timeouts.
PROGRESS_TIMEOUTS_MAX = 12
RECEIVE_BUFFER_BYTES = 4 << 20
# Errors that can repeat at packet rate (a peer down, a poison message retransmitted)
# are logged at most once per interval per kind, with the count of those not logged.
ERROR_LOG_INTERVAL_S = 1.0
ERROR_LOG_KINDS_MAX = 256
TRACEBACK_CHARS_MAX = 4000
REBIND_PAUSE_S = 0.1
EXIT_STORAGE_FAILED = 3
EXIT_LOOP_FAILED = 4
# A client request larger than this is refused: the Accept (or CatchupReply) that
# carries it in a slot of its own adds a few fields and must still encode within
# codec.MESSAGE_BYTES_MAX, or the slot could never be sent and the log would stall.
REQUEST_BYTES_MAX = codec.MESSAGE_BYTES_MAX - (64 << 10)
FRAGMENT_NACK_ROUNDS_MAX = 6  # NACKs without progress before a reassembly is given up


class CommandFailed(Exception):
    """A command that got no definite answer (RESP error text in the message)."""


def format_traceback(error: BaseException) -> str:
    """The traceback of ``error`` for a log line, bounded (the innermost frames kept)."""
    text = "".join(traceback.format_exception(error))
    return text[-TRACEBACK_CHARS_MAX:]


class Replica:
    def __init__(self, spec: ClusterSpec, replica_id: int, key: bytes, logger: Logger,
                 lifetime_s: float | None = None) -> None:
        self.spec = spec
        self.replica_id = replica_id
        self.key = key
        self.log = logger
        self.lifetime_s = lifetime_s
        self.limits = spec.limits
        self.me = spec.replica(replica_id)
        self.peer_addresses = {r.replica_id: r.address for r in spec.replicas}
        self.protocol = PROTOCOLS[spec.protocol_name]
        self.storage = self.new_storage()
        self.core: Core | None = None
        self.boot_us = time.time_ns() // 1000
        # Message counter: starts at the boot time in µs so ids never repeat across restarts.
        self.counter = self.boot_us
        self.stats: Counter[str] = Counter()
        self.drops: Counter[str] = Counter()
        # Batches waiting for the flush loop: effects, (target, counter, encoded message), trace.
        self.pending: list[tuple[Effects, list[tuple[int, int, bytes]], list[dict]]] = []
        self.waiters: dict[tuple[int, int], asyncio.Future] = {}
        self.forwarded: OrderedDict[tuple[int, int], int] = OrderedDict()
        self.connections = 0
        self.started = time.monotonic()
        self.stream = None
        self.trace: TraceWriter | None = None
        self.stop_event: asyncio.Event | None = None
        self.flush_wakeup: asyncio.Event | None = None
        self.storage_thread = concurrent.futures.ThreadPoolExecutor(1, "lowpaxos-storage")
        # Set when a core step raised: the core is fed nothing until it is rebuilt.
        self.core_failed = False
        limits = self.limits
        self.fragment_sender = FragmentSender(limits.fragment_payload_bytes,
                                              limits.fragment_store_bytes_max)
        self.nack_indices_max = nack_indices_max(limits.fragment_payload_bytes)
        self.fragment_receiver = FragmentReceiver(
            message_bytes_max=codec.MESSAGE_BYTES_MAX,
            chunk_bytes_max=limits.datagram_bytes_max - framing.FRAGMENT_OVERHEAD_BYTES,
            buffer_bytes_max=limits.reassembly_bytes_max,
            messages_max=limits.reassembly_messages_max,
            nack_delay_s=limits.fragment_nack_delay_ms / 1000,
            nack_rounds_max=FRAGMENT_NACK_ROUNDS_MAX,
            nack_indices=self.nack_indices_max,
        )
        # Set when a reassembly starts, so the fragment loop wakes to watch it.
        self.fragment_wakeup = asyncio.Event()
        # Rate limit of repeated error logs: kind -> (last logged, not logged since).
        self.error_log_state: dict[str, tuple[float, int]] = {}

    # ------------------------------------------------------------------ start

    def open_storage(self) -> None:
        """Load durable state (raises StorageCorrupt) and build the core from it."""
        durable = self.storage.load()
        self.core = self.new_core(durable)
        self.log.info("storage_loaded", path=str(self.storage.path),
                      protocol=self.spec.protocol_name, commit_index=self.core.commit_index,
                      store_index=durable.store_index, entries=len(durable.entries))

    def new_storage(self) -> SqliteStorage:
        # images_max: the state-transfer images a core keeps open (LowPaxos, VR); a
        # protocol without state transfer (EPaxos) has no such field: the store's default.
        return SqliteStorage(self.spec.database_path(self.replica_id), self.replica_id,
                             images_max=getattr(self.spec.protocol, "images_max",
                                                IMAGES_MAX),
                             protocol=self.spec.protocol_name,
                             rows_durable=self.protocol.rows_durable(self.spec.protocol))

    def new_core(self, durable) -> Core:
        """A core built from ``durable``, with its trace file under the current boot."""
        core = self.protocol.make_core(
            self.spec.protocol, self.replica_id, random.Random(self.boot_us ^ self.replica_id),
            durable, self.spec.trace_dir is not None,
        )
        if self.spec.trace_dir is not None:
            if self.trace is not None:
                self.trace.close()
            self.trace = TraceWriter(self.spec.trace_dir / f"replica-{self.replica_id}.ndjson",
                                     self.boot_us)
        return core

    async def bind_udp(self) -> None:
        import asyncio_dgram
        import socket

        self.stream = await asyncio_dgram.bind(self.me.bind)
        sock = self.stream.socket
        for option in ("SO_RCVBUF", "SO_SNDBUF"):
            try:
                sock.setsockopt(socket.SOL_SOCKET, getattr(socket, option), RECEIVE_BUFFER_BYTES)
            except OSError:
                pass

    async def run(self) -> int:
        """Serve until SIGTERM/SIGINT or the lifetime; the process exit status."""
        loop = asyncio.get_running_loop()
        self.stop_event = asyncio.Event()
        self.flush_wakeup = asyncio.Event()
        for signal_number in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signal_number, self.stop_event.set)
        try:
            await self.bind_udp()
            server = await asyncio.start_server(self.serve_client, *self.me.resp,
                                                limit=self.limits.inline_bytes_max * 2)
        except OSError as error:
            self.log.error("cannot_listen", error=str(error))
            print(f"lowpaxos replica {self.replica_id}: cannot listen: {error}", file=sys.stderr)
            if self.stream is not None:
                self.stream.close()
            self.storage_thread.shutdown(wait=True)
            self.storage.close()
            return 2
        tasks = [asyncio.create_task(coroutine) for coroutine in
                 (self.receive_loop(), self.tick_loop(), self.flush_loop(), self.fragment_loop())]
        self.log.info("replica_ready", udp=f"{self.me.bind[0]}:{self.me.bind[1]}",
                      resp=f"{self.me.resp[0]}:{self.me.resp[1]}", pid=os.getpid())
        status = 0
        try:
            stopper = asyncio.create_task(self.stop_event.wait())
            done, _ = await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stopper and not task.cancelled() and task.exception() is not None:
                    # Each loop catches what one input can raise, so this is a bug in a
                    # loop itself: say so and exit non-zero; the launcher restarts us.
                    self.log.error("loop_failed", error=repr(task.exception()),
                                   traceback=format_traceback(task.exception()))
                    status = EXIT_LOOP_FAILED
        finally:
            server.close()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.stream.close()
            self.storage_thread.shutdown(wait=True)
            self.storage.close()
            if self.trace is not None:
                self.trace.close()
            self.log.info("replica_stopped", status=status)
        return status

    # --------------------------------------------------------------- failures

    def log_error_limited(self, kind: str, event: str, **fields) -> None:
        """Log ``event`` unless ``kind`` was logged within ERROR_LOG_INTERVAL_S; the next
        line logged for ``kind`` says how many were not (``repeats``)."""
        now = time.monotonic()
        last, unlogged = self.error_log_state.get(kind, (-ERROR_LOG_INTERVAL_S, 0))
        if now - last < ERROR_LOG_INTERVAL_S:
            self.error_log_state[kind] = (last, unlogged + 1)
            return
        if kind not in self.error_log_state and len(self.error_log_state) >= ERROR_LOG_KINDS_MAX:
            self.error_log_state.clear()  # bounded; forgetting only makes us log again
        self.error_log_state[kind] = (now, 0)
        self.log.error(event, repeats=unlogged, **fields)

    def socket_error(self, error: OSError) -> None:
        """An error the UDP socket reported (EMSGSIZE, ECONNREFUSED, ...): a datagram was
        lost, which the protocol's retransmissions cover."""
        name = errno.errorcode.get(error.errno, "unknown").lower()
        self.drops[f"socket_error_{name}"] += 1
        self.log_error_limited(f"socket_error_{name}", "socket_error", error=str(error))

    def input_failed(self, what: str, error: Exception) -> None:
        """An exception outside the core while handling one input: drop the input."""
        self.stats["input_exceptions"] += 1
        self.log_error_limited(f"input_{what}_{type(error).__name__}", "input_failed", input=what,
                               error=repr(error), traceback=format_traceback(error))

    def feed_core(self, what: str, received: tuple[int, int] | None, function, *arguments) -> None:
        """Run one core step and enqueue its batch (``received``: the message id handled).

        After an exception in either, the core may be half updated, or ahead of the
        batch that should have recorded its change (see Failures in the module
        docstring), so it gets no further input: the flush loop rebuilds it from the
        database once the batches it already returned are written and sent.
        """
        if self.core_failed:
            self.drops["core_rebuilding"] += 1
            return
        try:
            self.enqueue(function(*arguments), received)
        except Exception as error:  # noqa: BLE001 - one bad step must not end the process
            self.core_failed = True
            self.stats["core_exceptions"] += 1
            self.log.error("core_exception", input=what, error=repr(error),
                           traceback=format_traceback(error))
            self.flush_wakeup.set()

    async def rebuild_core(self) -> None:
        """A new core from the database (an in-process restart; see feed_core).

        The storage object is replaced too: its row stores may hold changes the failed
        core made and never handed over in a batch, and a restart would not see them.
        """
        assert self.core_failed, "only a failed core is rebuilt"
        assert not self.pending, "every batch of the failed core is written first"
        loop = asyncio.get_running_loop()
        old = self.storage
        try:
            await loop.run_in_executor(self.storage_thread, old.close)
            storage = self.new_storage()
            durable = await loop.run_in_executor(self.storage_thread, storage.load)
            storage.transactions = old.transactions
            storage.records_written = old.records_written
            storage.write_seconds = old.write_seconds
            self.storage = storage
            # A new incarnation: traces show a restart (a new boot) as after a crash.
            self.boot_us = max(time.time_ns() // 1000, self.boot_us + 1)
            self.counter = max(self.counter, self.boot_us)
            self.core = self.new_core(durable)
        except Exception as error:  # noqa: BLE001
            # Durable state that cannot be read back or built into a core would fail a
            # restart too: stop, as for a failed write.
            self.log.error("core_rebuild_failed", error=repr(error),
                           traceback=format_traceback(error))
            os._exit(EXIT_STORAGE_FAILED)
        self.core_failed = False
        self.stats["core_rebuilds"] += 1
        self.log.warning("core_rebuilt", commit_index=self.core.commit_index,
                         role=dict(self.core.info_fields()).get("role"))

    # ----------------------------------------------------------------- inputs

    async def receive_loop(self) -> None:
        import asyncio_dgram

        # Bounded by the process lifetime; each pass takes one datagram or one error.
        while True:
            try:
                data, _address = await self.stream.recv()
            except asyncio_dgram.TransportClosed:
                # The event loop closed the socket after an error it found fatal: open it
                # again (same address) rather than go deaf.
                self.stats["udp_rebinds"] += 1
                self.log.error("udp_socket_closed", action="rebind")
                self.stream.close()
                await asyncio.sleep(REBIND_PAUSE_S)
                try:
                    await self.bind_udp()
                except OSError as error:
                    self.log_error_limited("rebind", "udp_rebind_failed", error=str(error))
                continue
            except OSError as error:
                # asyncio-dgram raises here what the socket reported for an earlier send.
                self.socket_error(error)
                continue
            try:
                self.handle_datagram(data)
            except Exception as error:  # noqa: BLE001 - one datagram must not end the process
                self.input_failed("datagram", error)

    def handle_datagram(self, data: bytes) -> None:
        self.stats["datagrams_received"] += 1
        self.stats["bytes_received"] += len(data)
        try:
            kind, sender, counter, body = open_frame(
                self.key, data, len(self.peer_addresses), self.limits.datagram_bytes_max)
            if sender == self.replica_id:
                self.drops["from_self"] += 1
                return
            if kind == framing.MESSAGE:
                self.handle_message(sender, counter, body)
            elif kind == framing.FRAGMENT:
                fragment = framing.parse_fragment(counter, body)
                payload = self.fragment_receiver.on_fragment(sender, fragment, time.monotonic())
                if self.fragment_receiver.pending():
                    self.fragment_wakeup.set()
                if payload is not None:
                    self.handle_message(sender, counter, payload)
            else:
                assert kind == framing.NACK, "open_frame passes known kinds only"
                indices = framing.parse_nack(body, self.nack_indices_max)
                # Only fragments of messages already sent (after their batch was durable).
                for fragment in self.fragment_sender.on_nack(sender, counter, indices):
                    self.send_datagram(sender, seal_fragment(self.key, self.replica_id, fragment))
        except FrameError as error:
            self.drops[error.reason] += 1

    def handle_message(self, sender: int, counter: int, payload: bytes) -> None:
        """One whole message from ``sender`` (its id is ``(sender, counter)``)."""
        try:
            message = codec.decode(payload)
        except codec.DecodeError as error:
            self.drops[f"decode_{error.reason}"] += 1
            return
        if type(message) is ClientReply:
            self.deliver_reply(message)
            return
        if type(message) is ClientRequest:
            self.stats["requests_forwarded_in"] += 1
            key = (message.command.client_id, message.command.request_id)
            self.forwarded[key] = sender
            self.forwarded.move_to_end(key)
            while len(self.forwarded) > self.limits.forwarded_requests_max:
                self.forwarded.popitem(last=False)
                self.drops["forwarded_overflow"] += 1
            self.feed_core("client_request", (sender, counter), self.core.on_client_request, message)
            return
        self.stats["messages_received"] += 1
        self.feed_core(type(message).__name__, (sender, counter), self.core.on_message, sender,
                       message)

    async def tick_loop(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.spec.tick_ms / 1000
        next_time = loop.time()
        deadline = None if self.lifetime_s is None else loop.time() + self.lifetime_s
        while deadline is None or loop.time() < deadline:
            next_time += interval
            delay = next_time - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -10 * interval:
                next_time = loop.time()  # overloaded: skip ticks rather than burst them
            self.feed_core("tick", None, self.core.on_tick)
        self.log.info("lifetime_over", seconds=self.lifetime_s)

    def receive_idle(self) -> bool:
        """Nothing received waits to be handled: asyncio-dgram's queue is empty and so is
        the socket's receive buffer (FIONREAD: the size of the next datagram, or 0)."""
        if self.stream._recvq.qsize():
            return False
        try:
            waiting = fcntl.ioctl(self.stream.socket.fileno(), termios.FIONREAD, b"\0\0\0\0")
        except OSError:
            return True
        return int.from_bytes(waiting, sys.byteorder) == 0

    async def fragment_loop(self) -> None:
        """Send NACKs for partial messages that stopped progressing (fragments.py)."""
        delay = self.limits.fragment_nack_delay_ms / 1000
        # Bounded by the process lifetime; asleep while nothing is being reassembled.
        while True:
            if not self.fragment_receiver.pending():
                self.fragment_wakeup.clear()
                await self.fragment_wakeup.wait()
            # Half the delay: a NACK leaves between one and one and a half delays late.
            await asyncio.sleep(delay / 2)
            try:
                if not self.receive_idle():
                    # Fragments may be waiting to be read: a message whose fragments sit
                    # behind another's made no progress in our reading, not on the wire.
                    continue
                for nack in self.fragment_receiver.poll(time.monotonic()):
                    self.log.debug("fragment_nack", peer=nack.sender, counter=nack.counter,
                                   missing=len(nack.indices), first=nack.indices[0])
                    self.send_datagram(nack.sender, seal_nack(self.key, self.replica_id,
                                                              nack.counter, nack.indices))
            except Exception as error:  # noqa: BLE001 - NACKs must not end the process
                self.input_failed("nack", error)

    # ---------------------------------------------------------------- effects

    def enqueue(self, effects: Effects, received: tuple[int, int] | None) -> None:
        if effects.empty():
            return
        sends = []
        # A core sends one message value to several targets (an Accept to each follower):
        # encode it once. The values stay alive for the loop, so their ids are distinct.
        encoded: dict[int, bytes | None] = {}
        for target, message in effects.send:
            assert target != self.replica_id, "a core never sends to itself"
            self.counter += 1
            if id(message) not in encoded:
                encoded[id(message)] = self.encode_or_count(message, target)
            payload = encoded[id(message)]
            if payload is None:
                # The message is lost (its counter too, so trace ids stay as the core
                # sent them); the protocol's retransmission covers a lost message.
                continue
            sends.append((target, self.counter, payload))
        events = effects.trace
        if events:
            if received is not None:
                for event in events:
                    event["received"] = list(received)
            first = self.counter - len(effects.send) + 1
            events[-1]["sent"] = [[target, self.replica_id, first + index]
                                  for index, (target, _) in enumerate(effects.send)]
        self.pending.append((effects, sends, events))
        self.flush_wakeup.set()

    async def flush_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self.flush_wakeup.wait()
            self.flush_wakeup.clear()
            groups, self.pending = self.pending, []
            records = [record for effects, _, _ in groups for record in effects.persist]
            if records:
                # The row changes these records carry, taken with the groups (no await between):
                # the row stores keep them in memory until the transaction is durable.
                row_marks = self.storage.row_marks()
                try:
                    await loop.run_in_executor(self.storage_thread, self.storage.write, records)
                except Exception as error:
                    # Without durable storage the replica must not speak: stop the process.
                    self.log.error("storage_write_failed", error=repr(error))
                    os._exit(EXIT_STORAGE_FAILED)
                self.storage.rows_committed(row_marks)
            for effects, sends, events in groups:
                try:
                    for target, counter, payload in sends:
                        self.send_payload(target, counter, payload)
                    for reply in effects.reply:
                        self.deliver_reply(reply)
                    self.stats["commands_applied"] += len(effects.applied)
                    if events and self.trace is not None:
                        self.trace.write(events)
                except Exception as error:  # noqa: BLE001 - the rest of the batches still go
                    self.input_failed("flush", error)
            if self.trace is not None:
                try:
                    self.trace.flush()
                except OSError as error:
                    self.input_failed("trace_flush", error)
            if self.core_failed and not self.pending:
                await self.rebuild_core()

    def send_payload(self, target: int, counter: int, payload: bytes) -> None:
        """Send encoded message ``counter`` whole, or as fragments when it is larger
        than one fragment."""
        if not self.fragment_sender.needs_split(len(payload)):
            self.send_datagram(target, seal(self.key, self.replica_id, counter, payload))
            return
        for fragment in self.fragment_sender.split(target, counter, payload):
            self.send_datagram(target, seal_fragment(self.key, self.replica_id, fragment))

    def send_datagram(self, target: int, datagram: bytes) -> None:
        if len(datagram) > self.limits.datagram_bytes_max:
            # The kernel would refuse it (EMSGSIZE) or a peer would drop it as oversized.
            self.drops["send_oversized"] += 1
            self.log_error_limited("send_oversized", "send_oversized", target=target,
                                   bytes=len(datagram), limit=self.limits.datagram_bytes_max)
            return
        try:
            self.stream._transport.sendto(datagram, self.peer_addresses[target])
        except OSError as error:
            self.drops["send_failed"] += 1
            self.log_error_limited(f"send_failed_{error.errno}", "send_failed", target=target,
                                   error=str(error))
            return
        self.stats["datagrams_sent"] += 1
        self.stats["bytes_sent"] += len(datagram)

    def encode_or_count(self, message, target: int) -> bytes | None:
        """The wire bytes of ``message``, or None after counting and logging why not."""
        try:
            return codec.encode(message)
        except codec.EncodeError as error:
            self.drops[f"encode_{error.reason}"] += 1
            self.log_error_limited(f"encode_{error.reason}", "encode_failed",
                                   message=type(message).__name__, target=target,
                                   error=str(error)[:200])
            return None

    def send_message(self, target: int, message) -> None:
        """Send outside a core batch (client forwarding: it reveals no core state)."""
        payload = self.encode_or_count(message, target)
        if payload is None:
            return
        self.counter += 1
        self.send_payload(target, self.counter, payload)

    def deliver_reply(self, reply: ClientReply) -> None:
        key = (reply.client_id, reply.request_id)
        waiter = self.waiters.get(key)
        if waiter is not None:
            if not waiter.done():
                waiter.set_result(reply)
            return
        origin = self.forwarded.pop(key, None)
        if origin is not None:
            self.send_message(origin, reply)
            return
        self.drops["reply_without_waiter"] += 1

    # ------------------------------------------------------------ client path

    async def submit(self, command: Command) -> ClientReply:
        """Run ``command`` at the leader; an OK reply, or CommandFailed."""
        loop = asyncio.get_running_loop()
        timeout_s = self.limits.request_timeout_ms / 1000
        # The command fails after timeout_s without progress: while the commit point
        # moves (the leader is working through a queue that holds the command), the
        # deadline moves with it, up to PROGRESS_TIMEOUTS_MAX times timeout_s in all.
        # Under overload a client then waits instead of getting TRYAGAIN for a command
        # that is about to run.
        deadline = loop.time() + timeout_s
        hard_deadline = loop.time() + PROGRESS_TIMEOUTS_MAX * timeout_s
        commit_seen = self.core.commit_index
        key = (command.client_id, command.request_id)
        request = ClientRequest(command)
        self.stats["client_commands"] += 1
        try:
            # Encoded once: its size is checked here and every forward sends these bytes.
            request_payload = codec.encode(request)
        except codec.EncodeError as error:
            self.drops[f"encode_{error.reason}"] += 1
            raise CommandFailed(f"ERR command refused: {error.reason}") from None
        if len(request_payload) > REQUEST_BYTES_MAX:
            self.drops["request_oversized"] += 1
            raise CommandFailed(f"ERR command of {len(request_payload)} bytes refused; the "
                                f"maximum is {REQUEST_BYTES_MAX} bytes")
        target = self.leader_guess()
        tried = 0
        try:
            # Bounded by the deadline; each pass waits at least NO_LEADER_PAUSE_S or one attempt.
            while loop.time() < deadline:
                tried += 1
                waiter = loop.create_future()
                self.waiters[key] = waiter
                if target == self.replica_id:
                    self.feed_core("client_request", None, self.core.on_client_request, request)
                else:
                    self.stats["requests_forwarded_out"] += 1
                    self.counter += 1
                    self.send_payload(target, self.counter, request_payload)
                timeout = min(ATTEMPT_TIMEOUT_S, max(0.0, deadline - loop.time()))
                try:
                    reply = await asyncio.wait_for(waiter, timeout)
                except asyncio.TimeoutError:
                    self.stats["client_retries"] += 1
                    if self.core.commit_index > commit_seen:
                        # Progress: the same target again (a retry of a queued command is
                        # dropped there as a duplicate), and more time.
                        commit_seen = self.core.commit_index
                        deadline = min(hard_deadline, loop.time() + timeout_s)
                        self.stats["client_waits_extended"] += 1
                    else:
                        target = self.leader_guess(avoid=target)
                    continue
                if reply.status is ReplyStatus.OK:
                    return reply
                if reply.status is ReplyStatus.INVALID:
                    raise CommandFailed(f"ERR invalid command: {reply.result!r}")
                if reply.status is ReplyStatus.BUSY:
                    self.stats["client_busy"] += 1
                    await asyncio.sleep(BUSY_PAUSE_S)
                    continue
                # NOT_LEADER
                if reply.leader_hint is not None and reply.leader_hint != target:
                    target = reply.leader_hint
                else:
                    await asyncio.sleep(NO_LEADER_PAUSE_S)
                    target = self.leader_guess()
        finally:
            self.waiters.pop(key, None)
        self.stats["client_timeouts"] += 1
        raise CommandFailed(
            f"TRYAGAIN no answer from a leader within {self.limits.request_timeout_ms} ms "
            f"of no progress ({tried} tries); the command may or may not have run"
        )

    def leader_guess(self, avoid: int | None = None) -> int:
        core = self.core
        if core.is_leader():
            return self.replica_id
        hint = core.leader_hint
        if hint is not None and hint != avoid:
            return hint
        others = [r for r in self.peer_addresses if r != avoid]
        return random.choice(others) if others else self.replica_id

    # --------------------------------------------------------------- RESP side

    async def serve_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        limits = self.limits
        if self.connections >= limits.connections_max:
            self.drops["connections_max"] += 1
            writer.write(resp.error("ERR max number of clients reached"))
            writer.close()
            return
        self.connections += 1
        self.stats["connections_accepted"] += 1
        parser = resp.RespParser(limits.arguments_max, limits.bulk_bytes_max, limits.inline_bytes_max)
        # Commands run concurrently, at most pipeline_depth_max, and replies leave in
        # order from the writer task; start() waits for room, so reading pauses meanwhile.
        pipeline = Pipeline(self.run_command, limits.pipeline_depth_max, self.stats)
        replies = asyncio.create_task(pipeline.write_replies(writer))
        try:
            reading = True
            while reading:  # ends at EOF, QUIT, a protocol error or a broken connection
                data = await reader.read(65536)
                if not data:
                    break
                parser.feed(data)
                while True:  # bounded: the parser holds at most one read plus one command
                    try:
                        arguments = parser.next_command()
                    except resp.RespProtocolError as error:
                        self.drops["resp_protocol_error"] += 1
                        await pipeline.reply_last(resp.error(f"ERR {error}"))
                        reading = False
                        break
                    if arguments is None:
                        break
                    if arguments and not await pipeline.start(arguments):
                        reading = False
                        break
            pipeline.end_input()
            await replies  # every reply written (or the connection broke)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            # The replica is stopping. Python 3.11's stream server logs a cancelled
            # handler as an unhandled error; a connection ended by shutdown is not one.
            pass
        except Exception as error:  # noqa: BLE001 - one connection must not end the process
            self.input_failed("connection", error)
        finally:
            replies.cancel()
            pipeline.cancel()
            self.connections -= 1
            writer.close()

    async def run_command(self, session: Session, spec: CommandSpec,
                          arguments: list[bytes]) -> tuple[bytes, bool]:
        """One command resolved by commands.resolve, in ``session``: (reply, close after it)."""
        try:
            return await spec.handler(self, session, arguments[1:]), spec.closes
        except (CommandFailed, BadArgument) as error:
            return resp.error(str(error)), False
        except Exception as error:  # noqa: BLE001 - one command must not end the connection
            self.input_failed("command", error)
            return resp.error(f"ERR internal error: {type(error).__name__}; see the replica's log"), False

    def check_key(self, key: bytes) -> str:
        return check_key(self.limits, key)

    def check_value(self, value: bytes) -> bytes:
        return check_value(self.limits, value)

    async def kvs(self, session: Session, op: str, key: str, value: bytes | None = None,
                  expected: bytes | None = None, *, pairs: tuple[tuple[str, bytes], ...] = (),
                  keys: tuple[str, ...] = (), count: int = 0):
        command = Command(session.client_id, session.next_request_id(), op, key, value, expected,
                          pairs=pairs, keys=keys, count=count)
        reply = await self.submit(command)
        return reply.result

    def info_text(self) -> str:
        core = self.core
        usage = resource.getrusage(resource.RUSAGE_SELF)
        lines = [
            "# Server",
            f"lowpaxos_version:{__version__}",
            f"replica_id:{self.replica_id}",
            f"process_id:{os.getpid()}",
            f"uptime_in_seconds:{int(time.monotonic() - self.started)}",
            f"tick_ms:{self.spec.tick_ms}",
            "",
            "# Replication",
            f"protocol:{self.spec.protocol_name}",
            # The protocol's own lines (core/api.py info_fields): role, leader_hint,
            # commit_index, kvs_index, kvs_digest, ... under names every protocol shares.
            *(f"{name}:{value}" for name, value in core.info_fields()),
            "",
            "# Stats",
            f"connected_clients:{self.connections}",
            f"storage_transactions:{self.storage.transactions}",
            f"storage_records:{self.storage.records_written}",
            f"storage_write_seconds:{self.storage.write_seconds:.3f}",
            *(f"rows_{name}:{value}" for name, value in self.storage.row_stats().items()),
            f"used_cpu_seconds:{usage.ru_utime + usage.ru_stime:.3f}",
            f"peak_rss_kb:{usage.ru_maxrss}",
        ]
        stats = self.stats + self.fragment_sender.stats + self.fragment_receiver.stats
        lines += [f"{name}:{count}" for name, count in sorted(stats.items())]
        lines += ["", "# Drops"]
        drops = self.drops + self.fragment_sender.drops + self.fragment_receiver.drops
        lines += [f"drop_{reason}:{count}" for reason, count in sorted(drops.items())]
        lines += [f"core_drop_{reason}:{count}" for reason, count in sorted(core.drop_counts().items())]
        return "\r\n".join(lines) + "\r\n"


# ---- Process entry point ----


def event_loop_factory():
    """uvloop where installed, plain asyncio otherwise."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``lowpaxos replica`` options (lowpaxos.cli calls this)."""
    parser.add_argument("--cluster", required=True, help="cluster file (TOML)")
    parser.add_argument("--id", type=int, required=True, help="this replica's id in the file")
    parser.add_argument("--protocol", default=None,
                        help="refuse to start unless the cluster file names this protocol "
                             f"({', '.join(PROTOCOLS)}); the file's protocol is used either way")
    parser.add_argument("--lifetime-seconds", type=float, default=None,
                        help="stop by itself after this long (tests and launchers set it)")


def command(arguments: argparse.Namespace) -> int:
    """Run one replica until SIGTERM/SIGINT (or its lifetime). Exit status: 0 stopped,
    2 cannot start (cluster file, database, address), 3 storage failed, 4 a loop failed."""
    logger = Logger(replica=arguments.id)
    try:
        spec = load_cluster(arguments.cluster)
        spec.replica(arguments.id)
        expected = getattr(arguments, "protocol", None)
        if expected is not None and expected != spec.protocol_name:
            raise ClusterFileError(f"{spec.path} names protocol {spec.protocol_name!r}, "
                                   f"not {expected!r} as --protocol says")
        key = load_key(spec)
    except ClusterFileError as error:
        logger.error("bad_cluster_file", error=str(error))
        print(f"lowpaxos replica: {error}", file=sys.stderr)
        return 2
    replica = Replica(spec, arguments.id, key, logger, arguments.lifetime_seconds)
    try:
        replica.open_storage()
    except StorageCorrupt as error:
        logger.error("storage_corrupt", error=str(error))
        print(f"lowpaxos replica {arguments.id}: {error}", file=sys.stderr)
        return 2
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        return runner.run(replica.run())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lowpaxos replica", description="Run one replica.")
    add_arguments(parser)
    return command(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
