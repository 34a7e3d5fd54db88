"""Pieces the protocol cores share that are not protocol logic: the encoded-size
estimate of commands (batches and windows are bounded in bytes without the codec,
since cores do no I/O) and the short names traces give batches."""

from __future__ import annotations

import hashlib
from collections import deque

from lowpaxos.core.api import Command

# Encoded-size estimate of one command inside a batch, without the codec (the core
# does no I/O and imports no wire format): fixed overhead plus its byte fields.
COMMAND_OVERHEAD_BYTES = 24
BATCH_OVERHEAD_BYTES = 48


def command_size_bytes(command: Command) -> int:
    size = COMMAND_OVERHEAD_BYTES + len(command.key.encode("utf-8", "surrogatepass"))
    if command.value is not None:
        size += len(command.value)
    if command.expected is not None:
        size += len(command.expected)
    for pair_key, pair_value in command.pairs:
        size += 8 + len(pair_key.encode("utf-8", "surrogatepass")) + len(pair_value)
    for key in command.keys:
        size += 4 + len(key.encode("utf-8", "surrogatepass"))
    return size


def batch_size_bytes(batch: tuple[Command, ...]) -> int:
    return BATCH_OVERHEAD_BYTES + sum(command_size_bytes(c) for c in batch)


def take_batch(pending: "deque[Command]", pending_bytes: int, batching: bool,
               batch_bytes_max: int, partial: bool) -> tuple[tuple[Command, ...] | None, int]:
    """The next batch a proposer takes from its queue ``pending`` (whose commands' size
    estimates sum to ``pending_bytes``), and the bytes it took; (None, 0) to wait for more.

    Without batching, one command. With it, commands in order while they fit
    ``batch_bytes_max`` (one datagram's payload; a single larger command goes alone), and
    a partial batch only when ``partial`` (a tick: wait no longer for a full one). The
    batching of VR Revisited §6.2 and EPaxos §4.3, shared by the three cores."""
    if not batching:
        command = pending.popleft()
        return (command,), command_size_bytes(command)
    budget = batch_bytes_max - BATCH_OVERHEAD_BYTES
    if pending_bytes < budget and not partial:
        return None, 0
    commands, size = [], 0
    while pending:
        next_size = command_size_bytes(pending[0])
        if commands and size + next_size > budget:
            break
        commands.append(pending.popleft())
        size += next_size
    return tuple(commands), size


def peer_order_error(peer_order: object, replicas: int) -> str | None:
    """Why ``peer_order`` (for each replica, every other replica once, closest first) is
    malformed for ``replicas`` replicas, or None. Thrifty protocols send to the closest
    peers first; the drivers fill it from a latency matrix (sim/topology.py)."""
    if not isinstance(peer_order, (tuple, list)) or len(peer_order) != replicas:
        return "peer_order needs one list per replica"
    for replica, order in enumerate(peer_order):
        if not isinstance(order, (tuple, list)) or \
                sorted(order) != [r for r in range(replicas) if r != replica]:
            return f"peer_order[{replica}] must list every other replica once"
    return None


def batch_id(batch: tuple[Command, ...]) -> str:
    """A short stable name of a batch for traces: the spec sees a batch as one value."""
    if not batch:
        return "noop"
    digest = hashlib.sha256(repr(batch).encode()).hexdigest()[:10]
    return f"b{digest}"


__all__ = ["BATCH_OVERHEAD_BYTES", "COMMAND_OVERHEAD_BYTES", "batch_id", "batch_size_bytes",
           "command_size_bytes", "peer_order_error", "take_batch"]
