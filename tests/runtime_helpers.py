"""Helpers shared by the tests that run a real cluster of replica processes."""

from __future__ import annotations

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
