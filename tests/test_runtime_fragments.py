"""Large values on a real 3-process cluster: a 1 MiB SET travels in its own slot,
split over fragments (runtime/fragments.py), and reads back through a follower; with
a UDP fault proxy losing datagrams, lost fragments are repaired by NACKs, as INFO
counts. Every process the tests start is stopped."""

from __future__ import annotations

import random
import socket
import time

import pytest

from lowpaxos.runtime.faultproxy import UdpFaultProxy
from lowpaxos.runtime.launcher import LocalCluster

import redis  # noqa: E402 - a test dependency (pyproject), never skipped

MIB = 1 << 20


def clients_of(cluster: LocalCluster) -> list:
    return [redis.Redis(port=port, protocol=2, socket_timeout=30) for port in cluster.resp_ports]


def leader_of(clients: list, timeout_s: float = 20.0) -> int:
    """The replica that leads, after a first write succeeded (an election ran)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            clients[0].set("warm-up", b"1")
            break
        except redis.ResponseError:
            assert time.monotonic() < deadline, "no leader elected"
    roles = [c.info()["role"] for c in clients]
    return roles.index("leader")


def retrying(call, tries: int = 5):
    """``call()``, again after a TRYAGAIN (an election under loss may take a while)."""
    for attempt in range(tries):
        try:
            return call()
        except redis.ResponseError as error:
            if not str(error).startswith("no answer") or attempt == tries - 1:
                raise


def totals(clients: list, *names: str) -> dict[str, int]:
    infos = [c.info() for c in clients]
    return {name: sum(int(info.get(name, 0)) for info in infos) for name in names}


def test_one_mebibyte_value_through_followers(tmp_path):
    """SET of a 1 MiB value through one follower and GET through the other return the
    same bytes; 1 MiB is the default value_bytes_max and bulk_bytes_max, so one byte
    more is a protocol error for the connection."""
    with LocalCluster(tmp_path, 3, lifetime_s=120) as cluster:
        cluster.start()
        clients = clients_of(cluster)
        leader = leader_of(clients)
        first, second = [(leader + 1) % 3, (leader + 2) % 3]
        value = random.Random(1).randbytes(MIB)
        assert clients[first].set("big", value) is True
        assert clients[second].get("big") == value
        assert clients[leader].get("big") == value
        # One byte more: the replica refuses the bulk from its header alone and closes the
        # connection. Only the header is sent (a client still sending the body may meet
        # the closed socket first, a broken pipe, before it reads the error).
        with socket.create_connection(("127.0.0.1", cluster.resp_ports[first]), timeout=30) as raw:
            raw.sendall(b"*3\r\n$3\r\nSET\r\n$6\r\nbigger\r\n$%d\r\n" % (MIB + 1))
            answer = b""
            while not answer.endswith(b"\r\n"):
                chunk = raw.recv(4096)
                if not chunk:
                    break
                answer += chunk
        assert answer.startswith(b"-") and b"bulk of 1048577 bytes, at most 1048576" in answer, answer
        counts = totals(clients, "messages_fragmented", "fragments_sent", "messages_reassembled")
        # Forwarded request, Accept(s) and forwarded replies, each about 874 fragments.
        assert counts["messages_reassembled"] >= 3
        assert counts["fragments_sent"] >= 3 * (MIB // 1200)


def test_one_mebibyte_value_under_datagram_loss(tmp_path):
    """With 3% of datagrams lost by a UDP proxy between the replicas, a 1 MiB SET through
    a follower and GETs through the others still return the value, and the replicas
    sent NACKs and retransmitted single fragments to repair the losses."""
    cluster = LocalCluster(tmp_path, 3, proxied=True, lifetime_s=180)
    proxy = UdpFaultProxy(cluster.udp_ports, cluster.bind_ports, lifetime_s=180, seed=7).start()
    try:
        cluster.start()
        clients = clients_of(cluster)
        leader = leader_of(clients)
        proxy.set_loss(0.03)
        first, second = [(leader + 1) % 3, (leader + 2) % 3]
        value = random.Random(2).randbytes(MIB)
        assert retrying(lambda: clients[first].set("lossy", value)) is True
        assert retrying(lambda: clients[second].get("lossy")) == value
        assert retrying(lambda: clients[first].get("lossy")) == value
        assert proxy.lost > 0
        counts = totals(clients, "nacks_sent", "nacks_received", "fragments_retransmitted")
        assert counts["nacks_sent"] > 0
        assert counts["nacks_received"] > 0
        assert counts["fragments_retransmitted"] > 0
    finally:
        proxy.stop()
        cluster.stop()
