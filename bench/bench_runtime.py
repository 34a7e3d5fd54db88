"""Closed-loop benchmark: LowPaxos and VR Revisited (3 replica processes of our runtime,
RESP) against PySyncObj (3 processes).

    .venv/bin/python bench/bench_runtime.py --seconds 10 --inflight 64,256 --profile-seconds 10
    .venv/bin/python bench/bench_runtime.py --protocols lowpaxos,vr --only lowpaxos   # no PySyncObj

Every side: 3 processes on 127.0.0.1, ``--inflight`` operations in flight,
16-byte values, SET only (all replicate every write; PySyncObj reads are local,
so reads would not compare). Our runtime, for each protocol of ``--protocols``
(registry names, default lowpaxos,vr,epaxos; VR with disk = "sync", its runtime default):
the asyncio client with one connection per in-flight operation, all to the leader
(VR's primary), or for EPaxos, which has no leader, spread evenly over the three
replicas, each serving its own clients (an EPaxos deployment's clients use their
local replica); every batch of persist records is fsynced (SQLite WAL,
synchronous=FULL) before anything of it leaves a replica.
PySyncObj: ReplDict with its file journal on, the load generated inside node 0.
Prints committed ops/s, p50 and p99 latency, each process's CPU seconds and
peak RSS, and the ratio, for each ``--inflight`` value (a comma-separated list), both
systems measured back to back. The bench process's own CPU seconds are printed too: it
runs every LowPaxos client, so a client near one core would cap the figures.

``--profile-seconds S``: afterwards one more LowPaxos run at the largest in-flight value,
with py-spy sampling the leader for S seconds of the measured part (bench/pyspy_profile.py);
its figures are not the ones reported above (sampling costs CPU on a 2-core machine).
Every process started here is stopped here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "impl"))

import pyspy_profile  # noqa: E402
from lowpaxos.protocols.registry import PROTOCOLS  # noqa: E402
from lowpaxos.runtime.client import LowPaxosClient  # noqa: E402
from lowpaxos.runtime.launcher import LocalCluster, free_ports  # noqa: E402
from lowpaxos.runtime.replica import event_loop_factory  # noqa: E402


def process_usage(pid: int) -> dict:
    """CPU seconds (user + system) and peak RSS of a live process, from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu_s = (int(fields[11]) + int(fields[12])) / ticks
    peak_kb = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            peak_kb = int(line.split()[1])
    return {"cpu_s": round(cpu_s, 2), "peak_rss_mb": round(peak_kb / 1024, 1)}


def percentile(sorted_values: list[float], fraction: float) -> float | None:
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * fraction))]


async def lowpaxos_load(ports: list[int], seconds: float, warmup_s: float, inflight: int,
                        value_bytes: int, keys: int, on_measure_start=None) -> dict:
    """The closed loop; ``on_measure_start(leader_port)`` is called when measuring begins
    (``leader_port`` None for a leaderless protocol)."""
    addresses = [("127.0.0.1", port) for port in ports]
    # Find the leader (bounded): clients connect to it so no hop is spent forwarding.
    # A leaderless protocol (EPaxos: every replica's INFO role is "replica", and each
    # serves its own clients) has none: the connections are spread over every replica.
    leader_port = ports[0]
    leaderless = False
    async with LowPaxosClient(addresses[:1], connections=1) as probe:
        for _ in range(100):
            roles = []
            for port in ports:
                async with LowPaxosClient([("127.0.0.1", port)], connections=1) as one:
                    roles.append((await one.info()).get("role"))
            if "leader" in roles:
                leader_port = ports[roles.index("leader")]
                break
            if all(role == "replica" for role in roles):
                leaderless, leader_port = True, None
                break
            await probe.set("warmup", b"x")
            await asyncio.sleep(0.1)
    value = b"v" * value_bytes
    loop = asyncio.get_running_loop()
    measure_from = loop.time() + warmup_s
    measure_to = measure_from + seconds
    if on_measure_start is not None:
        loop.call_at(measure_from, on_measure_start, leader_port)
    latencies: list[float] = []
    errors = 0

    async def chain(client: LowPaxosClient) -> None:
        nonlocal errors
        while loop.time() < measure_to:
            sent = loop.time()
            try:
                await client.set(f"k{random.randrange(keys)}", value)
            except Exception:  # noqa: BLE001 - counted and reported
                errors += 1
                continue
            now = loop.time()
            if sent >= measure_from and now <= measure_to:
                latencies.append(now - sent)

    if leaderless:
        # One client per replica, the in-flight operations split evenly among them.
        shares = [inflight // len(ports) + (i < inflight % len(ports)) for i in range(len(ports))]
        clients = [LowPaxosClient([address], connections=max(1, share))
                   for address, share in zip(addresses, shares)]
        try:
            for client in clients:
                await client.__aenter__()
            await asyncio.gather(*(chain(client) for client, share in zip(clients, shares)
                                   for _ in range(share)))
        finally:
            for client in clients:
                await client.close()
    else:
        async with LowPaxosClient([("127.0.0.1", leader_port)], connections=inflight) as client:
            await asyncio.gather(*(chain(client) for _ in range(inflight)))
    latencies.sort()
    return {
        "ops": len(latencies),
        "ops_per_s": len(latencies) / seconds,
        "p50_ms": 1000 * percentile(latencies, 0.50) if latencies else None,
        "p99_ms": 1000 * percentile(latencies, 0.99) if latencies else None,
        "errors": errors,
        "leader_port": leader_port,
    }


def protocol_info(ports: list[int]) -> dict:
    """The protocol's own INFO counters (names with the protocol's prefix, e.g. EPaxos's
    epaxos_fast_commits), summed over the replicas (maxima maxed), after the run."""
    import redis

    totals: dict = {}
    for port in ports:
        try:
            fields = redis.Redis(port=port, socket_timeout=5, protocol=2).info()
        except (redis.RedisError, OSError):
            continue
        protocol = fields.get("protocol")
        for name, value in fields.items():
            if not (isinstance(protocol, str) and name.startswith(protocol + "_")) or \
                    not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            if "max" in name or "largest" in name:
                totals[name] = max(totals.get(name, value), value)
            else:
                totals[name] = totals.get(name, 0) + value
    fast = totals.get("epaxos_fast_commits")
    if fast is not None:
        committed = (fast + totals.get("epaxos_slow_commits", 0)
                     + totals.get("epaxos_recovered_commits", 0))
        totals["fast_path_ratio"] = round(fast / committed, 4) if committed else None
    return totals


def protocol_settings(protocol: str, settings: dict) -> dict:
    """The ``--protocol`` settings that ``protocol``'s config has (each must fit one)."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(PROTOCOLS[protocol].make_config(3))}
    return {name: value for name, value in settings.items() if name in names}


def run_lowpaxos(arguments, inflight: int, profile_seconds: float = 0.0,
                 protocol: str = "lowpaxos") -> dict:
    """One run of our runtime with ``protocol`` (a registry name)."""
    with tempfile.TemporaryDirectory(prefix=f"{protocol}-bench-") as directory:
        cluster = LocalCluster(directory, 3, tick_ms=arguments.tick_ms,
                               protocol=protocol_settings(protocol, arguments.protocol) or None,
                               protocol_name=protocol,
                               lifetime_s=arguments.seconds + 120)
        spy: dict = {}

        def start_profile(leader_port: int | None) -> None:
            # Leaderless: replica 0, which serves its share of the clients.
            leader = 0 if leader_port is None else cluster.resp_ports.index(leader_port)
            spy["leader"] = leader
            spy["process"] = pyspy_profile.record(cluster.pids()[leader], profile_seconds,
                                                  Path(directory) / "leader.spy")

        try:
            cluster.start()
            cpu_before = resource.getrusage(resource.RUSAGE_SELF)
            with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
                result = runner.run(lowpaxos_load(
                    cluster.resp_ports, arguments.seconds, arguments.warmup_seconds,
                    inflight, arguments.value_bytes, arguments.keys,
                    start_profile if profile_seconds > 0 else None))
            cpu_after = resource.getrusage(resource.RUSAGE_SELF)
            result["client_cpu_s"] = round(cpu_after.ru_utime + cpu_after.ru_stime
                                           - cpu_before.ru_utime - cpu_before.ru_stime, 1)
            leader_port = result.pop("leader_port")
            result["leader"] = None if leader_port is None else cluster.resp_ports.index(leader_port)
            result["protocol_info"] = protocol_info(cluster.resp_ports)
            result["replicas"] = {i: process_usage(pid) for i, pid in cluster.pids().items()}
            process = spy.get("process")
            if profile_seconds > 0 and process is None:
                result["profile"] = "py-spy not installed: no profile (make bench installs it)"
            elif process is not None:
                _, error = process.communicate(timeout=profile_seconds + 60)
                path = Path(directory) / "leader.spy"
                result["profile"] = (pyspy_profile.summary(path, profile_seconds)
                                     if path.exists() else f"py-spy failed: {error[-500:]}")
        finally:
            cluster.stop()
    return result


def run_pysyncobj(arguments, inflight: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="pysyncobj-bench-") as directory:
        ports = free_ports(3, socket.SOCK_STREAM)
        script = str(HERE / "pysyncobj_node.py")
        common = ["--ports", ",".join(map(str, ports)), "--dir", directory,
                  "--lifetime-seconds", str(arguments.seconds + 90)]
        processes = []
        try:
            for node in (1, 2):
                processes.append(subprocess.Popen(
                    [sys.executable, script, "--id", str(node), *common],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
            generator = subprocess.Popen(
                [sys.executable, script, "--id", "0", *common,
                 "--load-seconds", str(arguments.seconds),
                 "--warmup-seconds", str(arguments.warmup_seconds),
                 "--inflight", str(inflight), "--value-bytes", str(arguments.value_bytes),
                 "--keys", str(arguments.keys)],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True, text=True)
            processes.insert(0, generator)
            # Sample usage just before the generator finishes: poll until it prints.
            usage = {}
            deadline = time.monotonic() + arguments.seconds + 60
            while generator.poll() is None and time.monotonic() < deadline:
                for index, process in enumerate(processes):
                    if process.poll() is None:
                        try:
                            usage[index] = process_usage(process.pid)
                        except (OSError, IndexError):
                            pass
                time.sleep(0.2)
            output = generator.communicate(timeout=30)[0]
            result = json.loads(output.strip().splitlines()[-1])
            result["replicas"] = usage
        finally:
            for process in processes:
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
    return result


def parse_setting(text: str) -> tuple[str, object]:
    """NAME=VALUE for the cluster file's [protocol] table: integers and true/false."""
    name, _, value = text.partition("=")
    if value in ("true", "false"):
        return name, value == "true"
    return name, int(value)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup-seconds", type=float, default=2.0)
    parser.add_argument("--inflight", default="64",
                        help="operations in flight; a comma-separated list runs each")
    parser.add_argument("--value-bytes", type=int, default=16)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--tick-ms", type=int, default=10)
    parser.add_argument("--protocols", default="lowpaxos,vr,epaxos",
                        help=f"our runtime's protocols to run, comma-separated "
                             f"({', '.join(PROTOCOLS)}; default lowpaxos,vr,epaxos)")
    parser.add_argument("--only", choices=("lowpaxos", "pysyncobj"), default=None,
                        help="lowpaxos: our runtime only (every --protocols); pysyncobj: it only")
    parser.add_argument("--profile-seconds", type=float, default=0.0,
                        help="then profile the leader with py-spy in one more LowPaxos run")
    parser.add_argument("--protocol", action="append", default=[], metavar="NAME=VALUE",
                        help="a config field for the cluster file's [protocol] (repeatable), "
                             "given to each protocol whose config has it")
    arguments = parser.parse_args()
    arguments.protocol = dict(parse_setting(text) for text in arguments.protocol)
    protocols = [name for name in arguments.protocols.split(",") if name]
    for name in protocols:
        if name not in PROTOCOLS:
            parser.error(f"unknown protocol {name!r}; known: {', '.join(PROTOCOLS)}")
    for name in arguments.protocol:
        if not any(name in protocol_settings(p, arguments.protocol) for p in protocols):
            parser.error(f"--protocol {name}=...: no config of {', '.join(protocols)} has it")
    # Other jobs on this shared machine skew every figure: say how busy it was.
    print(f"load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
    revision = subprocess.run(["git", "-C", str(HERE), "describe", "--always", "--dirty"],
                              capture_output=True, text=True).stdout.strip()
    print(f"revision: {revision or 'unknown'}", flush=True)
    inflights = [int(value) for value in arguments.inflight.split(",")]
    rows = []
    for inflight in inflights:
        results = {}
        if arguments.only in (None, "lowpaxos"):
            for protocol in protocols:
                results[protocol] = run_lowpaxos(arguments, inflight, protocol=protocol)
                print(f"{protocol:9} inflight={inflight}", json.dumps(results[protocol]),
                      flush=True)
        if arguments.only in (None, "pysyncobj"):
            results["pysyncobj"] = run_pysyncobj(arguments, inflight)
            print(f"pysyncobj inflight={inflight}", json.dumps(results["pysyncobj"]), flush=True)
        for system, result in results.items():
            cpu = " / ".join(f"{usage['cpu_s']}" + (" (leader)" if result.get("leader") == i
                                                    else "")
                             for i, usage in sorted(result["replicas"].items()))
            rss = " / ".join(f"{usage['peak_rss_mb']:.0f}"
                             for _, usage in sorted(result["replicas"].items()))
            rows.append(f"| {inflight} | {system} | {result['ops_per_s']:.0f} | "
                        f"{result['p50_ms']:.0f} | {result['p99_ms']:.0f} | {cpu} | {rss} |")
        other = results.get("pysyncobj")
        for protocol in protocols:
            low = results.get(protocol)
            if low is None or other is None:
                continue
            ratio = low["ops_per_s"] / other["ops_per_s"] if other["ops_per_s"] else float("inf")
            print(f"inflight={inflight}: ratio ops/s {protocol}/pysyncobj = {ratio:.2f}; p99 "
                  f"{protocol} {low['p99_ms']:.1f} ms vs pysyncobj {other['p99_ms']:.1f} ms; "
                  f"bench client CPU {low['client_cpu_s']} s", flush=True)
    print("| in flight | system | ops/s | p50 ms | p99 ms | CPU s per replica | peak RSS MB |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows), flush=True)
    if arguments.profile_seconds > 0 and arguments.only in (None, "lowpaxos"):
        profiled = run_lowpaxos(arguments, max(inflights), arguments.profile_seconds)
        print(f"profiled run (py-spy on leader {profiled['leader']}, {arguments.profile_seconds:g} s, "
              f"inflight={max(inflights)}): {profiled['ops_per_s']:.0f} ops/s, p99 "
              f"{profiled['p99_ms']:.0f} ms", flush=True)
        print(profiled["profile"], flush=True)
    print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
