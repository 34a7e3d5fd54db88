"""How the linearizability checker copes with high-concurrency single-key histories.

Generates histories from seeded simulator runs of a protocol (16, 32 and 64 clients in
turn, one key, loss, duplication, reordering, crashes and a partition in the safety
phase, then the liveness phase until every request is answered), checks each with a
time limit, and prints decided/undecided counts and the median and maximum check
seconds. Exits 1 if any history is undecided or not linearizable.

    .venv/bin/python bench/bench_linearizability.py                  # 30 histories, 60 s limit
    .venv/bin/python bench/bench_linearizability.py --histories 12 --limit-s 20
    .venv/bin/python bench/bench_linearizability.py --stamps us      # stamped in virtual µs
    .venv/bin/python bench/bench_linearizability.py --checker OLD.py # another checker module

``--stamps us`` rebuilds each history from virtual microseconds, the way the simulator
recorded it before it stamped with a StrictClock (a client's next call then ties with
its previous reply). ``--checker`` loads ``check_history`` and ``Operation`` from a
file, e.g. an older revision (``git show REV:impl/lowpaxos/check/linearizability.py``),
to measure before and after on the same histories.
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "impl"))

from lowpaxos.protocols.registry import PROTOCOLS  # noqa: E402
from lowpaxos.sim import FaultPlan, SimOptions, Simulator  # noqa: E402

CLIENTS = (16, 32, 64)
TICK_US = 1_000
SAFETY_US = 300_000


def load_checker(path: str | None):
    if path is None:
        from lowpaxos.check import linearizability

        return linearizability
    spec = importlib.util.spec_from_file_location("checker_under_test", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"bench_linearizability: cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["checker_under_test"] = module
    spec.loader.exec_module(module)
    return module


def simulate(protocol: str, seed: int, clients: int, ops: int) -> Simulator:
    """One run: faults in the safety phase, then every request answered on a healed
    network (bounded in virtual and wall time)."""
    spec = PROTOCOLS[protocol]
    options = SimOptions(replicas=3, clients=clients, ops=ops, seed=seed, keys=1,
                         tick_us=TICK_US)
    plan = FaultPlan.random(random.Random(seed), replicas=3, window_us=SAFETY_US,
                            tick_us=TICK_US, crashes=2, partitions=1, loss=0.05, dup=0.02,
                            reorder=0.05)
    sim = Simulator(spec, spec.make_config(3), options, plan)
    sim.run_until(SAFETY_US)
    sim.end_faults()
    sim.run_until_quiet(sim.now_us + 60_000_000, wall_s_max=120)
    return sim


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--protocol", default="lowpaxos", choices=sorted(PROTOCOLS))
    parser.add_argument("--histories", type=int, default=30)
    parser.add_argument("--ops", type=int, default=600, help="operations per history")
    parser.add_argument("--limit-s", type=float, default=60.0, help="checker time limit")
    parser.add_argument("--stamps", choices=("stamp", "us"), default="stamp")
    parser.add_argument("--checker", default=None, help="a checker module file")
    args = parser.parse_args(argv)
    if args.histories < 1 or args.ops < 1 or args.limit_s <= 0:
        parser.error("--histories, --ops and --limit-s must be positive")
    checker = load_checker(args.checker)
    revision = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True).stdout.strip() or "?"
    print(f"bench_linearizability: revision {revision}, checker "
          f"{args.checker or 'lowpaxos.check'}, stamps {args.stamps}, {args.histories} "
          f"histories of {args.ops} operations on one key, limit {args.limit_s} s")
    seconds: list[float] = []
    verdicts = {True: 0, False: 0, None: 0}
    for seed in range(1, args.histories + 1):
        clients = CLIENTS[(seed - 1) % len(CLIENTS)]
        sim = simulate(args.protocol, seed, clients, args.ops)
        history = []
        for record in sim.history:
            invoke, response = record.invoke_stamp, record.response_stamp
            if args.stamps == "us":
                invoke, response = record.invoke_us, record.response_us
            history.append(checker.Operation(record.client_id, record.op, record.key,
                                             record.value, record.expected, invoke, response,
                                             record.result))
        unanswered = sum(o.response is None for o in history)
        started = time.monotonic()
        result = checker.check_history(history, time_limit_s=args.limit_s)
        elapsed = time.monotonic() - started
        seconds.append(elapsed)
        verdicts[result.linearizable] += 1
        print(f"  seed {seed:3d}  {clients:2d} clients  {len(history)} ops "
              f"({unanswered} unanswered)  linearizable={result.linearizable}  "
              f"{elapsed:.2f} s", flush=True)
    decided = verdicts[True] + verdicts[False]
    print(f"decided {decided} of {args.histories} (linearizable {verdicts[True]}, "
          f"not {verdicts[False]}), undecided {verdicts[None]}; check seconds median "
          f"{statistics.median(seconds):.2f}, max {max(seconds):.2f}")
    return 0 if verdicts[True] == args.histories else 1


if __name__ == "__main__":
    sys.exit(main())
