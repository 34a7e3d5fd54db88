"""Authenticated datagram framing between replicas.

A datagram is ``header | payload | tag``:

* header (13 bytes, big-endian): magic ``b"LP"``, version (1 byte), sender
  replica id (2 bytes), message counter (8 bytes);
* payload: one message in the wire codec (``lowpaxos.codec``);
* tag: the first 16 bytes of HMAC-SHA256(cluster key, header | payload).

``(sender, counter)`` is the message id that trace events carry, so traces of
different replicas merge into one order (a receive follows its send). A sender
starts its counter at the wall clock in microseconds, so ids stay unique across
restarts. The tag authenticates the sender id in the header; the source address
of a datagram is not trusted (a proxy may forward it).

A replayed datagram authenticates; Paxos tolerates duplicated and reordered
messages, so replay cannot break safety (docs/runtime.md, Security).
"""

from __future__ import annotations

import hashlib
import hmac
import struct

MAGIC = b"LP"
VERSION = 1
HEADER = struct.Struct(">2sBHQ")
HEADER_BYTES = HEADER.size
TAG_BYTES = 16


class FrameError(ValueError):
    """A datagram to drop; ``reason`` is the counter name (drop_<reason> in INFO)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _tag(key: bytes, signed: bytes) -> bytes:
    return hmac.digest(key, signed, hashlib.sha256)[:TAG_BYTES]


def seal(key: bytes, sender: int, counter: int, payload: bytes) -> bytes:
    signed = HEADER.pack(MAGIC, VERSION, sender, counter) + payload
    return signed + _tag(key, signed)


def peek_sender(datagram: bytes) -> int | None:
    """The claimed sender id, unauthenticated (for fault proxies and logs only)."""
    if len(datagram) < HEADER_BYTES:
        return None
    magic, version, sender, _counter = HEADER.unpack_from(datagram)
    return sender if magic == MAGIC and version == VERSION else None


def open_frame(
    key: bytes, datagram: bytes, replica_count: int, datagram_bytes_max: int
) -> tuple[int, int, bytes]:
    """``(sender, counter, payload)`` of an authentic datagram, else FrameError.

    Checks run cheapest first; the HMAC is checked before the sender id is trusted.
    """
    if len(datagram) > datagram_bytes_max:
        raise FrameError("oversized")
    if len(datagram) < HEADER_BYTES + TAG_BYTES:
        raise FrameError("truncated")
    magic, version, sender, counter = HEADER.unpack_from(datagram)
    if magic != MAGIC or version != VERSION:
        raise FrameError("bad_header")
    signed = datagram[:-TAG_BYTES]
    if not hmac.compare_digest(_tag(key, signed), datagram[-TAG_BYTES:]):
        raise FrameError("bad_tag")
    if sender >= replica_count:
        # Authentic yet unknown: a replica of a larger cluster sharing the key.
        raise FrameError("unknown_sender")
    return sender, counter, signed[HEADER_BYTES:]
