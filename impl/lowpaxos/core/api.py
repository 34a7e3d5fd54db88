"""The interface between protocol cores and their drivers.

A core is a synchronous, deterministic state machine (etcd raft's ``Step`` and
``Ready``; h11's sans-I/O design). It takes one input at a time:

* ``on_message(source, message)``: a protocol message from another replica,
* ``on_tick()``: one unit of logical time has passed,
* ``on_client_request(request)``: a client command arrived at this replica,

and returns one ``Effects`` batch. The driver (the simulator or the asyncio
runtime) must carry the batch out in this order:

1. ``persist``: write every record durably (one transaction, synced);
2. ``send``: hand each ``(target, message)`` to the network;
3. ``reply``: answer clients;
4. ``applied``: report what the core applied to its key-value store.

The core owns its replicated state machine (the KVS), so it computes client
results itself while applying committed commands; ``applied`` tells observers
(histories, traces, metrics) what happened. Nothing in a batch may leave the
replica before the batch's ``persist`` records are durable.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

# Operations the key-value store understands.
# Codes on the wire are positions in this tuple: append, never reorder.
OPS = ("get", "put", "delete", "cas", "getdel", "append", "strlen", "mset", "mget", "dbsize",
       "scan")


@dataclass(frozen=True, slots=True)
class Command:
    """One client operation on the KVS.

    ``(client_id, request_id)`` names the operation for at-most-once execution
    (VR Revisited §4, the client table). ``value`` is the new value for put,
    append and cas, and the MATCH glob of scan; ``expected`` is the value cas
    compares against (None: key absent). ``pairs`` are mset's (key, value) pairs,
    ``keys`` mget's keys or the one key scan continues after, ``count`` scan's
    COUNT. Multi-key commands are one command in the log, so they are atomic.
    """

    client_id: int
    request_id: int
    op: str
    key: str
    value: bytes | None = None
    expected: bytes | None = None
    pairs: tuple[tuple[str, bytes], ...] = ()
    keys: tuple[str, ...] = ()
    count: int = 0


@dataclass(frozen=True, slots=True)
class ClientRequest:
    """A client's command as it reaches a replica."""

    command: Command


class ReplyStatus(enum.Enum):
    OK = "ok"
    NOT_LEADER = "not_leader"  # try ``leader_hint`` (or any replica if None)
    BUSY = "busy"  # back-pressure: the leader's window and queue are full; retry later
    INVALID = "invalid"  # the command is malformed; ``result`` names why (bytes); do not retry


@dataclass(frozen=True, slots=True)
class ClientReply:
    """A replica's answer to one client request.

    ``result``: get -> the value or None; put -> None; delete -> True if the key
    existed; cas -> True if the value was swapped; getdel -> the old value;
    append and strlen -> the length (int); mset -> None; mget -> a list of
    values or None; dbsize -> int; scan -> [next key or None, [keys]].
    """

    client_id: int
    request_id: int
    status: ReplyStatus
    result: bytes | bool | int | list | None = None
    leader_hint: int | None = None


@dataclass(frozen=True, slots=True)
class Applied:
    """A command the core applied to its KVS at ``slot`` (or instance), with the result."""

    slot: Any
    command: Command
    result: bytes | bool | None


@dataclass(slots=True)
class Effects:
    """One batch of outputs, carried out in field order (see the module docstring)."""

    persist: list[Any] = field(default_factory=list)
    send: list[tuple[int, Any]] = field(default_factory=list)
    reply: list[ClientReply] = field(default_factory=list)
    applied: list[Applied] = field(default_factory=list)
    trace: list[dict] = field(default_factory=list)

    def extend(self, other: "Effects") -> None:
        self.persist.extend(other.persist)
        self.send.extend(other.send)
        self.reply.extend(other.reply)
        self.applied.extend(other.applied)
        self.trace.extend(other.trace)

    def empty(self) -> bool:
        return not (self.persist or self.send or self.reply or self.applied or self.trace)


@runtime_checkable
class Core(Protocol):
    """What every protocol core offers its drivers."""

    replica_id: int

    def on_message(self, source: int, message: Any) -> Effects: ...

    def on_tick(self) -> Effects: ...

    def on_client_request(self, request: ClientRequest) -> Effects: ...

    def drop_counts(self) -> dict[str, int]:
        """Inputs dropped so far, by named reason (stale ballot, non-member, ...)."""
        ...

    def check_invariants(self) -> None:
        """Assert the core's local invariants (also called by the core after every step)."""
        ...

    # Status a driver reads without knowing the protocol (the runtime's client path,
    # INFO and logs). Reading changes nothing.

    kvs: Any
    """The core's replicated KVS (kvs.KeyValueStore): digest and row counts for INFO."""

    @property
    def leader_hint(self) -> int | None:
        """The replica this one believes leads (LowPaxos's leader, VR's primary), or None."""
        ...

    @property
    def commit_index(self) -> int:
        """A progress counter that only rises while the core lives: every slot or op up
        to it is committed (LowPaxos's commit point, VR's commit-number). A driver sees
        that the cluster makes progress when it rises."""
        ...

    def is_leader(self) -> bool:
        """This replica takes client commands itself now (others answer NOT_LEADER)."""
        ...

    def info_fields(self) -> list[tuple[str, object]]:
        """The protocol's own status as (name, value) lines for the runtime's INFO
        (docs/runtime.md). Shared names mean the same in every protocol: ``role``
        (leader, follower, candidate, or a protocol's own), ``leader_hint``,
        ``commit_index``, ``kvs_index``, ``kvs_digest``, ``kvs_keys``, ``log_start``."""
        ...
