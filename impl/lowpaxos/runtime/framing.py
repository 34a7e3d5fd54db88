"""Authenticated datagram framing between replicas.

A datagram is ``header | body | tag``:

* header (14 bytes, big-endian): magic ``b"LP"``, version (1 byte), kind (1 byte),
  sender replica id (2 bytes), message counter (8 bytes);
* body, by kind:

  - ``MESSAGE``: one whole message in the wire codec (``lowpaxos.codec``);
  - ``FRAGMENT``: index, count (2 bytes each), the message's total bytes (4),
    the fragment size (2), then that piece of the encoded message
    (runtime/fragments.py); the counter is the whole message's;
  - ``NACK``: a count (2 bytes) and that many fragment indices (2 bytes each)
    the sender of the NACK still lacks; the counter is that of the message it
    lacks them of, which the NACK's receiver sent;

* tag: the first 16 bytes of HMAC-SHA256(cluster key, header | body).

``(sender, counter)`` of a MESSAGE or FRAGMENT is the message id that trace
events carry, so traces of different replicas merge into one order (a receive
follows its send). A sender starts its counter at the wall clock in
microseconds, so ids stay unique across restarts. The tag authenticates the
sender id in the header; the source address of a datagram is not trusted (a
proxy may forward it). Every fragment and every NACK is authenticated on its own.

A replayed datagram authenticates; Paxos tolerates duplicated and reordered
messages, and a replayed fragment or NACK costs a duplicate or a retransmission,
so replay cannot break safety (docs/runtime.md, Security).
"""

from __future__ import annotations

import hashlib
import hmac
import struct

from lowpaxos.runtime.fragments import Fragment

MAGIC = b"LP"
VERSION = 2  # 2: a kind byte (whole message, fragment, NACK)
HEADER = struct.Struct(">2sBBHQ")
HEADER_BYTES = HEADER.size
TAG_BYTES = 16
MESSAGE, FRAGMENT, NACK = 0, 1, 2
KINDS = (MESSAGE, FRAGMENT, NACK)
FRAGMENT_HEADER = struct.Struct(">HHIH")  # index, count, total bytes, fragment size
NACK_COUNT = struct.Struct(">H")
NACK_INDEX = struct.Struct(">H")
# Bytes a datagram adds to what it carries.
MESSAGE_OVERHEAD_BYTES = HEADER_BYTES + TAG_BYTES
FRAGMENT_OVERHEAD_BYTES = HEADER_BYTES + FRAGMENT_HEADER.size + TAG_BYTES
TOTAL_BYTES_MAX = 0xFFFFFFFF
CHUNK_BYTES_MAX = 0xFFFF


class FrameError(ValueError):
    """A datagram to drop; ``reason`` is the counter name (drop_<reason> in INFO)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _tag(key: bytes, signed: bytes) -> bytes:
    return hmac.digest(key, signed, hashlib.sha256)[:TAG_BYTES]


def seal(key: bytes, sender: int, counter: int, body: bytes, kind: int = MESSAGE) -> bytes:
    assert kind in KINDS, "a known datagram kind"
    signed = HEADER.pack(MAGIC, VERSION, kind, sender, counter) + body
    return signed + _tag(key, signed)


def seal_fragment(key: bytes, sender: int, fragment: Fragment) -> bytes:
    assert fragment.chunk_bytes <= CHUNK_BYTES_MAX, "the fragment size fits its field"
    assert fragment.total_bytes <= TOTAL_BYTES_MAX, "the total fits its field"
    head = FRAGMENT_HEADER.pack(fragment.index, fragment.count, fragment.total_bytes,
                                fragment.chunk_bytes)
    return seal(key, sender, fragment.counter, head + fragment.data, FRAGMENT)


def seal_nack(key: bytes, sender: int, counter: int, indices: tuple[int, ...]) -> bytes:
    body = NACK_COUNT.pack(len(indices)) + b"".join(NACK_INDEX.pack(i) for i in indices)
    return seal(key, sender, counter, body, NACK)


def parse_fragment(counter: int, body: bytes) -> Fragment:
    """The fragment in a FRAGMENT body; its geometry is checked by the receiver."""
    if len(body) < FRAGMENT_HEADER.size:
        raise FrameError("truncated")
    index, count, total_bytes, chunk_bytes = FRAGMENT_HEADER.unpack_from(body)
    return Fragment(counter, index, count, total_bytes, chunk_bytes, bytes(body[FRAGMENT_HEADER.size:]))


def parse_nack(body: bytes, indices_max: int) -> tuple[int, ...]:
    """The indices in a NACK body (at least one, at most ``indices_max``)."""
    if len(body) < NACK_COUNT.size:
        raise FrameError("truncated")
    (count,) = NACK_COUNT.unpack_from(body)
    if not 1 <= count <= indices_max or len(body) != NACK_COUNT.size + count * NACK_INDEX.size:
        raise FrameError("bad_nack")
    return tuple(index for (index,) in NACK_INDEX.iter_unpack(body[NACK_COUNT.size:]))


def peek_sender(datagram: bytes) -> int | None:
    """The claimed sender id, unauthenticated (for fault proxies and logs only)."""
    if len(datagram) < HEADER_BYTES:
        return None
    magic, version, _kind, sender, _counter = HEADER.unpack_from(datagram)
    return sender if magic == MAGIC and version == VERSION else None


def open_frame(
    key: bytes, datagram: bytes, replica_count: int, datagram_bytes_max: int
) -> tuple[int, int, int, bytes]:
    """``(kind, sender, counter, body)`` of an authentic datagram, else FrameError.

    Checks run cheapest first; the HMAC is checked before the sender id is trusted.
    """
    if len(datagram) > datagram_bytes_max:
        raise FrameError("oversized")
    if len(datagram) < HEADER_BYTES + TAG_BYTES:
        raise FrameError("truncated")
    magic, version, kind, sender, counter = HEADER.unpack_from(datagram)
    if magic != MAGIC or version != VERSION or kind not in KINDS:
        raise FrameError("bad_header")
    signed = datagram[:-TAG_BYTES]
    if not hmac.compare_digest(_tag(key, signed), datagram[-TAG_BYTES:]):
        raise FrameError("bad_tag")
    if sender >= replica_count:
        # Authentic yet unknown: a replica of a larger cluster sharing the key.
        raise FrameError("unknown_sender")
    return kind, sender, counter, signed[HEADER_BYTES:]
