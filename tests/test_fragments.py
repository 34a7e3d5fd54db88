"""Unit tests of runtime/fragments.py and the fragment and NACK datagrams of
runtime/framing.py: a large message splits and reassembles whatever the order, a
lost fragment costs one fragment's retransmission through a NACK, duplicates and
malformed fragments are dropped with a counted reason, and every buffer keeps its
bound. Time is a number the test passes in."""

from __future__ import annotations

import dataclasses
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lowpaxos.runtime import framing
from lowpaxos.runtime.fragments import (
    Fragment,
    FragmentReceiver,
    TAIL_DELAY_FACTOR,
    FragmentSender,
    Nack,
    fragment_count,
    nack_indices_max,
)

KEY = bytes(range(32))
CHUNK = 100
DELAY_S = 0.005


def receiver(**overrides) -> FragmentReceiver:
    settings = dict(message_bytes_max=1 << 20, chunk_bytes_max=1000, buffer_bytes_max=1 << 20,
                    messages_max=8, nack_delay_s=DELAY_S, nack_rounds_max=3)
    settings.update(overrides)
    return FragmentReceiver(**settings)


def payload_of(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


@given(size=st.integers(CHUNK + 1, 20 * CHUNK), seed=st.integers(0, 1000))
def test_split_and_reassemble_in_any_order(size, seed):
    """Fragments delivered in a random order, some twice, give back the payload exactly
    once, when the last missing one arrives; duplicates are counted, not delivered."""
    payload = payload_of(size, seed)
    sender = FragmentSender(CHUNK, 1 << 20)
    fragments = list(sender.split(1, 42, payload))
    assert len(fragments) == fragment_count(size, CHUNK)
    assert all(len(f.data) <= CHUNK for f in fragments)
    rng = random.Random(seed)
    deliveries = fragments + rng.sample(fragments, k=min(3, len(fragments)))
    rng.shuffle(deliveries)
    target = receiver()
    results = [target.on_fragment(0, fragment, now=0.0) for fragment in deliveries]
    delivered = [result for result in results if result is not None]
    assert delivered == [payload]
    assert target.stats["messages_reassembled"] == 1
    duplicates = target.drops["fragment_duplicate"] + target.drops["fragment_after_delivery"]
    assert duplicates == len(deliveries) - len(fragments)
    assert not target.pending()
    assert target.reserved_bytes == 0


def test_a_lost_fragment_costs_one_fragment_through_a_nack():
    """One fragment of ten is lost: after the delay without progress the receiver NACKs
    exactly that index, the sender resends exactly that fragment, and the message is
    complete; the datagrams carrying fragments and the NACK authenticate and parse."""
    payload = payload_of(10 * CHUNK)
    sender = FragmentSender(CHUNK, 1 << 20)
    target = receiver()
    datagrams = [framing.seal_fragment(KEY, 2, f) for f in sender.split(0, 7, payload)]
    for index, datagram in enumerate(datagrams):
        if index == 4:
            continue  # lost
        kind, source, counter, body = framing.open_frame(KEY, datagram, 3, 65507)
        assert (kind, source, counter) == (framing.FRAGMENT, 2, 7)
        assert target.on_fragment(source, framing.parse_fragment(counter, body), now=0.0) is None
    assert target.poll(now=DELAY_S / 2) == []  # too early: fragments may still be coming
    nacks = target.poll(now=DELAY_S)
    assert nacks == [Nack(2, 7, (4,))]
    nack_datagram = framing.seal_nack(KEY, 0, nacks[0].counter, nacks[0].indices)
    kind, source, counter, body = framing.open_frame(KEY, nack_datagram, 3, 65507)
    assert (kind, source, counter) == (framing.NACK, 0, 7)
    resent = sender.on_nack(source, counter, framing.parse_nack(body, nack_indices_max(CHUNK)))
    assert [f.index for f in resent] == [4]
    assert sender.stats["fragments_retransmitted"] == 1
    assert target.on_fragment(2, resent[0], now=DELAY_S + 0.001) == payload
    assert target.stats["nacks_sent"] == 1


@pytest.mark.parametrize("received, nacked, sent_at, abandoned_at", [
    # A hole (index 1 below the highest received) is NACKed after 1, 2, 4 delays.
    ((0, 2), (1,), [1, 3, 7], 15),
    # Only the tail is missing: it may still be on its way, so 4 times as long.
    ((0,), (1, 2), [4, 12, 28], 60),
])
def test_nacks_back_off_and_give_up_after_the_bounded_rounds(received, nacked, sent_at,
                                                             abandoned_at):
    """Without progress, NACKs repeat after doubling waits (holes after one delay, the
    tail after four), then the partial message is dropped and counted as abandoned
    (the protocol resends the whole message)."""
    fragments = FragmentSender(CHUNK, 1 << 20).split(0, 9, payload_of(3 * CHUNK))
    target = receiver(nack_rounds_max=3, nack_delay_s=1.0)
    for index in received:
        target.on_fragment(1, fragments[index], now=0.0)
    nacks_at = []
    gave_up_at = None
    for second in range(0, 80):
        for nack in target.poll(now=second):
            assert nack.indices == nacked
            nacks_at.append(second)
        if gave_up_at is None and target.stats["reassembly_abandoned"]:
            gave_up_at = second
    assert nacks_at == sent_at
    assert gave_up_at == abandoned_at
    assert target.stats["reassembly_abandoned"] == 1
    assert not target.pending() and target.reserved_bytes == 0


def test_nack_lists_at_most_the_bound_and_progress_resets_the_rounds():
    """A NACK names at most nack_indices missing fragments, the lowest first; a fragment
    arriving resets the count of NACK rounds."""
    fragments = FragmentSender(CHUNK, 1 << 20).split(0, 3, payload_of(20 * CHUNK))
    target = receiver(nack_indices=5, nack_rounds_max=1)
    target.on_fragment(1, fragments[0], now=0.0)
    target.on_fragment(1, fragments[10], now=0.0)
    assert target.poll(now=0.01) == [Nack(1, 3, (1, 2, 3, 4, 5))]
    target.on_fragment(1, fragments[2], now=0.02)
    assert target.poll(now=0.03) == [Nack(1, 3, (1, 3, 4, 5, 6))]
    assert target.stats["reassembly_abandoned"] == 0


def test_a_lost_last_fragment_is_nacked_after_the_tail_delay():
    """When the last fragment is lost there is no hole: the receiver waits
    TAIL_DELAY_FACTOR delays (it could still be on its way), then NACKs it alone."""
    fragments = FragmentSender(CHUNK, 1 << 20).split(0, 3, payload_of(5 * CHUNK))
    target = receiver()
    for fragment in fragments[:-1]:
        target.on_fragment(1, fragment, now=0.0)
    assert target.poll(now=(TAIL_DELAY_FACTOR - 0.5) * DELAY_S) == []
    assert target.poll(now=TAIL_DELAY_FACTOR * DELAY_S) == [Nack(1, 3, (4,))]


@pytest.mark.parametrize("change, reason", [
    (dict(index=5), "fragment_bad_index"),
    (dict(count=4), "fragment_bad_count"),
    (dict(count=1, index=0, total_bytes=50, data=b"x" * 50), "fragment_bad_count"),
    (dict(data=b"x" * (CHUNK - 1)), "fragment_bad_length"),
    (dict(chunk_bytes=0), "fragment_bad_length"),
    (dict(chunk_bytes=2000), "fragment_bad_length"),
    (dict(total_bytes=(1 << 20) + 1), "fragment_oversized"),
])
def test_malformed_fragments_are_dropped_with_a_reason(change, reason):
    """A fragment whose index, count, length or size does not add up is dropped and
    counted by reason; nothing is buffered for it."""
    good = FragmentSender(CHUNK, 1 << 20).split(0, 1, payload_of(5 * CHUNK))[1]
    target = receiver()
    assert target.on_fragment(1, dataclasses.replace(good, **change), now=0.0) is None
    assert target.drops == {reason: 1}
    assert not target.pending()


def test_fragments_disagreeing_on_the_geometry_are_dropped():
    """A fragment of a message being reassembled that names another total is dropped."""
    fragments = FragmentSender(CHUNK, 1 << 20).split(0, 1, payload_of(5 * CHUNK))
    other = FragmentSender(CHUNK, 1 << 20).split(0, 1, payload_of(4 * CHUNK))
    target = receiver()
    target.on_fragment(1, fragments[0], now=0.0)
    target.on_fragment(1, other[1], now=0.0)
    assert target.drops["fragment_mismatch"] == 1


@pytest.mark.parametrize("body, reason", [
    (b"", "truncated"),
    (b"\x00\x00", "bad_nack"),
    (b"\x00\x02\x00\x01", "bad_nack"),
    (b"\x00\x01\x00\x01\x00", "bad_nack"),
])
def test_malformed_nacks_and_fragment_headers_are_refused(body, reason):
    """NACK bodies with no index, or a count that disagrees with the length, and a
    fragment body shorter than its header, raise FrameError with a reason."""
    with pytest.raises(framing.FrameError) as caught:
        framing.parse_nack(body, 512)
    assert caught.value.reason == reason
    with pytest.raises(framing.FrameError, match="truncated"):
        framing.parse_fragment(1, b"\x00" * 5)


def test_sender_answers_nacks_only_for_stored_messages_sent_to_the_asker():
    """A NACK for an unknown message, from a replica the message was not sent to, or
    with an index past the count is dropped with a reason."""
    sender = FragmentSender(CHUNK, 1 << 20)
    sender.split(2, 5, payload_of(3 * CHUNK))
    assert sender.on_nack(2, 6, (0,)) == ()
    assert sender.on_nack(1, 5, (0,)) == ()
    assert sender.on_nack(2, 5, (0, 3)) == ()
    assert [f.index for f in sender.on_nack(2, 5, (2, 0, 2))] == [0, 2]
    assert sender.drops == {"nack_unknown_message": 1, "nack_wrong_peer": 1, "nack_bad_index": 1}


def test_sender_store_is_bounded_in_bytes_and_evicts_the_oldest():
    """Messages beyond the store's bytes evict the oldest (counted); a message larger
    than the whole store is sent but not kept."""
    sender = FragmentSender(CHUNK, 1000)
    for counter in range(5):
        sender.split(1, counter, payload_of(300))
        assert sender.store_bytes <= 1000
    assert list(sender.store) == [2, 3, 4]
    assert sender.stats["fragment_store_evictions"] == 2
    assert sender.on_nack(1, 0, (0,)) == ()
    assert len(sender.split(1, 10, payload_of(1001))) == 11
    assert 10 not in sender.store
    assert sender.drops["fragment_store_too_small"] == 1


def test_receiver_buffer_is_bounded_in_bytes_and_messages():
    """Partial messages past the byte or message bound evict the least recently
    progressing one (counted); reserved bytes never exceed the bound."""
    sender = FragmentSender(CHUNK, 1 << 20)
    target = receiver(buffer_bytes_max=1000, messages_max=3)
    for counter in range(4):  # 300 bytes each: the fourth needs room (3 messages max)
        first = sender.split(1, counter, payload_of(300))[0]
        target.on_fragment(1, first, now=counter)
        assert target.reserved_bytes <= 1000
    assert list(target.partial) == [(1, 1), (1, 2), (1, 3)]
    assert target.stats["reassembly_evictions"] == 1
    # Progress on message 1 makes message 2 the next to go; a 900-byte message needs
    # three of them out.
    _target, message_1 = sender.store[1]
    target.on_fragment(1, message_1[1], now=10)
    big = sender.split(1, 50, payload_of(900))[0]
    target.on_fragment(1, big, now=11)
    assert list(target.partial) == [(1, 50)]
    assert target.reserved_bytes == 900
    assert target.stats["reassembly_evictions"] == 4
    too_big = sender.split(1, 51, payload_of(1001))[0]
    assert target.on_fragment(1, too_big, now=12) is None
    assert target.drops["fragment_oversized"] == 1


def test_small_payloads_are_not_split():
    """A payload that fits one fragment travels whole; the sender refuses to split it."""
    sender = FragmentSender(CHUNK, 1 << 20)
    assert not sender.needs_split(CHUNK)
    assert sender.needs_split(CHUNK + 1)
    with pytest.raises(AssertionError):
        sender.split(1, 1, b"x" * CHUNK)


def test_fragment_datagram_fits_the_bound():
    """A full fragment of the default size is 1240 bytes on the wire."""
    fragment = Fragment(1, 0, 2, 1300, 1200, b"x" * 1200)
    assert len(framing.seal_fragment(KEY, 0, fragment)) == 1200 + framing.FRAGMENT_OVERHEAD_BYTES
    assert framing.FRAGMENT_OVERHEAD_BYTES == 40
