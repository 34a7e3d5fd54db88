"""Fragmentation of large messages over UDP, sans-I/O: no sockets, no clocks.

Theory of operation
-------------------
A message whose encoded payload is larger than ``fragment_payload_bytes`` travels
as ``count`` fragments of ``chunk_bytes`` each (the last one shorter), so that no
datagram needs IP fragmentation, where the loss of any one IP fragment loses the
whole datagram. Every fragment names its message by the sender's message counter
(the message id of traces) and carries ``index``, ``count``, ``total_bytes`` and
``chunk_bytes``, so the receiver can start reassembling from any fragment and
check each one's length without a handshake.

``FragmentSender.split`` cuts a payload and keeps the fragments of recent large
messages in a buffer bounded in bytes (oldest evicted first, counted). A receiver
that misses fragments sends a NACK listing the missing indices;
``FragmentSender.on_nack`` answers it with just those fragments. So the loss of
one fragment costs one fragment's retransmission, not the whole message.

``FragmentReceiver.on_fragment`` reassembles per ``(sender, counter)`` in a
buffer bounded in bytes and in messages (the least recently progressing partial
message is evicted, counted) and returns the payload once complete. ``poll(now)``
returns NACKs for partial messages that made no progress for a while. A sender
sends a message's fragments in index order over one path, which rarely reorders,
so a missing index below the highest one received (a hole) is almost surely lost:
holes are NACKed after ``nack_delay_s`` without progress. Missing indices above the
highest (the tail) may still be on their way behind other traffic, so they are
NACKed only after TAIL_DELAY_FACTOR times as long. Each further NACK without
progress waits twice as long as the one before; after ``nack_rounds_max`` of them
the receiver gives up (counted), and the protocol's own retransmission resends the
whole message under a new counter.

Filter, then assert: bad input from the network (an index past the count, a count
that does not match the lengths, a message over the bound, a duplicate) is dropped
with a named, counted reason (``drops``); only programmer errors assert.
Time is a number the driver passes in (seconds); nothing here reads a clock.

Bounds: sender buffer <= ``store_bytes_max`` bytes of fragments; receiver buffer
<= ``buffer_bytes_max`` bytes reserved (each partial message reserves its whole
``total_bytes`` when it starts, so arrival order cannot break the bound) and <=
``messages_max`` partial messages; fragments per message <= FRAGMENTS_MAX; indices
per NACK <= ``nack_indices_max``; remembered completed ids <= COMPLETED_IDS_MAX.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass

FRAGMENTS_MAX = 0xFFFF  # index and count are 16-bit on the wire (framing.FRAGMENT_HEADER)
NACK_INDICES_MAX = 512  # at most this many indices in one NACK (a 1 KiB datagram body)
COMPLETED_IDS_MAX = 1024  # message ids remembered after delivery, to ignore late duplicates
TAIL_DELAY_FACTOR = 4  # the tail of a message is NACKed after this many times the delay


@dataclass(frozen=True, slots=True)
class Fragment:
    """One piece of message ``counter`` (the sender is known from the datagram)."""

    counter: int
    index: int
    count: int
    total_bytes: int
    chunk_bytes: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Nack:
    """Ask ``sender`` again for fragments ``indices`` of its message ``counter``."""

    sender: int
    counter: int
    indices: tuple[int, ...]


def fragment_count(total_bytes: int, chunk_bytes: int) -> int:
    return -(-total_bytes // chunk_bytes)


def fragment_length(index: int, total_bytes: int, chunk_bytes: int) -> int:
    """The length of fragment ``index``: ``chunk_bytes``, the last one the remainder."""
    return min(chunk_bytes, total_bytes - index * chunk_bytes)


def nack_indices_max(fragment_payload_bytes: int) -> int:
    """Indices one NACK may carry: NACK_INDICES_MAX, fewer when fragments are so small
    that a NACK of that many 2-byte indices would be the larger datagram."""
    return max(1, min(NACK_INDICES_MAX, (fragment_payload_bytes - 2) // 2))


class FragmentSender:
    def __init__(self, fragment_payload_bytes: int, store_bytes_max: int) -> None:
        assert fragment_payload_bytes >= 1, "fragments carry at least one byte"
        assert store_bytes_max >= 0, "the store bound is a size"
        self.chunk_bytes = fragment_payload_bytes
        self.store_bytes_max = store_bytes_max
        # counter -> (target, fragments); oldest first. Its bytes are store_bytes.
        self.store: OrderedDict[int, tuple[int, tuple[Fragment, ...]]] = OrderedDict()
        self.store_bytes = 0
        self.stats: Counter[str] = Counter()
        self.drops: Counter[str] = Counter()

    def needs_split(self, payload_bytes: int) -> bool:
        return payload_bytes > self.chunk_bytes

    def split(self, target: int, counter: int, payload: bytes) -> tuple[Fragment, ...]:
        """The fragments of ``payload`` (message ``counter`` to ``target``), remembered
        for NACKs while the store has room."""
        assert self.needs_split(len(payload)), "a payload that fits one fragment goes whole"
        assert counter not in self.store, "message counters are unique"
        total = len(payload)
        count = fragment_count(total, self.chunk_bytes)
        assert count <= FRAGMENTS_MAX, "the payload bound keeps the count within 16 bits"
        chunk = self.chunk_bytes
        fragments = tuple(
            Fragment(counter, index, count, total, chunk, payload[index * chunk:(index + 1) * chunk])
            for index in range(count)
        )
        self.stats["messages_fragmented"] += 1
        self.stats["fragments_sent"] += count
        if total > self.store_bytes_max:
            # It would evict everything else and still not fit: lost fragments of this
            # message are recovered by the protocol's retransmission instead.
            self.drops["fragment_store_too_small"] += 1
            return fragments
        while self.store_bytes + total > self.store_bytes_max:
            _, (_, evicted) = self.store.popitem(last=False)
            self.store_bytes -= evicted[0].total_bytes
            self.stats["fragment_store_evictions"] += 1
        self.store[counter] = (target, fragments)
        self.store_bytes += total
        assert self.store_bytes <= self.store_bytes_max, "the sender's store stays bounded"
        return fragments

    def on_nack(self, source: int, counter: int, indices: tuple[int, ...]) -> tuple[Fragment, ...]:
        """The fragments ``source`` asks for again; none when the message is gone from the
        store or was not sent to ``source``."""
        self.stats["nacks_received"] += 1
        entry = self.store.get(counter)
        if entry is None:
            self.drops["nack_unknown_message"] += 1
            return ()
        target, fragments = entry
        if target != source:
            self.drops["nack_wrong_peer"] += 1
            return ()
        wanted = sorted(set(indices))
        if not wanted or wanted[-1] >= len(fragments):
            self.drops["nack_bad_index"] += 1
            return ()
        resent = tuple(fragments[index] for index in wanted)
        self.stats["fragments_retransmitted"] += len(resent)
        return resent


class _Partial:
    """One message being reassembled."""

    __slots__ = ("count", "total_bytes", "chunk_bytes", "parts", "received", "highest",
                 "progress_at", "nack_at", "nack_rounds")

    def __init__(self, fragment: Fragment, now: float) -> None:
        self.count = fragment.count
        self.total_bytes = fragment.total_bytes
        self.chunk_bytes = fragment.chunk_bytes
        self.parts: list[bytes | None] = [None] * fragment.count
        self.received = 0
        self.highest = -1  # the highest index received
        self.progress_at = now
        self.nack_at: float | None = None  # when the last NACK left
        self.nack_rounds = 0  # NACKs sent since the last progress

    def missing(self, limit: int, below: int) -> tuple[int, ...]:
        """The lowest missing indices below ``below``, at most ``limit``."""
        found = []
        for index in range(below):
            if self.parts[index] is None:
                found.append(index)
                if len(found) == limit:
                    break
        return tuple(found)


class FragmentReceiver:
    def __init__(self, message_bytes_max: int, chunk_bytes_max: int, buffer_bytes_max: int,
                 messages_max: int, nack_delay_s: float, nack_rounds_max: int,
                 nack_indices: int = NACK_INDICES_MAX) -> None:
        assert buffer_bytes_max >= 1 and messages_max >= 1, "the buffer holds something"
        assert nack_delay_s > 0 and nack_rounds_max >= 0, "NACKs are paced and bounded"
        self.message_bytes_max = message_bytes_max
        self.chunk_bytes_max = chunk_bytes_max
        self.buffer_bytes_max = buffer_bytes_max
        self.messages_max = messages_max
        self.nack_delay_s = nack_delay_s
        self.nack_rounds_max = nack_rounds_max
        self.nack_indices = nack_indices
        # (sender, counter) -> partial message; least recently progressing first.
        self.partial: OrderedDict[tuple[int, int], _Partial] = OrderedDict()
        self.reserved_bytes = 0
        self.completed: OrderedDict[tuple[int, int], None] = OrderedDict()
        self.stats: Counter[str] = Counter()
        self.drops: Counter[str] = Counter()

    def pending(self) -> bool:
        return bool(self.partial)

    def _geometry_problem(self, fragment: Fragment) -> str | None:
        if fragment.total_bytes > self.message_bytes_max or fragment.total_bytes > self.buffer_bytes_max:
            return "fragment_oversized"
        if not 1 <= fragment.chunk_bytes <= self.chunk_bytes_max or fragment.total_bytes < 2:
            return "fragment_bad_length"
        if fragment.count < 2 or fragment.count != fragment_count(fragment.total_bytes,
                                                                  fragment.chunk_bytes):
            # A one-fragment message would have travelled whole.
            return "fragment_bad_count"
        if fragment.index >= fragment.count:
            return "fragment_bad_index"
        expected = fragment_length(fragment.index, fragment.total_bytes, fragment.chunk_bytes)
        if len(fragment.data) != expected:
            return "fragment_bad_length"
        return None

    def on_fragment(self, sender: int, fragment: Fragment, now: float) -> bytes | None:
        """Take one fragment; the whole payload when this fragment completes it."""
        self.stats["fragments_received"] += 1
        problem = self._geometry_problem(fragment)
        if problem is not None:
            self.drops[problem] += 1
            return None
        key = (sender, fragment.counter)
        if key in self.completed:
            self.drops["fragment_after_delivery"] += 1
            return None
        partial = self.partial.get(key)
        if partial is None:
            partial = self._start(key, fragment, now)
        elif (partial.count, partial.total_bytes, partial.chunk_bytes) != (
                fragment.count, fragment.total_bytes, fragment.chunk_bytes):
            self.drops["fragment_mismatch"] += 1
            return None
        if partial.parts[fragment.index] is not None:
            self.drops["fragment_duplicate"] += 1
            return None
        partial.parts[fragment.index] = fragment.data
        partial.received += 1
        partial.highest = max(partial.highest, fragment.index)
        partial.progress_at = now
        partial.nack_rounds = 0
        self.partial.move_to_end(key)
        if partial.received < partial.count:
            return None
        del self.partial[key]
        self.reserved_bytes -= partial.total_bytes
        self.completed[key] = None
        if len(self.completed) > COMPLETED_IDS_MAX:
            self.completed.popitem(last=False)
        payload = b"".join(partial.parts)
        assert len(payload) == partial.total_bytes, "checked lengths add up to the total"
        self.stats["messages_reassembled"] += 1
        return payload

    def _start(self, key: tuple[int, int], fragment: Fragment, now: float) -> _Partial:
        while self.partial and (len(self.partial) >= self.messages_max or
                                self.reserved_bytes + fragment.total_bytes > self.buffer_bytes_max):
            _, evicted = self.partial.popitem(last=False)
            self.reserved_bytes -= evicted.total_bytes
            self.stats["reassembly_evictions"] += 1
        partial = _Partial(fragment, now)
        self.partial[key] = partial
        self.reserved_bytes += fragment.total_bytes
        assert self.reserved_bytes <= self.buffer_bytes_max, "the reassembly buffer stays bounded"
        assert len(self.partial) <= self.messages_max, "partial messages stay bounded"
        return partial

    def poll(self, now: float) -> list[Nack]:
        """NACKs for partial messages without progress for ``nack_delay_s`` (then twice,
        four times as long, ...); messages past ``nack_rounds_max`` NACKs are given up."""
        nacks = []
        abandoned = []
        # Bounded by messages_max.
        for key, partial in self.partial.items():
            # The first NACK waits after the last progress; each further one without
            # progress waits twice as long as the one before, in case the answer needs
            # longer than the delay to arrive (a slower link, a busy sender).
            since = partial.nack_at if partial.nack_rounds else partial.progress_at
            wait = self.nack_delay_s * (1 << partial.nack_rounds)
            holes = partial.received < partial.highest + 1
            if now - since < (wait if holes else TAIL_DELAY_FACTOR * wait):
                continue
            if partial.nack_rounds >= self.nack_rounds_max:
                abandoned.append(key)
                continue
            partial.nack_rounds += 1
            partial.nack_at = now
            below = partial.highest if holes else partial.count
            nacks.append(Nack(key[0], key[1], partial.missing(self.nack_indices, below)))
        for key in abandoned:
            self.reserved_bytes -= self.partial.pop(key).total_bytes
            self.stats["reassembly_abandoned"] += 1
        self.stats["nacks_sent"] += len(nacks)
        return nacks
