"""`make bench-sim`: the simulator's own speed, and what LowPaxos, VR and EPaxos cost per operation.

For each protocol (a column): LowPaxos at 3 and 5 replicas, thrifty phase 2 on and
off, batching on and off; VR Revisited (disk = "sync", its runtime default) at 3 and 5
replicas, batching on and off (VR has no thrifty mode). At 32 closed-loop clients on
the LAN topology without faults, it runs the simulator
(`lowpaxos sim ... --json`, in a subprocess) and prints replica messages and
bytes per committed operation, commit latency in virtual time, and simulated
events per wall-clock second. Wall-clock figures are noisy on a shared machine:
each configuration runs REPEATS times and the median is shown.

Then the conflict table (issue 9): LowPaxos (thrifty), VR and EPaxos, all with
batching on and their defaults otherwise, at 0%, 2%, 25% and 100% conflicts
(`--conflicts`: that share of commands on one shared key, the rest on keys private to
each client, as in the EPaxos paper's evaluation, SOSP 2013 §6), 3 and 5 replicas, on
the LAN and on the five-site WAN matrix (sim/data/wan-5sites.json; replicas on the
first 3 or all 5 sites, clients spread over the replicas' sites, each at its local
replica, which forwards to the leader for LowPaxos and VR and leads its own instances
for EPaxos). Beside the columns above, EPaxos's fast-path ratio, largest strongly
connected component executed and longest commit-to-execute delay (from the summary's
protocol_metrics); every EPaxos run also passes the networkx dependency-graph check.

A benchmark, not a test: it prints figures and checks one target from issue 2
(replica_messages_per_op <= 0.25 with thrifty and batching on at 3 replicas),
exiting 1 if that target is missed or any run is not linearizable (or fails its
graph check). Wall time: about 4 minutes on the 2-core machine at a low load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

TARGET_MESSAGES_PER_OP = 0.25


# (protocol, replicas, thrifty or None where the protocol has no such mode, batching)
ROWS = [("lowpaxos", replicas, thrifty, batching)
        for replicas in (3, 5) for thrifty in (True, False) for batching in (True, False)]
ROWS += [("vr", replicas, None, batching) for replicas in (3, 5) for batching in (True, False)]

CONFLICT_PROTOCOLS = ("lowpaxos", "vr", "epaxos")
CONFLICTS = (0, 2, 25, 100)
LATENCIES = ("lan", "wan")


def on_off(flag: bool | None) -> str:
    return "-" if flag is None else "on" if flag else "off"


def run_sim(protocol: str, replicas: int, thrifty: bool | None, batching: bool | None,
            clients: int, ops: int, seed: int, extra: tuple[str, ...] = ()) -> dict:
    command = [
        sys.executable, "-m", "lowpaxos.cli", "sim", "--protocol", protocol,
        "--replicas", str(replicas), "--clients", str(clients), "--ops", str(ops),
        "--seed", str(seed), "--json", *extra,
    ]
    if batching is not None:
        command += ["--batching", "on" if batching else "off"]
    if thrifty is not None:
        command += ["--thrifty", "on" if thrifty else "off"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise SystemExit(f"simulator failed: {' '.join(command)}\n{result.stderr}{result.stdout}")
    return json.loads(result.stdout)


def median_or_none(values) -> float | None:
    values = [value for value in values if value is not None]
    return statistics.median(values) if values else None


def conflict_table(args, speeds: list) -> bool:
    """The issue-9 table; True when every run was linearizable (and graph-checked)."""
    print()
    print(f"conflicts (batching on, LowPaxos thrifty), {args.clients} clients, {args.ops} ops, "
          f"no faults, median of {args.repeats} runs; fast %, largest SCC and execute delay "
          f"for EPaxos")
    print(f"{'protocol':>8} {'replicas':>8} {'latency':>7} {'confl%':>6} {'msgs/op':>8} "
          f"{'bytes/op':>9} {'p50 ms':>8} {'p99 ms':>8} {'events/s':>9} {'lin':>4} "
          f"{'fast%':>6} {'scc':>5} {'exec ms':>8}")
    ok = True
    for latency in LATENCIES:
        for replicas in (3, 5):
            for conflicts in CONFLICTS:
                for protocol in args.protocols:
                    thrifty = True if protocol == "lowpaxos" else None
                    runs = [run_sim(protocol, replicas, thrifty, None, args.clients, args.ops,
                                    args.seed + i, ("--conflicts", str(conflicts),
                                                    "--latency", latency))
                            for i in range(args.repeats)]
                    speeds.extend(r["events_per_second"] for r in runs)
                    row = {key: median_or_none(r.get(key) for r in runs)
                           for key in ("replica_messages_per_op", "replica_bytes_per_op",
                                       "commit_latency_ms_p50", "commit_latency_ms_p99",
                                       "events_per_second", "fast_path_ratio",
                                       "largest_component", "execute_delay_max_ms")}
                    passed = all(r["linearizable"] is True and
                                 r.get("graph_check", {"ok": True}).get("ok") is True
                                 for r in runs)
                    ok = ok and passed
                    fast = row["fast_path_ratio"]
                    scc = row["largest_component"]
                    delay = row["execute_delay_max_ms"]
                    print(f"{protocol:>8} {replicas:>8} {latency:>7} {conflicts:>6} "
                          f"{row['replica_messages_per_op']:>8.3f} "
                          f"{row['replica_bytes_per_op']:>9.1f} "
                          f"{row['commit_latency_ms_p50']:>8.2f} "
                          f"{row['commit_latency_ms_p99']:>8.2f} "
                          f"{row['events_per_second']:>9.0f} {'yes' if passed else 'NO':>4} "
                          f"{'-' if fast is None else f'{100 * fast:.1f}':>6} "
                          f"{'-' if scc is None else f'{scc:.0f}':>5} "
                          f"{'-' if delay is None else f'{delay:.1f}':>8}", flush=True)
    return ok


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--ops", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--protocols", default=",".join(CONFLICT_PROTOCOLS),
                        help="the conflict table's protocols (comma-separated)")
    parser.add_argument("--no-conflicts", action="store_true",
                        help="only the first table (thrifty and batching)")
    args = parser.parse_args(argv)
    args.protocols = [name for name in args.protocols.split(",") if name]
    started = time.monotonic()
    print(f"load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)

    header = (f"{'protocol':>8} {'replicas':>8} {'thrifty':>7} {'batching':>8} {'msgs/op':>8} {'bytes/op':>9} "
              f"{'p50 ms':>7} {'p99 ms':>7} {'events/s':>9} {'lin':>4}")
    print(f"lowpaxos sim (LowPaxos and VR, disk sync), {args.clients} clients, {args.ops} ops, LAN, no faults, "
          f"median of {args.repeats} runs (seeds {args.seed}..{args.seed + args.repeats - 1})")
    print(header)
    rows = {}
    speeds = []
    for protocol, replicas, thrifty, batching in ROWS:
        runs = [run_sim(protocol, replicas, thrifty, batching, args.clients, args.ops,
                        args.seed + i) for i in range(args.repeats)]
        row = {
            key: statistics.median(r[key] for r in runs)
            for key in ("replica_messages_per_op", "replica_bytes_per_op",
                        "commit_latency_ms_p50", "commit_latency_ms_p99", "events_per_second")
        }
        row["linearizable"] = all(r["linearizable"] for r in runs)
        rows[(protocol, replicas, thrifty, batching)] = row
        speeds.extend(r["events_per_second"] for r in runs)
        print(f"{protocol:>8} {replicas:>8} {on_off(thrifty):>7} {on_off(batching):>8} "
              f"{row['replica_messages_per_op']:>8.3f} "
              f"{row['replica_bytes_per_op']:>9.1f} {row['commit_latency_ms_p50']:>7.2f} "
              f"{row['commit_latency_ms_p99']:>7.2f} {row['events_per_second']:>9.0f} "
              f"{'yes' if row['linearizable'] else 'NO':>4}", flush=True)
    base = rows[("lowpaxos", 3, False, False)]["replica_messages_per_op"]
    best = rows[("lowpaxos", 3, True, True)]["replica_messages_per_op"]
    print(f"simulator speed: median {statistics.median(speeds):.0f} simulated events per "
          f"wall-clock second over {len(speeds)} runs")
    for replicas in (3, 5):
        for batching in (True, False):
            vr = rows[("vr", replicas, None, batching)]
            lp = rows[("lowpaxos", replicas, True, batching)]
            print(f"{replicas} replicas, batching {on_off(batching)}: VR sends "
                  f"{vr['replica_messages_per_op']:.3f} messages/op and "
                  f"{vr['replica_bytes_per_op']:.1f} bytes/op, LowPaxos (thrifty) "
                  f"{lp['replica_messages_per_op']:.3f} and {lp['replica_bytes_per_op']:.1f}")
    print(f"3 replicas: LowPaxos thrifty+batching send {best:.3f} messages/op, "
          f"{base / best:.1f}x fewer than neither ({base:.3f})")
    ok = best <= TARGET_MESSAGES_PER_OP and all(r["linearizable"] for r in rows.values())
    print(f"target replica_messages_per_op <= {TARGET_MESSAGES_PER_OP} at 3 replicas with both "
          f"on: {'met' if ok else 'MISSED'}")
    if not args.no_conflicts:
        checked = conflict_table(args, speeds)
        print(f"every conflict-table run linearizable and graph-checked: "
              f"{'yes' if checked else 'NO'}")
        ok = ok and checked
    print(f"simulator speed over all {len(speeds)} runs: median "
          f"{statistics.median(speeds):.0f} events/s; wall time "
          f"{time.monotonic() - started:.0f} s; load average after: "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
