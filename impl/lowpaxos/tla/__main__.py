"""python -m lowpaxos.tla check [--deep] [--only NAME] [--workers N]

Runs every configuration in ``lowpaxos.tla.checks.CHECKS`` (the deep one too
with ``--deep``; only the deep one with ``--deep --only LowPaxos_deep``) and
prints one line for each: name, distinct states, depth, seconds, result.
Exits 1 if any result is not the expected one, 2 if TLC cannot run at all.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lowpaxos.tla.checks import CHECKS, SPEC_DIR
from lowpaxos.tla.tlc import TlcError


def _figure(value: int | None) -> str:
    return "-" if value is None else str(value)


def check(deep: bool, only: list[str], workers: int, spec_dir: Path) -> int:
    selected = [c for c in CHECKS if (deep or not c.deep) and (not only or c.name in only)]
    if not selected:
        print("no configuration selected", file=sys.stderr)
        return 1
    print(f"{'configuration':<44} {'distinct':>10} {'depth':>6} {'seconds':>8}  result", flush=True)
    failures = 0
    for spec_check in selected:  # bounded by CHECKS
        try:
            result = spec_check.run(spec_dir=spec_dir, workers=workers)
        except TlcError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        good, verdict = spec_check.verdict(result)
        failures += 0 if good else 1
        print(
            f"{spec_check.name:<44} {_figure(result.distinct_states):>10} {_figure(result.depth):>6}"
            f" {result.seconds:>8.1f}  {verdict}",
            flush=True,
        )
        if not good:
            for line in result.errors[:5]:
                print(f"    {line}", file=sys.stderr)
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lowpaxos.tla")
    commands = parser.add_subparsers(dest="command", required=True)
    check_parser = commands.add_parser("check", help="model-check every configuration in spec/")
    check_parser.add_argument("--deep", action="store_true", help="also run the deep configuration")
    check_parser.add_argument("--only", action="append", default=[], metavar="NAME", help="run only NAME")
    check_parser.add_argument("--workers", type=int, default=2, help="TLC worker threads (default 2)")
    check_parser.add_argument("--spec-dir", type=Path, default=SPEC_DIR, help="the spec/ folder")
    arguments = parser.parse_args(argv)
    if arguments.workers < 1:
        parser.error("--workers must be at least 1")
    return check(arguments.deep, arguments.only, arguments.workers, arguments.spec_dir)


if __name__ == "__main__":
    sys.exit(main())
