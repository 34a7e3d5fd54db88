"""The ``lowpaxos`` command: one subcommand per tool.

Each subcommand is a module with ``add_arguments(parser)`` and ``command(args) ->
exit code``; add one by adding a line to ``SUBCOMMANDS``. Modules are imported
only when their subcommand runs, so one tool's imports never slow another.
"""

from __future__ import annotations

import argparse
import importlib
import sys

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    # name: (module, one-line help)
    "sim": ("lowpaxos.sim.cli", "run the deterministic simulator"),
    "replica": ("lowpaxos.runtime.replica", "run one replica of a real cluster (--cluster FILE --id I)"),
    "cluster": ("lowpaxos.runtime.launcher",
                "run a local cluster on 127.0.0.1 (--replicas N --protocol lowpaxos|vr)"),
    "conformance": ("lowpaxos.conformance.cli", "check traces against spec/LowPaxos.tla (check TRACE | run)"),
    "spec-replay": ("lowpaxos.specreplay.cli", "replay behaviours TLC generates from the spec against real cores"),
    "epaxos-graph": ("lowpaxos.check.epaxos_graph",
                     "check an EPaxos trace's dependency graph with networkx (TRACE [--json])"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="lowpaxos")
    commands = parser.add_subparsers(dest="subcommand", required=True)
    chosen = argv[0] if argv and argv[0] in SUBCOMMANDS else None
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub = commands.add_parser(name, help=help_text)
        if name == chosen:
            importlib.import_module(module_name).add_arguments(sub)
    args = parser.parse_args(argv)
    module = importlib.import_module(SUBCOMMANDS[args.subcommand][0])
    return module.command(args)


if __name__ == "__main__":
    sys.exit(main())
