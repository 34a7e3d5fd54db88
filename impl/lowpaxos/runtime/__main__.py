"""``python -m lowpaxos.runtime replica|cluster ...``: the runtime's commands.

``lowpaxos.cli`` delegates its ``replica`` and ``cluster`` subcommands here.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("replica", "cluster"):
        print("usage: python -m lowpaxos.runtime {replica|cluster} [options]", file=sys.stderr)
        return 2
    if argv[0] == "replica":
        from lowpaxos.runtime.replica import main as run
    else:
        from lowpaxos.runtime.launcher import main as run
    return run(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
