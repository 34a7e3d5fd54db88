"""`make bench-sim`: the simulator's own speed, and what LowPaxos costs per operation.

For 3 and 5 replicas, thrifty phase 2 on and off, batching on and off, at 32
closed-loop clients on the LAN topology without faults, it runs the simulator
(`lowpaxos sim ... --json`, in this process) and prints replica messages and
bytes per committed operation, commit latency in virtual time, and simulated
events per wall-clock second. Wall-clock figures are noisy on a shared machine:
each configuration runs REPEATS times and the median is shown.

A benchmark, not a test: it prints figures and checks one target from issue 2
(replica_messages_per_op <= 0.25 with thrifty and batching on at 3 replicas),
exiting 1 if that target is missed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

TARGET_MESSAGES_PER_OP = 0.25


def run_sim(replicas: int, thrifty: bool, batching: bool, clients: int, ops: int,
            seed: int) -> dict:
    command = [
        sys.executable, "-m", "lowpaxos.cli", "sim", "--protocol", "lowpaxos",
        "--replicas", str(replicas), "--clients", str(clients), "--ops", str(ops),
        "--seed", str(seed), "--thrifty", "on" if thrifty else "off",
        "--batching", "on" if batching else "off", "--json",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise SystemExit(f"simulator failed: {' '.join(command)}\n{result.stderr}{result.stdout}")
    return json.loads(result.stdout)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--ops", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    header = (f"{'replicas':>8} {'thrifty':>7} {'batching':>8} {'msgs/op':>8} {'bytes/op':>9} "
              f"{'p50 ms':>7} {'p99 ms':>7} {'events/s':>9} {'lin':>4}")
    print(f"lowpaxos sim, {args.clients} clients, {args.ops} ops, LAN, no faults, "
          f"median of {args.repeats} runs (seeds {args.seed}..{args.seed + args.repeats - 1})")
    print(header)
    rows = {}
    speeds = []
    for replicas in (3, 5):
        for thrifty in (True, False):
            for batching in (True, False):
                runs = [run_sim(replicas, thrifty, batching, args.clients, args.ops, args.seed + i)
                        for i in range(args.repeats)]
                row = {
                    key: statistics.median(r[key] for r in runs)
                    for key in ("replica_messages_per_op", "replica_bytes_per_op",
                                "commit_latency_ms_p50", "commit_latency_ms_p99",
                                "events_per_second")
                }
                row["linearizable"] = all(r["linearizable"] for r in runs)
                rows[(replicas, thrifty, batching)] = row
                speeds.extend(r["events_per_second"] for r in runs)
                print(f"{replicas:>8} {'on' if thrifty else 'off':>7} "
                      f"{'on' if batching else 'off':>8} {row['replica_messages_per_op']:>8.3f} "
                      f"{row['replica_bytes_per_op']:>9.1f} {row['commit_latency_ms_p50']:>7.2f} "
                      f"{row['commit_latency_ms_p99']:>7.2f} {row['events_per_second']:>9.0f} "
                      f"{'yes' if row['linearizable'] else 'NO':>4}")
    base = rows[(3, False, False)]["replica_messages_per_op"]
    best = rows[(3, True, True)]["replica_messages_per_op"]
    print(f"simulator speed: median {statistics.median(speeds):.0f} simulated events per "
          f"wall-clock second over {len(speeds)} runs")
    print(f"3 replicas: thrifty+batching send {best:.3f} messages/op, "
          f"{base / best:.1f}x fewer than neither ({base:.3f})")
    ok = best <= TARGET_MESSAGES_PER_OP and all(r["linearizable"] for r in rows.values())
    print(f"target replica_messages_per_op <= {TARGET_MESSAGES_PER_OP} at 3 replicas with both "
          f"on: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
