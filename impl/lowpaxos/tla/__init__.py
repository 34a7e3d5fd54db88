"""The TLA+ specification's tooling: run TLC on spec/ from Python.

``tlc.run_tlc`` runs one model check in a JVM of its own and returns a
``TlcResult``; ``checks.CHECKS`` lists the configurations behind
``python -m lowpaxos.tla check`` (``make check-spec``).
"""

from lowpaxos.tla.tlc import Outcome, TlcError, TlcResult, run_tlc

__all__ = ["Outcome", "TlcError", "TlcResult", "run_tlc"]
