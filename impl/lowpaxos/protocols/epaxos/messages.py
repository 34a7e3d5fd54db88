"""EPaxos messages, durable records and the instance types: immutable values.

Names follow the SOSP 2013 paper (§4.3) and the technical report CMU-PDL-13-111
(§4.4-4.5): an instance ``inst = (R, i)`` is replica R's i-th instance (i >= 1) and
holds a batch of client commands (``NOP``, the empty batch, executes nothing and
interferes with nothing), a sequence number ``seq`` and the dependencies ``deps``,
a vector of length N: ``deps[R] = d`` means "depends on every instance (R, j) with
1 <= j <= d" (0: none), as the reference implementation's execution reads them.
Every instance keeps two ballots, ``ballot`` (the highest promised) and ``vballot``
(the ballot at which its value was last pre-accepted or accepted): Sutra (2019)
shows that one ballot variable lets concurrent recoveries commit different values.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import NamedTuple

from lowpaxos.core.api import Command

Batch = tuple[Command, ...]
Inst = tuple[int, int]
Deps = tuple[int, ...]
NOP: Batch = ()

# The durable key of an instance (runtime/storage.py's entries.slot, and the version of
# the KVS rows an instance writes, the same on every replica): R << 40 | i.
INSTANCE_BITS = 40
INSTANCE_MAX = (1 << INSTANCE_BITS) - 1


def instance_key(inst: Inst) -> int:
    replica, number = inst
    return replica << INSTANCE_BITS | number


def instance_of_key(key: int) -> Inst:
    return key >> INSTANCE_BITS, key & INSTANCE_MAX


class Ballot(NamedTuple):
    """Orders as a tuple: round first, then the replica id (as LowPaxos's)."""

    round: int
    replica: int


def initial_ballot(inst: Inst) -> Ballot:
    """The ballot at which the command leader R runs instance (R, i) first (TR §4.5)."""
    return Ballot(0, inst[0])


class InstanceStatus(enum.Enum):
    NONE = "none"
    PREACCEPTED = "preaccepted"
    ACCEPTED = "accepted"
    COMMITTED = "committed"
    EXECUTED = "executed"


STATUS_NAMES = tuple(status.value for status in InstanceStatus)


# ---- Phase 1: PreAccept (SOSP §4.3, Figure 2) ----


@dataclass(frozen=True, slots=True)
class PreAccept:
    ballot: Ballot
    inst: Inst
    batch: Batch
    seq: int
    deps: Deps


@dataclass(frozen=True, slots=True)
class PreAcceptOK:
    """The receiver's attributes after merging its own conflicts; ``unchanged``: the
    ballot is the initial one and the attributes equal the leader's (TR §4.5)."""

    ballot: Ballot
    inst: Inst
    seq: int
    deps: Deps
    unchanged: bool


# ---- Phase 2: Accept (the Paxos-Accept phase, SOSP §4.3) ----


@dataclass(frozen=True, slots=True)
class Accept:
    ballot: Ballot
    inst: Inst
    batch: Batch
    seq: int
    deps: Deps


@dataclass(frozen=True, slots=True)
class AcceptOK:
    ballot: Ballot
    inst: Inst


# ---- Commit ----


@dataclass(frozen=True, slots=True)
class Commit:
    inst: Inst
    batch: Batch
    seq: int
    deps: Deps


# ---- Recovery: explicit prepare (TR §4.5, with separate ballots) ----


@dataclass(frozen=True, slots=True)
class Prepare:
    ballot: Ballot
    inst: Inst


@dataclass(frozen=True, slots=True)
class PrepareOK:
    """The acceptor's state of ``inst`` after promising ``ballot``; ``batch`` None when
    it holds no value (status "none")."""

    ballot: Ballot
    inst: Inst
    status: str
    batch: Batch | None
    seq: int
    deps: Deps
    vballot: Ballot
    unchanged: bool


@dataclass(frozen=True, slots=True)
class Nack:
    """The receiver has promised ``ballot`` for ``inst``, above the sender's."""

    inst: Inst
    ballot: Ballot


# ---- Frontiers: heartbeat, garbage collection and catch-up ----


@dataclass(frozen=True, slots=True)
class Status:
    """``executed[R]``: the sender has executed every (R, j) with j <= it;
    ``committed[R]``: it holds every (R, j) with j <= it committed."""

    executed: tuple[int, ...]
    committed: tuple[int, ...]


MESSAGE_TYPES = (PreAccept, PreAcceptOK, Accept, AcceptOK, Commit, Prepare, PrepareOK, Nack,
                 Status)


# ---- Durable records ----


class InstanceRecord(NamedTuple):
    """What a replica keeps of one instance (durable and in memory)."""

    inst: Inst
    status: str
    ballot: Ballot
    vballot: Ballot
    batch: Batch | None
    seq: int
    deps: Deps
    unchanged: bool


@dataclass(frozen=True, slots=True)
class SaveInstance:
    """The whole state of one instance, written over what was held (before any reply
    or commit that depends on it leaves the replica)."""

    record: InstanceRecord


@dataclass(frozen=True, slots=True)
class SaveRows:
    """The KVS rows after executing every instance at or below ``executed`` (a
    frontier vector; ``executed_count`` instances in all)."""

    executed: tuple[int, ...]
    executed_count: int
    digest: int
    tombstone_horizon: int
    rows: tuple


@dataclass(frozen=True, slots=True)
class SaveCollect:
    """Garbage collection: every instance (R, j) with j <= ``collected[R]`` is executed
    by every replica and covered by the saved rows, so it leaves the durable log."""

    collected: tuple[int, ...]


RECORD_TYPES = (SaveInstance, SaveRows, SaveCollect)
