"""Spec replay against the hand-written mutants of tests/mutants/ (docs/spec-replay.md).

  python -m lowpaxos.specreplay.mutants [--traces N] [--depth D] [--seed S] [NAME ...]
  python -m lowpaxos.specreplay.mutants --from FILE [NAME ...]   # behaviours saved before

Generates the behaviours once with TLC (they depend on the spec, not on the core),
then, for each mutant, applies its patch to a temporary copy of the tree (as
tests/mutants/run.py does) and replays the behaviours there with the copy first
on PYTHONPATH, stopping at the first divergence. Prints one line per mutant:
found or not, after how many distinct behaviours and seconds of replay, and the
divergence's reason. Exit status 0 when every mutant named was found.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
MUTANT_DIR = ROOT / "tests" / "mutants"


def _copy_tree(target: Path) -> None:
    sys.path.insert(0, str(MUTANT_DIR))
    try:
        from run import copy_tree  # tests/mutants/run.py: the files git knows, copied
    finally:
        sys.path.pop(0)
    copy_tree(target)


def run_mutant(patch: Path, behaviours: Path, timeout_s: float) -> tuple[str, str]:
    with tempfile.TemporaryDirectory(prefix=f"specreplay-mutant-{patch.stem}-") as scratch:
        tree = Path(scratch)
        _copy_tree(tree)
        applied = subprocess.run(["patch", "-p1", "--quiet", "-i", str(patch)], cwd=tree,
                                 capture_output=True, text=True)
        if applied.returncode != 0:
            return "broken", f"patch does not apply: {applied.stdout}{applied.stderr}".strip()
        env = dict(os.environ, PYTHONPATH=f"{tree / 'impl'}{os.pathsep}{tree}")
        try:
            result = subprocess.run(
                [sys.executable, "-m", "lowpaxos.cli", "spec-replay", "run", "--from",
                 str(behaviours), "--stop-after", "1", "--save-dir", str(tree / "failures")],
                cwd=tree, env=env, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return "timeout", f"no verdict in {timeout_s:.0f} s"
        output = result.stdout + result.stderr
        first = re.search(r"first divergence at distinct behaviour (\d+), after ([\d.]+) s", output)
        reason = re.search(r"spec replay diverged at step [^\n]*", output)
        replayed = re.search(r"(\d+) distinct behaviours replayed", output)
        if result.returncode == 1 and first:
            return "found", (f"at behaviour {first.group(1)} of {replayed.group(1) if replayed else '?'}"
                             f", {first.group(2)} s of replay: "
                             f"{reason.group(0)[:300] if reason else ''}")
        if result.returncode == 0:
            return "missed", f"{replayed.group(1) if replayed else '?'} behaviours, no divergence"
        return "error", output[-600:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=6500)
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--from", dest="from_file", type=Path, default=None,
                        help="behaviours saved by spec-replay run --save-behaviours (no TLC)")
    parser.add_argument("names", nargs="*")
    args = parser.parse_args(argv)
    patches = sorted(MUTANT_DIR.glob("*.patch"))
    if args.names:
        patches = [p for p in patches if p.stem in args.names]
        missing = set(args.names) - {p.stem for p in patches}
        if missing:
            print(f"error: no mutant {', '.join(sorted(missing))}", file=sys.stderr)
            return 2
    from lowpaxos.specreplay.generate import GenerateError, generate
    from lowpaxos.specreplay.models import MODELS
    from lowpaxos.specreplay.replay import save_all

    with tempfile.TemporaryDirectory(prefix="specreplay-behaviours-") as scratch:
        path = Path(scratch) / "behaviours.jsonl"
        if args.from_file is not None:
            path = args.from_file.resolve()
        else:
            model = MODELS["lowpaxos"]()
            try:
                behaviours, tlc_seconds = generate(model.model, args.traces, args.depth, args.seed)
            except GenerateError as error:
                print(f"error: {error}", file=sys.stderr)
                return 2
            print(f"TLC: {len(behaviours)} behaviours from {args.traces} walks in "
                  f"{tlc_seconds:.1f} s", flush=True)
            save_all(behaviours, path)
        missed = 0
        for patch in patches:
            started = time.monotonic()
            verdict, detail = run_mutant(patch, path, args.timeout)
            missed += verdict != "found"
            print(f"{patch.stem:40s} {verdict:8s} {time.monotonic() - started:6.1f} s  {detail}",
                  flush=True)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
