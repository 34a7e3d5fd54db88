"""One PySyncObj node for bench/bench_runtime.py: a replicated dict with its file journal.

Node 0 also runs the closed-loop load (``--load-seconds``): ``--inflight`` chains,
each issuing the next ``set`` from the previous one's callback, and prints one
JSON line with the counts and latencies measured after ``--warmup-seconds``.
Every node stops by itself after ``--lifetime-seconds``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import threading
import time


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--id", type=int, required=True)
    parser.add_argument("--ports", required=True, help="comma-separated TCP ports, one per node")
    parser.add_argument("--dir", required=True)
    parser.add_argument("--load-seconds", type=float, default=0.0)
    parser.add_argument("--warmup-seconds", type=float, default=1.0)
    parser.add_argument("--inflight", type=int, default=64)
    parser.add_argument("--value-bytes", type=int, default=16)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--lifetime-seconds", type=float, default=120.0)
    arguments = parser.parse_args()

    from pysyncobj import SyncObj, SyncObjConf
    from pysyncobj.batteries import ReplDict

    ports = [int(p) for p in arguments.ports.split(",")]
    me = f"127.0.0.1:{ports[arguments.id]}"
    partners = [f"127.0.0.1:{p}" for i, p in enumerate(ports) if i != arguments.id]
    store = ReplDict()
    conf = SyncObjConf(journalFile=os.path.join(arguments.dir, f"journal-{arguments.id}.bin"),
                       fullDumpFile=os.path.join(arguments.dir, f"dump-{arguments.id}.bin"))
    node = SyncObj(me, partners, consumers=[store], conf=conf)
    started = time.monotonic()
    if arguments.load_seconds <= 0:
        while time.monotonic() - started < arguments.lifetime_seconds:
            time.sleep(0.5)
        return 0

    deadline = started + 30
    while node._getLeader() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    value = b"v" * arguments.value_bytes
    lock = threading.Lock()
    measure_from = time.monotonic() + arguments.warmup_seconds
    measure_to = measure_from + arguments.load_seconds
    latencies: list[float] = []
    errors = [0]
    done = threading.Event()
    active = [arguments.inflight]

    def issue():
        sent = time.monotonic()
        key = f"k{random.randrange(arguments.keys)}"

        def finished(result, error):
            now = time.monotonic()
            with lock:
                if error != 0:  # pysyncobj FAIL_REASON.SUCCESS == 0
                    errors[0] += 1
                elif measure_from <= sent and now <= measure_to:
                    latencies.append(now - sent)
                if now >= measure_to:
                    active[0] -= 1
                    if active[0] == 0:
                        done.set()
                    return
            issue()

        store.set(key, value, callback=finished)

    for _ in range(arguments.inflight):
        issue()
    done.wait(timeout=arguments.warmup_seconds + arguments.load_seconds + 30)
    latencies.sort()
    count = len(latencies)
    print(json.dumps({
        "ops": count,
        "seconds": arguments.load_seconds,
        "ops_per_s": count / arguments.load_seconds,
        "p50_ms": 1000 * latencies[count // 2] if count else None,
        "p99_ms": 1000 * latencies[min(count - 1, int(count * 0.99))] if count else None,
        "errors": errors[0],
        "generator_was_leader": node._isLeader(),
    }), flush=True)
    node.destroy()
    return 0


if __name__ == "__main__":
    sys.exit(main())
