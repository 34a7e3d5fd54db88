"""Store-size benchmarks of a 3-replica LowPaxos cluster on 127.0.0.1 (part of ``make bench``).

    .venv/bin/python bench/bench_store.py [--requests 100000] [--keys 1000000]

1. redis-benchmark -t set,get -P 16 -c 50 -r 1000000 -d 100 -n REQUESTS against the
   leader: requests/s and latency percentiles as redis-benchmark reports them (--csv).
2. A fresh cluster; one follower is stopped; KEYS keys of 100-byte values (about 100 MB
   at 1,000,000 keys) are loaded through the leader with pipelined MSETs of
   ``--pairs`` pairs (the bench's cluster file raises ``arguments_max`` for that); the
   follower restarts and the time until its ``kvs_index`` and ``kvs_digest`` equal the
   leader's is the catch-up time (a state transfer: the log was cut meanwhile). Then
   each replica's peak RSS (INFO ``peak_rss_kb``) and database size (the SQLite file
   with its WAL).
3. Transfer under loss: a fresh cluster behind the UDP fault proxy with the cut settings
   of tests/test_runtime_bigstore.py (snapshot_slots 16, log_slots_max 64); a follower is
   stopped, 10,500 keys of 1,000 bytes (10.5 MB) are loaded, ``--loss`` of the datagrams
   between replicas are dropped, the follower restarts: seconds until its kvs index and
   digest equal the leader's, once per ``--transfer-chunk-bytes`` value.

Every loop is bounded in time; every process started here is stopped here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "impl"))

from lowpaxos.runtime.faultproxy import UdpFaultProxy  # noqa: E402
from lowpaxos.runtime.launcher import LocalCluster  # noqa: E402
from lowpaxos.runtime.resp import ReplyParser, encode_command  # noqa: E402

VALUE_BYTES = 100
LOAD_CONNECTIONS = 4
LOAD_PIPELINE = 4  # MSETs written before their replies are read, per connection
CATCH_UP_S_MAX = 1200.0
BENCHMARK_TIMEOUT_S = 1200


def info(port: int, timeout_s: float = 5.0) -> dict[str, str]:
    """INFO of one replica; {} when it does not answer in time."""
    deadline = time.monotonic() + timeout_s
    parser = ReplyParser()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
            sock.sendall(encode_command(["INFO"]))
            reply = parser.next_reply()
            while reply is None and time.monotonic() < deadline:  # bounded by time
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                data = sock.recv(65536)
                if not data:
                    return {}
                parser.feed(data)
                reply = parser.next_reply()
    except OSError:
        return {}
    if reply is None or reply[0] != "$":
        return {}
    return dict(line.split(":", 1) for line in reply[1].decode().splitlines()
                if line and not line.startswith("#") and ":" in line)


def wait_for_leader(cluster: LocalCluster, timeout_s: float = 20.0) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:  # bounded by time
        for replica_id, port in enumerate(cluster.resp_ports):
            if info(port, 1.0).get("role") == "leader":
                return replica_id
        time.sleep(0.1)
    raise RuntimeError(f"no leader within {timeout_s} s")


def database_bytes(cluster: LocalCluster, replica_id: int) -> int:
    base = cluster.directory / "data" / f"replica-{replica_id}.sqlite"
    return sum(path.stat().st_size for path in (base, Path(f"{base}-wal"), Path(f"{base}-shm"))
               if path.exists())


def redis_benchmark(arguments) -> dict:
    """redis-benchmark against the leader of a fresh cluster: one row per test."""
    with tempfile.TemporaryDirectory(prefix="lowpaxos-bench-store-") as directory:
        cluster = LocalCluster(directory, 3, lifetime_s=BENCHMARK_TIMEOUT_S + 120)
        try:
            cluster.start()
            leader = wait_for_leader(cluster)
            command = ["redis-benchmark", "-h", "127.0.0.1", "-p",
                       str(cluster.resp_ports[leader]), "-t", "set,get", "-P", "16", "-c", "50",
                       "-r", "1000000", "-d", "100", "-n", str(arguments.requests), "--csv"]
            started = time.monotonic()
            run = subprocess.run(command, capture_output=True, text=True,
                                 timeout=BENCHMARK_TIMEOUT_S)
            elapsed = time.monotonic() - started
            usage = {i: info(port) for i, port in enumerate(cluster.resp_ports)}
        finally:
            cluster.stop()
    rows = [line.replace('"', "").split(",") for line in run.stdout.splitlines()]
    header = rows[0] if rows else []
    tests = {row[0]: dict(zip(header[1:], map(float, row[1:]))) for row in rows[1:]
             if len(row) == len(header)}
    return {"command": " ".join(command[:4] + ["PORT"] + command[5:]),
            "exit_status": run.returncode, "stderr": run.stderr.strip()[-300:],
            "seconds": round(elapsed, 1), "tests": tests, "leader": leader,
            "cpu_s": {i: fields.get("used_cpu_seconds") for i, fields in usage.items()},
            "peak_rss_mb": {i: round(int(fields.get("peak_rss_kb", 0)) / 1024)
                            for i, fields in usage.items()}}


async def load(port: int, keys: int, pairs: int, value_bytes: int = VALUE_BYTES) -> float:
    """MSET keys key:000000000000.. with ``value_bytes`` values through ``port``; seconds."""
    groups = [range(start, min(keys, start + pairs)) for start in range(0, keys, pairs)]
    value = b"v" * value_bytes

    def command(group: range) -> bytes:
        arguments: list[bytes] = [b"MSET"]
        for number in group:
            arguments += [b"key:%012d" % number, value]
        return encode_command(arguments)

    async def connection(share: list[range]) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        parser = ReplyParser()
        try:
            for start in range(0, len(share), LOAD_PIPELINE):
                batch = share[start:start + LOAD_PIPELINE]
                writer.write(b"".join(command(group) for group in batch))
                replies = 0
                while replies < len(batch):  # bounded: one reply per command, or EOF
                    reply = parser.next_reply()
                    if reply is None:
                        data = await asyncio.wait_for(reader.read(65536), 60)
                        if not data:
                            raise ConnectionError("the replica closed the connection")
                        parser.feed(data)
                        continue
                    if reply != ("+", "OK"):
                        raise RuntimeError(f"MSET answered {reply!r}")
                    replies += 1
        finally:
            writer.close()

    started = time.monotonic()
    await asyncio.gather(*(connection(groups[i::LOAD_CONNECTIONS])
                           for i in range(LOAD_CONNECTIONS)))
    return time.monotonic() - started


def big_store(arguments) -> dict:
    """Load KEYS keys with a follower stopped, then time its catch-up; sizes and RSS."""
    directory = tempfile.mkdtemp(prefix="lowpaxos-bench-store-")
    cluster = LocalCluster(directory, 3, lifetime_s=CATCH_UP_S_MAX + 1200,
                           limits={"arguments_max": 2 * arguments.pairs + 1},
                           protocol=json.loads(arguments.protocol))
    result: dict = {"keys": arguments.keys, "value_bytes": VALUE_BYTES, "pairs": arguments.pairs,
                    "protocol": json.loads(arguments.protocol)}
    try:
        cluster.start()
        leader = wait_for_leader(cluster)
        follower = (leader + 1) % 3
        cluster.kill_replica(follower)
        seconds = asyncio.run(load(cluster.resp_ports[leader], arguments.keys, arguments.pairs))
        result["load_s"] = round(seconds, 1)
        result["load_keys_per_s"] = round(arguments.keys / seconds)
        target = info(cluster.resp_ports[leader])
        result["leader"] = leader
        result["follower"] = follower
        result["after_load"] = {
            i: {"peak_rss_mb": round(int(fields.get("peak_rss_kb", 0)) / 1024),
                "database_mb": round(database_bytes(cluster, i) / 1e6),
                "log_start": fields.get("log_start"), "kvs_index": fields.get("kvs_index")}
            for i, fields in ((i, info(port)) for i, port in enumerate(cluster.resp_ports))
            if i != follower}
        result["catch_up_s"], fields = catch_up_seconds(cluster, follower, target)
        result["catch_up_target"] = [target["kvs_index"], target["kvs_digest"]]
        result["follower_snapshot_index"] = fields.get("snapshot_index")
        result["transfers_installed"] = fields.get("transfers_installed")
        result["follower_drops"] = {k: v for k, v in fields.items() if k.startswith("core_drop")}
        result["after_catch_up"] = {
            i: {"peak_rss_mb": round(int(fields.get("peak_rss_kb", 0)) / 1024),
                "database_mb": round(database_bytes(cluster, i) / 1e6),
                "cpu_s": fields.get("used_cpu_seconds")}
            for i, fields in ((i, info(port)) for i, port in enumerate(cluster.resp_ports))}
    finally:
        cluster.stop()
        shutil.rmtree(directory, ignore_errors=True)
    return result


def catch_up_seconds(cluster: LocalCluster, follower: int, target: dict) -> tuple:
    """Restart ``follower`` and wait (bounded) until INFO shows the leader's kvs index
    and digest: (seconds or None, the follower's last INFO)."""
    started = time.monotonic()
    cluster.start_replica(follower)
    fields: dict = {}
    while time.monotonic() < started + CATCH_UP_S_MAX:  # bounded by time
        fields = info(cluster.resp_ports[follower], 2.0)
        if (fields.get("kvs_index"), fields.get("kvs_digest")) == \
                (target["kvs_index"], target["kvs_digest"]):
            return round(time.monotonic() - started, 1), fields
        time.sleep(0.25)
    return None, fields


def transfer_under_loss(arguments) -> list[dict]:
    """10.5 MB behind the cut, caught up through ``--loss``, per chunk size."""
    results = []
    for chunk_bytes in [int(v) for v in arguments.transfer_chunk_bytes.split(",")]:
        directory = tempfile.mkdtemp(prefix="lowpaxos-bench-transfer-")
        protocol = {"snapshot_slots": 16, "log_slots_max": 64, **json.loads(arguments.protocol),
                    "transfer_chunk_bytes": chunk_bytes}
        cluster = LocalCluster(directory, 3, proxied=True, protocol=protocol,
                               lifetime_s=CATCH_UP_S_MAX + 600)
        proxy = UdpFaultProxy(cluster.udp_ports, cluster.bind_ports,
                              lifetime_s=CATCH_UP_S_MAX + 600, seed=7).start()
        try:
            cluster.start()
            leader = wait_for_leader(cluster)
            follower = (leader + 1) % 3
            cluster.kill_replica(follower)
            asyncio.run(load(cluster.resp_ports[leader], 10_500, 10, value_bytes=1000))
            target = info(cluster.resp_ports[leader])
            proxy.set_loss(arguments.loss)
            seconds, fields = catch_up_seconds(cluster, follower, target)
            results.append({"protocol": protocol, "loss": arguments.loss,
                            "catch_up_s": seconds, "lost_datagrams": proxy.lost,
                            "transfers_installed": fields.get("transfers_installed"),
                            "follower_drops": {k: v for k, v in fields.items()
                                               if k.startswith("core_drop")}})
        finally:
            cluster.stop()
            proxy.stop()
            shutil.rmtree(directory, ignore_errors=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000,
                        help="redis-benchmark -n (per test)")
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--pairs", type=int, default=500, help="pairs per MSET of the load")
    parser.add_argument("--protocol", default="{}",
                        help="JSON of [protocol] settings for the big-store and transfer clusters")
    parser.add_argument("--loss", type=float, default=0.05,
                        help="datagram loss while the follower catches up (transfer part)")
    parser.add_argument("--transfer-chunk-bytes", default="1100,8800",
                        help="transfer_chunk_bytes values of the transfer part")
    parser.add_argument("--only", choices=("redis-benchmark", "big-store", "transfer"),
                        default=None)
    arguments = parser.parse_args()
    # Other jobs on this shared machine skew every figure: say how busy it was.
    print(f"load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
    revision = subprocess.run(["git", "-C", str(HERE), "describe", "--always", "--dirty"],
                              capture_output=True, text=True).stdout.strip()
    print(f"revision: {revision or 'unknown'}", flush=True)
    if arguments.only in (None, "redis-benchmark"):
        result = redis_benchmark(arguments)
        print("redis-benchmark", json.dumps(result), flush=True)
        for test, row in result["tests"].items():
            print(f"| {test} | {row.get('rps', 0):.0f} | {row.get('p50_latency_ms', 0):.0f} | "
                  f"{row.get('p99_latency_ms', 0):.0f} |", flush=True)
    if arguments.only in (None, "big-store"):
        result = big_store(arguments)
        print("big-store", json.dumps(result), flush=True)
    if arguments.only in (None, "transfer"):
        for result in transfer_under_loss(arguments):
            print("transfer", json.dumps(result), flush=True)
    print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
