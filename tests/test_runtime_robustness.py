"""A replica process survives what used to end it: socket errors reported by the
event loop, messages over the UDP or codec limit, and exceptions inside one core
step; ``lowpaxos cluster`` restarts a replica that dies anyway. Unit tests drive
``Replica``'s loops in-process with a scripted socket; the others run real
processes, all of which the tests stop."""

from __future__ import annotations

import asyncio
import errno
import io
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from lowpaxos import codec
from lowpaxos.core.api import ClientRequest, Command, Effects
from lowpaxos.protocols.lowpaxos.messages import Accept, Ballot, Heartbeat
from lowpaxos.runtime.cluster import load_cluster, write_cluster_file
from lowpaxos.runtime.framing import seal
from lowpaxos.runtime.launcher import LocalCluster, RestartBackoff, ping
from lowpaxos.runtime.logs import Logger
from lowpaxos.runtime.replica import REQUEST_BYTES_MAX, Replica

import redis  # noqa: E402 - a test dependency (pyproject), never skipped

KEY = bytes(range(32))


class ScriptedStream:
    """Stands in for an asyncio-dgram stream: ``recv`` returns or raises the scripted
    items in order, then waits forever; ``sendto`` records datagrams."""

    def __init__(self, script: list) -> None:
        self.script = list(script)
        self.sent: list[tuple[bytes, tuple]] = []
        self._transport = self

    async def recv(self):
        if not self.script:
            await asyncio.Event().wait()
        item = self.script.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item, ("127.0.0.1", 1)

    def sendto(self, data: bytes, address) -> None:
        self.sent.append((data, address))

    def close(self) -> None:
        pass


def make_replica(tmp_path, limits: dict | None = None) -> tuple[Replica, io.StringIO]:
    path = tmp_path / "cluster.toml"
    write_cluster_file(path, [7000, 7001, 7002], [6380, 6381, 6382], limits=limits)
    log = io.StringIO()
    replica = Replica(load_cluster(path), 0, KEY, Logger(stream=log, replica=0))
    replica.open_storage()
    return replica, log


def log_events(log: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in log.getvalue().splitlines()]


async def run_until(replica: Replica, condition, timeout_s: float = 5.0) -> None:
    """Run the receive and flush loops until ``condition()`` holds (or fail)."""
    replica.flush_wakeup = asyncio.Event()
    tasks = [asyncio.create_task(replica.receive_loop()), asyncio.create_task(replica.flush_loop())]
    try:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not condition():
            for task in tasks:
                if task.done():
                    raise AssertionError(f"a loop ended: {task.exception()!r}")
            assert asyncio.get_running_loop().time() < deadline, "condition not reached"
            await asyncio.sleep(0.01)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def heartbeat_from(sender: int, counter: int) -> bytes:
    return seal(KEY, sender, counter, codec.encode(Heartbeat(Ballot(1, sender), 0, 0)))


def test_receive_loop_survives_socket_errors(tmp_path):
    """The original crash: asyncio-dgram raises EMSGSIZE (an earlier send that was too
    big) out of recv(); the loop counts it, logs it and handles the next datagram."""
    replica, log = make_replica(tmp_path)
    replica.stream = ScriptedStream([
        OSError(errno.EMSGSIZE, "Message too long"),
        heartbeat_from(1, 10),
        OSError(errno.ECONNREFUSED, "Connection refused"),
        heartbeat_from(2, 11),
    ])

    asyncio.run(run_until(replica, lambda: replica.stats["messages_received"] == 2))
    assert replica.drops["socket_error_emsgsize"] == 1
    assert replica.drops["socket_error_econnrefused"] == 1
    errors = [event for event in log_events(log) if event["event"] == "socket_error"]
    assert [event["error"] for event in errors] == ["[Errno 90] Message too long",
                                                    "[Errno 111] Connection refused"]
    replica.storage.close()


def test_core_exception_rebuilds_the_core_from_durable_state(tmp_path):
    """An exception inside one core step is logged and counted; the runtime feeds that
    core nothing more and, once earlier batches are written, builds a new core from the
    database (an in-process restart) which then handles input again."""
    replica, log = make_replica(tmp_path)
    failing_core = replica.core

    def explode(source, message):
        raise RuntimeError("bug in a handler")

    failing_core.on_message = explode
    replica.stream = ScriptedStream([heartbeat_from(1, 10), heartbeat_from(2, 11)])

    asyncio.run(run_until(replica, lambda: replica.stats["core_rebuilds"] == 1))
    assert replica.stats["core_exceptions"] == 1
    assert replica.core is not failing_core
    assert replica.core_failed is False
    events = {event["event"]: event for event in log_events(log)}
    assert "RuntimeError('bug in a handler')" in events["core_exception"]["error"]
    assert "explode" in events["core_exception"]["traceback"]
    assert "core_rebuilt" in events

    # The new core takes input again.
    replica.stream = ScriptedStream([heartbeat_from(1, 12)])
    received = replica.stats["messages_received"]
    asyncio.run(run_until(replica, lambda: replica.stats["messages_received"] > received))
    assert replica.stats["core_exceptions"] == 1
    replica.storage.close()


def test_unencodable_and_oversized_messages_are_dropped_and_counted(tmp_path):
    """A message the codec refuses (over MESSAGE_BYTES_MAX) and a datagram over
    datagram_bytes_max are dropped with a counted reason, not raised."""
    replica, log = make_replica(tmp_path, limits={"datagram_bytes_max": 2000})
    replica.stream = ScriptedStream([])
    replica.flush_wakeup = asyncio.Event()
    huge = Command(1, 1, "put", "k", b"x" * (codec.MESSAGE_BYTES_MAX + 1))
    accept = Accept(Ballot(1, 0), 1, (huge,), 0, 0)
    replica.enqueue(Effects(send=[(1, accept)]), None)
    assert replica.drops["encode_oversized"] == 1
    replica.send_message(1, ClientRequest(huge))
    assert replica.drops["encode_oversized"] == 2
    replica.send_datagram(1, b"y" * 2001)
    assert replica.drops["send_oversized"] == 1
    assert replica.stream.sent == []
    assert {"encode_failed", "send_oversized"} <= {event["event"] for event in log_events(log)}
    replica.storage.close()


def test_restart_backoff_doubles_and_resets():
    """The supervisor's wait doubles from 0.5 s up to 10 s for a replica that keeps
    exiting, and starts over after a run of 30 s."""
    backoff = RestartBackoff()
    assert [backoff.after_exit(1.0) for _ in range(7)] == [0.5, 1, 2, 4, 8, 10, 10]
    assert backoff.after_exit(31.0) == 0.5
    assert backoff.after_exit(0.1) == 1


def wait_for_leader(client, timeout_s: float = 20.0) -> None:
    """A first write succeeds once a leader is elected (the start waits only for PING)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            client.set("warm-up", b"1")
            return
        except redis.ResponseError:
            assert time.monotonic() < deadline, "no leader elected"


def test_replica_processes_survive_messages_over_a_datagram_and_over_the_codec(tmp_path):
    """Reproduces the crash of `redis-benchmark -d 100` (a message over one UDP datagram
    killed the process): a SET of 100 KB through a follower and through the leader now
    travels in fragments and reads back; a SET whose message would exceed what the
    codec carries is refused with an error; every process keeps serving."""
    size = codec.MESSAGE_BYTES_MAX + 1024
    limits = {"value_bytes_max": 2 * size, "bulk_bytes_max": 2 * size}
    with LocalCluster(tmp_path, 3, limits=limits, lifetime_s=120) as cluster:
        cluster.start()
        clients = [redis.Redis(port=port, protocol=2, socket_timeout=20)
                   for port in cluster.resp_ports]
        wait_for_leader(clients[0])
        leader = next(i for i, c in enumerate(clients) if c.info()["role"] == "leader")
        follower = (leader + 1) % 3
        # Over the request bound (the Accept must still encode), and over the codec's.
        too_big = {follower: REQUEST_BYTES_MAX + 1, leader: size}
        for replica_id in (follower, leader):
            value = bytes([replica_id]) * 100_000
            assert clients[replica_id].set(f"100k-{replica_id}", value) is True
            assert clients[(replica_id + 1) % 3].get(f"100k-{replica_id}") == value
            with pytest.raises(redis.ResponseError, match="refused"):
                clients[replica_id].set("too-big", b"x" * too_big[replica_id])
        assert all(process.poll() is None for process in cluster.processes.values())
        assert all(c.ping() for c in clients)
        infos = [c.info() for c in clients]
        assert infos[follower]["drop_request_oversized"] == 1
        assert infos[leader]["drop_encode_oversized"] == 1
        assert sum(info.get("messages_reassembled", 0) for info in infos) >= 4


def read_lines(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line.rstrip("\n"))


def wait_for_line(lines: queue.Queue, pattern: str, seen: list[str], timeout_s: float = 30.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            break
        seen.append(line)
        match = re.search(pattern, line)
        if match:
            return match
    raise AssertionError(f"no line matching {pattern!r}; launcher said: {seen}")


def process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_cluster_launcher_restarts_a_killed_replica(tmp_path):
    """`lowpaxos cluster` restarts a replica killed with SIGKILL (it says so, and the
    replica answers PING again with a new pid) and SIGTERM stops every process."""
    launcher = subprocess.Popen(
        [sys.executable, "-m", "lowpaxos.cli", "cluster", "--replicas", "3", "--dir",
         str(tmp_path), "--seconds", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=read_lines, args=(launcher.stdout, lines), daemon=True).start()
    seen: list[str] = []
    pids: dict[int, int] = {}
    ports: dict[int, int] = {}
    try:
        for _ in range(3):
            match = wait_for_line(lines, r"replica (\d+): RESP on 127\.0\.0\.1:(\d+) .*pid (\d+)", seen)
            replica_id = int(match.group(1))
            ports[replica_id], pids[replica_id] = int(match.group(2)), int(match.group(3))
        wait_for_line(lines, r"^ready:", seen)
        os.kill(pids[1], signal.SIGKILL)
        wait_for_line(lines, r"replica 1 exited with -9; restarting in 0\.5 s", seen)
        match = wait_for_line(lines, r"replica 1 restarted \(pid (\d+)\)", seen)
        new_pid = int(match.group(1))
        assert new_pid != pids[1]
        deadline = time.monotonic() + 20
        while not ping(ports[1]) and time.monotonic() < deadline:
            time.sleep(0.1)
        reply = redis.Redis(port=ports[1], protocol=2, socket_timeout=10)
        assert int(reply.info()["process_id"]) == new_pid
        assert reply.set("after-restart", b"1") is True
        pids[1] = new_pid
    finally:
        launcher.send_signal(signal.SIGTERM)
        launcher.wait(timeout=30)
    wait_for_line(lines, r"^stopped$", seen, timeout_s=5)
    assert launcher.returncode == 0
    assert all(process_gone(pid) for pid in pids.values())
