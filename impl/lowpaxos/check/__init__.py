"""Checkers that judge what the system did: linearizability of client histories."""

from lowpaxos.check.linearizability import CheckResult, Operation, check_history, describe

__all__ = ["CheckResult", "Operation", "check_history", "describe"]
