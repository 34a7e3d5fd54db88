"""`make bench-sim`: the simulator's own speed, and what LowPaxos and VR cost per operation.

For each protocol (a column): LowPaxos at 3 and 5 replicas, thrifty phase 2 on and
off, batching on and off; VR Revisited (disk = "sync", its runtime default) at 3 and 5
replicas, batching on and off (VR has no thrifty mode). At 32 closed-loop clients on
the LAN topology without faults, it runs the simulator
(`lowpaxos sim ... --json`, in a subprocess) and prints replica messages and
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


# (protocol, replicas, thrifty or None where the protocol has no such mode, batching)
ROWS = [("lowpaxos", replicas, thrifty, batching)
        for replicas in (3, 5) for thrifty in (True, False) for batching in (True, False)]
ROWS += [("vr", replicas, None, batching) for replicas in (3, 5) for batching in (True, False)]


def on_off(flag: bool | None) -> str:
    return "-" if flag is None else "on" if flag else "off"


def run_sim(protocol: str, replicas: int, thrifty: bool | None, batching: bool, clients: int,
            ops: int, seed: int) -> dict:
    command = [
        sys.executable, "-m", "lowpaxos.cli", "sim", "--protocol", protocol,
        "--replicas", str(replicas), "--clients", str(clients), "--ops", str(ops),
        "--seed", str(seed), "--batching", "on" if batching else "off", "--json",
    ]
    if thrifty is not None:
        command += ["--thrifty", "on" if thrifty else "off"]
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
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
