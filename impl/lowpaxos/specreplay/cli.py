"""``lowpaxos spec-replay``: generate behaviours of a protocol's spec with TLC and
replay them against real cores (docs/spec-replay.md).

  lowpaxos spec-replay run [--protocol lowpaxos] [--traces N] [--batches K] [--depth D]
                           [--seed S] [--mix all|NAME] [--min-behaviours M] [--save-dir DIR]
                           [--save-behaviours FILE | --from FILE] [--stop-after N]
  lowpaxos spec-replay replay FILE [--protocol lowpaxos]

Exit status: 0 every behaviour replayed (and at least M of them, and, with the
full mix, every action of the spec replayed but the listed exceptions), 1 a
divergence (printed, and saved under --save-dir) or a coverage gap, 2 bad
input or TLC could not run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lowpaxos.tla.checks import SPEC_DIR


def add_arguments(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="replay_command", required=True)
    run_parser = commands.add_parser("run", help="generate behaviours with TLC and replay them")
    run_parser.add_argument("--protocol", default="lowpaxos")
    run_parser.add_argument("--traces", type=int, default=6000,
                            help="TLC random walks per batch (default 6000)")
    run_parser.add_argument("--batches", type=int, default=1,
                            help="TLC runs of --traces walks each, seeds S, S+1, ...; each batch "
                                 "is replayed before the next is generated (bounded memory)")
    run_parser.add_argument("--depth", type=int, default=22, help="steps per behaviour (default 22)")
    run_parser.add_argument("--seed", type=int, default=1)
    run_parser.add_argument("--mix", default="all",
                            help="walk mix of the replay model: all (default), or one mix by name")
    run_parser.add_argument("--min-behaviours", type=int, default=0,
                            help="fail unless at least this many distinct behaviours replayed")
    run_parser.add_argument("--save-dir", type=Path, default=Path("spec-replay-failures"))
    run_parser.add_argument("--save-behaviours", type=Path, default=None,
                            help="also write the generated behaviours to this file")
    run_parser.add_argument("--stop-after", type=int, default=10,
                            help="stop after this many divergences (default 10)")
    run_parser.add_argument("--from", dest="from_file", type=Path, default=None,
                            help="replay the behaviours of this file (--save-behaviours) "
                                 "instead of running TLC")
    run_parser.add_argument("--spec-dir", type=Path, default=SPEC_DIR)
    replay_parser = commands.add_parser("replay", help="replay a saved behaviour file")
    replay_parser.add_argument("file", type=Path)
    replay_parser.add_argument("--protocol", default="lowpaxos")


def command(args: argparse.Namespace) -> int:
    from lowpaxos.specreplay.generate import GenerateError, generate
    from lowpaxos.specreplay.models import MODELS
    from lowpaxos.specreplay.replay import (BehaviourFileError, Divergence, coverage_gaps,
                                            coverage_report, load, load_all, replay, run,
                                            save_all)

    if args.protocol not in MODELS:
        print(f"error: no replay model for {args.protocol!r} (have: {', '.join(MODELS)})",
              file=sys.stderr)
        return 2
    model = MODELS[args.protocol]()
    if args.replay_command == "replay":
        try:
            behaviour = load(args.file)
        except BehaviourFileError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        try:
            counts = replay(behaviour, model.adapter)
        except Divergence as divergence:
            print(divergence.report())
            return 1
        print(f"{args.file}: replayed {len(behaviour.steps)} steps, no divergence {counts or ''}")
        return 0
    if args.traces < 1 or args.depth < 1 or args.batches < 1 or args.stop_after < 1:
        print("error: --traces, --depth, --batches and --stop-after must be positive",
              file=sys.stderr)
        return 2
    seen: set = set()
    prefixes: set = set()
    stats = None
    for batch in range(1 if args.from_file is not None else args.batches):
        if args.from_file is not None:
            try:
                behaviours = load_all(args.from_file)
            except BehaviourFileError as error:
                print(f"error: {error}", file=sys.stderr)
                return 2
            print(f"{len(behaviours)} behaviours read from {args.from_file}", flush=True)
        else:
            seed = args.seed + batch
            try:
                behaviours, tlc_seconds = generate(model.model, args.traces, args.depth, seed,
                                                   mix=args.mix, spec_dir=args.spec_dir)
            except GenerateError as error:
                print(f"error: {error}", file=sys.stderr)
                return 2
            print(f"TLC (seed {seed}): {len(behaviours)} behaviours printed from {args.traces} "
                  f"walks in {tlc_seconds:.1f} s", flush=True)
            if args.save_behaviours is not None:
                save_all(behaviours, args.save_behaviours)
        left = args.stop_after - (len(stats.divergences) if stats else 0)
        batch_stats = run(behaviours, model.adapter, save_dir=args.save_dir, stop_after=left,
                          seen=seen, prefixes=prefixes)
        if stats is None:
            stats = batch_stats
        else:
            stats.merge(batch_stats)
        if args.batches > 1:
            print(f"  batch {batch + 1}: {batch_stats.distinct} new distinct behaviours, "
                  f"{stats.distinct} in all", flush=True)
        if len(stats.divergences) >= args.stop_after:
            break
    print(stats.summary())
    gaps = coverage_gaps(stats, model.adapter, args.spec_dir)
    print(coverage_report(stats, model.adapter, args.spec_dir))
    for divergence in stats.divergences:
        print(divergence.report())
    if stats.divergences:
        print(f"behaviours saved under {args.save_dir}/ (lowpaxos spec-replay replay FILE)")
        return 1
    if gaps and args.mix == "all" and args.from_file is None:
        print(f"error: spec actions never replayed: {', '.join(gaps)}", file=sys.stderr)
        return 1
    if stats.distinct < args.min_behaviours:
        print(f"error: {stats.distinct} distinct behaviours, fewer than {args.min_behaviours}",
              file=sys.stderr)
        return 1
    return 0
