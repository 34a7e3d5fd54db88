"""Integration tests against a real 3-process cluster on 127.0.0.1: redis-py and
redis-cli commands, bad client input, forged datagrams, SIGKILL and restart, and a
corrupt database. Every process started here is stopped by the fixture."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest
import redis

from lowpaxos.runtime.client import LowPaxosClient
from lowpaxos.runtime.cluster import load_cluster, load_key
from lowpaxos.runtime.framing import seal
from lowpaxos.runtime.launcher import LocalCluster

from tests.runtime_helpers import client, started_cluster



@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    yield from started_cluster(tmp_path_factory.mktemp("cluster"),
                               limits={"value_bytes_max": 256}, lifetime_s=300)


def info(cluster, replica_id):
    return client(cluster, replica_id).info()


def test_redis_py_commands_on_every_replica(cluster):
    """Each command works through any replica (followers forward to the leader), and a
    write through one replica is read back through another."""
    for replica_id in range(3):
        r = client(cluster, replica_id)
        key = f"key-{replica_id}"
        assert r.ping() is True
        assert r.set(key, b"v1") is True
        assert client(cluster, (replica_id + 1) % 3).get(key) == b"v1"
        assert r.exists(key, "absent") == 1
        assert r.execute_command("CAS", key, b"v1", b"v2") == 1
        assert r.execute_command("CAS", key, b"v1", b"v3") == 0
        assert r.get(key) == b"v2"
        assert r.set(key, b"x", nx=True) is None
        assert r.set(key + "-new", b"x", nx=True) is True
        assert r.incr(f"counter-{replica_id}") == 1
        assert r.incr(f"counter-{replica_id}") == 2
        assert r.delete(key, "absent") == 1
        assert r.get(key) is None


def test_errors_are_clear_and_values_never_truncated(cluster):
    """A value over value_bytes_max is refused with a clear error and nothing is stored;
    INCR of a non-number and an unknown command get RESP errors."""
    r = client(cluster, 1)
    with pytest.raises(redis.ResponseError, match="value of 257 bytes refused; the maximum is 256"):
        r.set("big", b"x" * 257)
    assert r.get("big") is None
    r.set("text", b"abc")
    with pytest.raises(redis.ResponseError, match="not an integer"):
        r.incr("text")
    with pytest.raises(redis.ResponseError, match="unknown command"):
        r.execute_command("FLUSHALL")


def test_info_shows_role_ballot_and_counters(cluster):
    """INFO names one leader, the same ballot on a quorum, and the counters."""
    infos = [info(cluster, i) for i in range(3)]
    assert sorted(i["role"] for i in infos) == ["follower", "follower", "leader"]
    for fields in infos:
        for name in ("ballot", "commit_index", "applied_index", "slots_in_memory",
                     "datagrams_received", "bytes_received", "datagrams_sent", "bytes_sent"):
            assert name in fields, name


def test_redis_cli(cluster):
    """redis-cli (Debian's redis-tools) sets, gets and reads INFO."""
    assert shutil.which("redis-cli") is not None, "redis-cli missing: `make test` installs it"
    port = str(cluster.resp_ports[2])

    def cli(*arguments):
        return subprocess.run(["redis-cli", "-p", port, *arguments], capture_output=True,
                              text=True, timeout=20, check=True).stdout.strip()

    assert cli("SET", "cli-key", "hello") == "OK"
    assert cli("GET", "cli-key") == "hello"
    assert cli("CAS", "cli-key", "hello", "world") == "1"
    assert cli("GET", "cli-key") == "world"
    assert "role:" in cli("INFO")


def test_malformed_resp_closes_only_that_connection(cluster):
    """Garbage and oversized headers get a RESP error and a closed connection; other
    clients keep being served."""
    port = cluster.resp_ports[0]
    for garbage in (b"*99999\r\n", b"*1\r\n$99999999999\r\n", b"*1\r\n:5\r\n", b"X" * 10000):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(garbage)
            reply = b""
            while chunk := sock.recv(4096):  # bounded: the server closes after the error
                reply += chunk
            assert reply.startswith(b"-ERR Protocol error"), reply
    assert client(cluster, 0).set("after-garbage", b"1") is True
    assert info(cluster, 0)["drop_resp_protocol_error"] >= 4


def test_forged_datagrams_are_dropped_and_counted(cluster):
    """Datagrams with a wrong key, an unknown sender, an undecodable payload, or beyond
    the size bound are dropped by reason, and the replica keeps serving."""
    spec = load_cluster(cluster.cluster_file)
    key = load_key(spec)
    target = spec.replica(2).bind
    forged = [
        seal(b"wrong key 16 bytes....", 0, 1, b"\x91\x10"),
        seal(key, 9, 1, b"\x91\x10"),
        seal(key, 0, 1, b"\xc1 not msgpack"),
        b"\0" * 70000,
        b"short",
    ]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        for datagram in forged:
            try:
                sock.sendto(datagram, target)
            except OSError:
                pass  # 70000 bytes exceeds the UDP limit: the kernel refuses; fine either way
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        fields = info(cluster, 2)
        if all(f"drop_{name}" in fields for name in ("bad_tag", "unknown_sender", "truncated")) \
                and any(name.startswith("drop_decode_") for name in fields):
            break
        time.sleep(0.1)
    assert fields["drop_bad_tag"] >= 1
    assert fields["drop_unknown_sender"] >= 1
    assert fields["drop_truncated"] >= 1
    assert any(name.startswith("drop_decode_") for name in fields)
    assert client(cluster, 2).set("after-forgery", b"1") is True


def test_asyncio_client(cluster):
    """The asyncio client runs commands concurrently over its connection pool."""
    async def run():
        addresses = [("127.0.0.1", port) for port in cluster.resp_ports]
        async with LowPaxosClient(addresses, connections=8) as c:
            await asyncio.gather(*(c.set(f"a{i}", b"%d" % i) for i in range(40)))
            values = await asyncio.gather(*(c.get(f"a{i}") for i in range(40)))
            assert values == [b"%d" % i for i in range(40)]
            assert await c.cas("a1", b"1", b"one") is True
            assert await c.incr("a-counter") == 1
            assert (await c.info())["role"] in ("leader", "follower")
    asyncio.run(run())


def test_sigkill_and_restart_keeps_acknowledged_writes(cluster):
    """Acknowledged writes survive SIGKILL of the leader and of then every replica at
    once: each restarts from its SQLite database and the cluster serves them again."""
    r = client(cluster, 0)
    for i in range(20):
        r.set(f"durable-{i}", b"%d" % i)
    leader = next(i for i in range(3) if info(cluster, i)["role"] == "leader")
    cluster.kill_replica(leader)
    cluster.start_replica(leader)
    for replica_id in range(3):
        cluster.kill_replica(replica_id)
    for replica_id in range(3):
        cluster.start_replica(replica_id, wait=False)
    for replica_id in range(3):
        cluster.wait_ready(replica_id)
    r = client(cluster, (leader + 1) % 3)
    assert [r.get(f"durable-{i}") for i in range(20)] == [b"%d" % i for i in range(20)]


def test_corrupt_database_refuses_to_start(tmp_path):
    """A replica whose database file is damaged exits with a clear message instead of
    serving."""
    local = LocalCluster(tmp_path, 1, lifetime_s=60)
    try:
        local.start()
        client(local, 0).set("k", b"v")
    finally:
        local.stop()
    database = tmp_path / "data" / "replica-0.sqlite"
    database.write_bytes(b"garbage" * 1000)
    for suffix in ("-wal", "-shm"):
        if os.path.exists(str(database) + suffix):
            os.remove(str(database) + suffix)
    result = subprocess.run(
        [sys.executable, "-m", "lowpaxos.runtime.replica", "--cluster", str(local.cluster_file),
         "--id", "0", "--lifetime-seconds", "30"],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "refuses to start" in result.stderr


def test_traces_merge_in_happens_before_order(tmp_path):
    """With tracing on, each replica writes the core's NDJSON events with message ids;
    the merged trace puts every handled message after the event that sent it."""
    from lowpaxos.runtime.trace import merge_traces

    local = LocalCluster(tmp_path, 3, trace=True, lifetime_s=60)
    try:
        local.start()
        r = client(local, 0)
        for i in range(10):
            r.set(f"t{i}", b"v")
    finally:
        local.stop()
    paths = sorted((tmp_path / "trace").glob("replica-*.ndjson"))
    assert len(paths) == 3
    merged = merge_traces(paths)
    assert {event["action"] for event in merged} >= {"StartElection", "BecomeLeader", "Propose",
                                                     "HandleAccept", "HandleAccepted"}
    position_of_send = {}
    for position, event in enumerate(merged):
        assert {"replica", "state", "boot", "seq"} <= set(event)
        for _target, sender, counter in event.get("sent", []):
            position_of_send[(sender, counter)] = position
    for position, event in enumerate(merged):
        received = event.get("received")
        if received is not None and tuple(received) in position_of_send:
            assert position_of_send[tuple(received)] < position
