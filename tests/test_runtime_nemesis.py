"""Nemesis: 3 replica processes on loopback serve concurrent RESP clients for a
bounded time while the nemesis SIGKILLs and restarts the leader, kills and restarts
every replica at once, and cuts the leader off through a UDP fault proxy. Afterwards
the history (including final reads of every key) must be linearizable, which also
means no acknowledged write was lost. One test, run for every protocol the runtime
serves (LowPaxos; VR with disk = "sync", its runtime default, which survives the
kill of every replica; EPaxos, which has no leader: every replica serves its own
clients and leads its own instances, so the nemesis's "leader" is a replica the
clients use, replica 0, and killing or cutting it off leaves its instances to be
recovered by the others, TR §4.5). Every process the test starts is stopped."""

from __future__ import annotations

import asyncio
import itertools
import random
import time

import pytest

from lowpaxos.check.linearizability import Operation, check_history
from lowpaxos.runtime.client import LowPaxosClient, ReplyError
from lowpaxos.runtime.faultproxy import UdpFaultProxy
from lowpaxos.runtime.launcher import LocalCluster

KEYS = [f"k{i}" for i in range(6)]
WORKERS = 6
CLIENT_TIMEOUT_S = 6.0


async def leader_of(ports: list[int]) -> int | None:
    """The replica whose INFO role is leader; for a leaderless protocol (every role
    "replica": EPaxos) replica 0, which workers 0 and 3 send to; None if unknown."""
    roles = []
    for replica_id, port in enumerate(ports):
        try:
            async with LowPaxosClient([("127.0.0.1", port)], 1, timeout_s=2) as client:
                roles.append((await client.info()).get("role"))
        except (OSError, ConnectionError, asyncio.TimeoutError, ReplyError):
            roles.append(None)
        if roles[-1] == "leader":
            return replica_id
    if roles and all(role == "replica" for role in roles):
        return 0
    return None


async def worker(index: int, ports: list[int], stop_at: float, history: list[Operation],
                 counter: itertools.count) -> None:
    rng = random.Random(index)
    loop = asyncio.get_running_loop()
    addresses = [("127.0.0.1", port) for port in ports[index % 3:] + ports[:index % 3]]
    last_seen: dict[str, bytes | None] = {}
    async with LowPaxosClient(addresses, 1, timeout_s=CLIENT_TIMEOUT_S) as client:
        while loop.time() < stop_at:  # bounded by time
            key = rng.choice(KEYS)
            kind = rng.random()
            value = expected = None
            if kind < 0.35:
                op, arguments = "get", ("GET", key)
            elif kind < 0.7:
                op = "put"
                value = b"w%d-%d" % (index, next(counter))
                arguments = ("SET", key, value)
            elif kind < 0.8:
                op, arguments = "delete", ("DEL", key)
            else:
                op = "cas"
                expected = last_seen.get(key) or b"w0-0"
                value = b"c%d-%d" % (index, next(counter))
                arguments = ("CAS", key, expected, value)
            invoke = time.monotonic_ns()
            try:
                reply = await client.execute(*arguments)
            except (ReplyError, ConnectionError, OSError, asyncio.TimeoutError):
                # Unknown outcome: it may or may not have taken effect.
                history.append(Operation(index, op, key, value, expected, invoke, None, None))
                await asyncio.sleep(0.05)
                continue
            response = time.monotonic_ns()
            if op == "get":
                result = reply
                last_seen[key] = reply
            elif op == "put":
                result = None
            else:
                result = reply == 1
            history.append(Operation(index, op, key, value, expected, invoke, response, result))


async def nemesis(cluster: LocalCluster, proxy: UdpFaultProxy, log: list[str]) -> None:
    loop = asyncio.get_running_loop()

    async def blocking(function, *arguments):
        await loop.run_in_executor(None, function, *arguments)

    await asyncio.sleep(3)
    leader = await leader_of(cluster.resp_ports)
    if leader is not None:
        log.append(f"SIGKILL leader {leader}")
        await blocking(cluster.kill_replica, leader)
        await asyncio.sleep(2)
        await blocking(cluster.start_replica, leader)
    await asyncio.sleep(3)
    log.append("SIGKILL every replica")
    for replica_id in range(3):
        await blocking(cluster.kill_replica, replica_id)
    await asyncio.sleep(1)
    for replica_id in range(3):
        await blocking(cluster.start_replica, replica_id, False)
    for replica_id in range(3):
        await blocking(cluster.wait_ready, replica_id)
    await asyncio.sleep(4)
    leader = await leader_of(cluster.resp_ports)
    cut = leader if leader is not None else 0
    log.append(f"isolate {cut}")
    proxy.isolate(cut)
    await asyncio.sleep(5)
    proxy.heal()
    log.append("heal")


@pytest.mark.parametrize("protocol", ["lowpaxos", "vr", "epaxos"])
def test_nemesis_history_is_linearizable(tmp_path, protocol):
    """Acknowledged writes survive crashes and a partition; the history is linearizable."""
    cluster = LocalCluster(tmp_path, 3, proxied=True, lifetime_s=240,
                           limits={"request_timeout_ms": 4000}, protocol_name=protocol)
    proxy = UdpFaultProxy(cluster.udp_ports, cluster.bind_ports, lifetime_s=240).start()
    history: list[Operation] = []
    log: list[str] = []
    try:
        cluster.start()

        async def run():
            loop = asyncio.get_running_loop()
            stop_at = loop.time() + 26
            counter = itertools.count(1)
            await asyncio.gather(
                nemesis(cluster, proxy, log),
                *(worker(i, cluster.resp_ports, stop_at, history, counter) for i in range(WORKERS)))
            # Healed and quiet: a final read of every key must see every acknowledged write.
            async with LowPaxosClient([("127.0.0.1", p) for p in cluster.resp_ports], 1,
                                      timeout_s=10) as client:
                for key in KEYS:
                    for _ in range(20):  # bounded retries while the cluster settles
                        invoke = time.monotonic_ns()
                        try:
                            value = await client.get(key)
                        except (ReplyError, ConnectionError, OSError, asyncio.TimeoutError):
                            await asyncio.sleep(0.5)
                            continue
                        history.append(Operation(99, "get", key, None, None, invoke,
                                                 time.monotonic_ns(), value))
                        break
                    else:
                        raise AssertionError(f"final read of {key} never succeeded")

        asyncio.run(run())
    finally:
        cluster.stop()
        proxy.stop()
    completed = [op for op in history if op.response is not None]
    writes = [op for op in completed if op.op in ("put", "cas", "delete")]
    assert len(log) == 4, log
    assert len(completed) >= 100, f"only {len(completed)} operations completed"
    assert len(writes) >= 30
    result = check_history(history, time_limit_s=60)
    print(f"nemesis[{protocol}]: {log}; {len(history)} operations, {len(completed)} completed, "
          f"{len(writes)} acknowledged writes; linearizable={result.linearizable}")
    assert result.linearizable is True, result.explanation
