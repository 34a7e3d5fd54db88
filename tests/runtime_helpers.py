"""Helpers shared by the tests that run a real cluster of replica processes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import redis

from lowpaxos.runtime.launcher import LocalCluster


def started_cluster(directory: Path, replicas: int = 3, **options) -> Iterator[LocalCluster]:
    """For module fixtures: a started LocalCluster, stopped however the tests end."""
    local = LocalCluster(directory, replicas, **options)
    try:
        local.start()
        yield local
    finally:
        local.stop()


def client(cluster: LocalCluster, replica_id: int = 0) -> redis.Redis:
    # RESP2: redis-py 8 defaults to RESP3 (HELLO 3), which the replica refuses with NOPROTO.
    return redis.Redis(host="127.0.0.1", port=cluster.resp_ports[replica_id], socket_timeout=10,
                       protocol=2)


def info(cluster: LocalCluster, replica_id: int) -> dict:
    """INFO of one replica, or {} when it does not answer (killed, starting)."""
    try:
        return client(cluster, replica_id).info()
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return {}


def wait_until(predicate, timeout_s: float, what: str, pause_s: float = 0.2):
    """Poll ``predicate`` until it returns a true value (returned), at most ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:  # bounded by the deadline
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        time.sleep(pause_s)


def leader_of(cluster: LocalCluster, replicas=None) -> int | None:
    """The replica whose INFO says role:leader (any protocol), or None."""
    for replica_id in replicas if replicas is not None else range(cluster.count):
        if info(cluster, replica_id).get("role") == "leader":
            return replica_id
    return None


def converged(cluster: LocalCluster, replicas=None) -> list[dict] | None:
    """INFO of every replica when all report the same kvs_index and kvs_digest, else None."""
    infos = [info(cluster, r) for r in (replicas if replicas is not None else range(cluster.count))]
    if all(infos) and len({(i.get("kvs_index"), str(i.get("kvs_digest"))) for i in infos}) == 1:
        return infos
    return None
