"""EPaxos in the real runtime: 3 replica processes on 127.0.0.1 built through the
registry from a cluster file naming ``epaxos`` (issue 9; docs/runtime.md, "EPaxos").

Every replica serves its own clients and leads its own instances (SOSP 2013 §4: no
designated leader), so nothing is forwarded. Clients at the three replicas write one
key concurrently, each through its own replica: the interfering commands are ordered
by their dependencies, every replica executes them in the same order (equal
kvs_digest in INFO) and the history is linearizable. A SIGKILL of every replica at
once and a restart from the SQLite files keep every acknowledged write; a replica
killed alone leaves the others serving. Every process started is stopped.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time

import msgpack
import pytest

from lowpaxos.check.linearizability import Operation, check_history
from lowpaxos.runtime.client import LowPaxosClient
from tests.runtime_helpers import client, info, started_cluster, wait_until

SETTLE_S = 30  # bounds on waiting for convergence or a restarted replica
WRITES_PER_CLIENT = 25
HOT = "hot"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    yield from started_cluster(tmp_path_factory.mktemp("epaxos"), protocol_name="epaxos",
                               lifetime_s=240)


def same_state(cluster) -> list[dict] | None:
    """INFO of every replica when all report the same kvs_digest, else None."""
    infos = [info(cluster, r) for r in range(cluster.count)]
    if all(infos) and len({str(i.get("kvs_digest")) for i in infos}) == 1:
        return infos
    return None


async def hot_key_writers(ports: list[int]) -> list[Operation]:
    """One client per replica, each writing (and now and then reading) the hot key
    through its own replica only, all at once; the history with monotonic times."""
    history: list[Operation] = []

    async def writer(index: int, port: int) -> None:
        async with LowPaxosClient([("127.0.0.1", port)], 1, timeout_s=10) as one:
            for n in range(WRITES_PER_CLIENT):  # bounded
                value = b"r%d-%d" % (index, n)
                invoke = time.monotonic_ns()
                await one.set(HOT, value)
                history.append(Operation(index, "put", HOT, value, None, invoke,
                                         time.monotonic_ns(), None))
                if n % 5 == 4:
                    invoke = time.monotonic_ns()
                    seen = await one.get(HOT)
                    history.append(Operation(index, "get", HOT, None, None, invoke,
                                             time.monotonic_ns(), seen))

    await asyncio.gather(*(writer(i, port) for i, port in enumerate(ports)))
    return history


def test_clients_at_every_replica_write_one_key_and_all_converge(cluster):
    """Concurrent writes of one key through the three replicas: every one acknowledged
    without forwarding, the history linearizable, every replica at the same state with
    the same last value, and INFO shows EPaxos's own counters."""
    history = asyncio.run(hot_key_writers(cluster.resp_ports))
    assert len([op for op in history if op.op == "put"]) == 3 * WRITES_PER_CLIENT
    result = check_history(history, time_limit_s=30)
    assert result.linearizable is True, result.explanation
    infos = wait_until(lambda: same_state(cluster), SETTLE_S, "every replica executes all")
    values = {client(cluster, r).get(HOT) for r in range(3)}
    assert len(values) == 1 and values.pop().startswith(b"r")
    for replica_id, fields in enumerate(infos):
        assert fields["protocol"] == "epaxos" and fields["role"] == "replica"
        # Each replica took its own client's commands: none went to another replica.
        assert fields.get("requests_forwarded_out", 0) == 0, (replica_id, fields)
        assert fields.get("requests_forwarded_in", 0) == 0, (replica_id, fields)
        for name in ("commit_index", "kvs_digest", "epaxos_fast_commits",
                     "epaxos_slow_commits", "epaxos_recoveries", "epaxos_largest_scc",
                     "epaxos_execute_delay_max_ticks"):
            assert name in fields, (name, fields)
    # Every replica led instances of its own (its client's writes).
    assert all(f["epaxos_fast_commits"] + f["epaxos_slow_commits"] >= 1 for f in infos)


def test_full_cluster_restart_keeps_acknowledged_writes(cluster):
    """SIGKILL of every replica at once: PreAccept, Accept and Commit state was durable
    before any reply left, so after a restart from the SQLite files every acknowledged
    write is there, read through every replica, and the files say epaxos."""
    acknowledged = {}
    for replica_id in range(3):
        r = client(cluster, replica_id)
        for n in range(5):
            key, value = f"full-{replica_id}-{n}", b"f%d.%d" % (replica_id, n)
            assert r.set(key, value) is True
            acknowledged[key] = value
    for replica_id in range(3):
        cluster.kill_replica(replica_id)
    for replica_id in range(3):
        database = cluster.directory / "data" / f"replica-{replica_id}.sqlite"
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
            meta = {name: value for name, value in
                    connection.execute("SELECT name, value FROM meta")}
        assert msgpack.unpackb(meta["protocol"]) == "epaxos"
    for replica_id in range(3):
        cluster.start_replica(replica_id, wait=False)
    for replica_id in range(3):
        cluster.wait_ready(replica_id)
    for replica_id in range(3):
        r = client(cluster, replica_id)
        for key, value in acknowledged.items():
            assert r.get(key) == value, (replica_id, key)
    wait_until(lambda: same_state(cluster), SETTLE_S, "every replica after the restart")


def test_one_replica_killed_the_others_serve_and_it_catches_up(cluster):
    """A replica SIGKILLed: the two others (a majority, and the fast quorum of 2 at
    N = 3) keep serving the hot key; restarted from its file, it learns what it missed
    and converges."""
    cluster.kill_replica(2)
    for n in range(10):
        assert client(cluster, n % 2).set(HOT, b"after-kill-%d" % n) is True
    assert client(cluster, 0).get(HOT) == b"after-kill-9"
    cluster.start_replica(2)
    wait_until(lambda: same_state(cluster), SETTLE_S, "the restarted replica catches up")
    assert client(cluster, 2).get(HOT) == b"after-kill-9"
