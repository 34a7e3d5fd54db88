"""Checkers that judge what the system did: linearizability of client histories."""

from lowpaxos.check.linearizability import (
    CheckResult,
    Operation,
    StrictClock,
    check_history,
    describe,
)

__all__ = ["CheckResult", "Operation", "StrictClock", "check_history", "describe"]
