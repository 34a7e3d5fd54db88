"""LowPaxos settings. Times are in ticks; the driver decides how long a tick is."""

from __future__ import annotations

from dataclasses import dataclass

from lowpaxos.protocols.common import peer_order_error


class ConfigError(ValueError):
    """A configuration that cannot run safely (for example quorums that do not intersect)."""


@dataclass(frozen=True, slots=True)
class LowPaxosConfig:
    replicas: int = 3
    # Flexible Paxos (Howard, Malkhi, Spiegelman 2016): phase-1 and phase-2 quorum sizes.
    # None means a majority. Safety needs |Q1| + |Q2| > N (every Q1 meets every Q2).
    q1: int | None = None
    q2: int | None = None
    # Thrifty phase 2: send Accept only to the Q2 - 1 followers needed, widen on delay.
    thrifty: bool = True
    # Which followers thrifty phase 2 prefers among the live ones: for each replica the
    # others, closest first (the simulator fills it from its latency matrix on the WAN);
    # None: the next replicas by id.
    peer_order: tuple[tuple[int, ...], ...] | None = None
    # Batching: many commands per slot, within one datagram's payload.
    batching: bool = True
    batch_bytes_max: int = 1200
    # Pipelining: slots proposed but not yet committed, at most.
    window_slots: int = 8
    # Bytes of batches proposed but not yet committed, at most (a slot holding one large
    # command may pass it alone): bounds memory and the size of a Promise.
    window_bytes_max: int = 2 << 20
    # Client commands queued at the leader beyond the window; more get BUSY.
    pending_commands_max: int = 1024
    heartbeat_ticks: int = 20
    election_ticks: int = 100  # a follower's timeout is drawn from [election_ticks, 2*election_ticks)
    accept_retry_ticks: int = 10  # an Accept unanswered this long is resent to every replica
    prepare_retry_ticks: int = 30
    catchup_retry_ticks: int = 10
    catchup_bytes_max: int = 32768  # several datagrams: the runtime fragments it
    # The commit point is written as a hint with other records, or alone after this long.
    commit_hint_ticks: int = 50
    # Cut the log in steps of this many applied slots (the KVS rows are persisted anyway).
    snapshot_slots: int = 64
    # Hold at most this many slots in memory even when a replica is down; the slow
    # replica then receives the state by transfer.
    log_slots_max: int = 512
    # ... and at most this many bytes of applied slots (the encoded-size estimate of their
    # commands): with large commands (an MSET of 500 pairs is 60 KB) a slot count alone
    # would let a replica's memory grow with the data while a peer is down.
    log_bytes_max: int = 8 << 20
    # State transfer: chunks per request (the window), bytes of rows per chunk (one
    # datagram), rows one chunk may examine, open images served at once, how long an
    # image serves before a request opens a newer one, when an unused one is closed,
    # and silent retries before the receiver asks another replica.
    transfer_window: int = 64
    transfer_chunk_bytes: int = 1100
    transfer_scan_rows_max: int = 4096
    images_max: int = 2
    image_reuse_ticks: int = 50
    image_idle_ticks: int = 500
    transfer_retries_per_source: int = 3
    # No chunk this long: ask again from the cursor (doubling with each silent retry, so
    # a slow link is not flooded with duplicate windows).
    transfer_retry_ticks: int = 10
    # Slots a replica serving a state transfer keeps beyond log_slots_max (from the image
    # on), so that the receiver can catch up through the log afterwards.
    transfer_log_slots_max: int = 4096
    transfer_log_bytes_max: int = 32 << 20
    # The invariants that walk the whole log run every this many steps (1: every step,
    # as the tests and the simulator do); the cheap ones run every step.
    invariant_full_scan_steps: int = 64
    # Tombstones of deleted keys are kept this many slots, so that an interrupted
    # transfer can resume from a newer image with only the rows changed since.
    tombstone_slots: int = 4096

    @property
    def quorum_phase1(self) -> int:
        return self.q1 if self.q1 is not None else self.replicas // 2 + 1

    @property
    def quorum_phase2(self) -> int:
        return self.q2 if self.q2 is not None else self.replicas // 2 + 1

    def validate(self) -> "LowPaxosConfig":
        n = self.replicas
        if n < 1:
            raise ConfigError(f"replicas must be at least 1, got {n}")
        q1, q2 = self.quorum_phase1, self.quorum_phase2
        if not (1 <= q1 <= n and 1 <= q2 <= n):
            raise ConfigError(f"quorums must lie in 1..{n}, got |Q1|={q1} |Q2|={q2}")
        if q1 + q2 <= n:
            raise ConfigError(
                f"|Q1| + |Q2| must exceed N so that every phase-1 quorum meets every "
                f"phase-2 quorum: {q1} + {q2} <= {n}"
            )
        for name in ("heartbeat_ticks", "election_ticks", "accept_retry_ticks",
                     "prepare_retry_ticks", "catchup_retry_ticks", "window_slots",
                     "snapshot_slots", "invariant_full_scan_steps", "window_bytes_max", "transfer_window", "transfer_scan_rows_max", "images_max",
                     "image_reuse_ticks", "image_idle_ticks", "transfer_retries_per_source",
                     "transfer_retry_ticks"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1")
        if self.heartbeat_ticks >= self.election_ticks:
            raise ConfigError("heartbeat_ticks must be below election_ticks")
        if self.log_slots_max < self.snapshot_slots + self.window_slots:
            raise ConfigError("log_slots_max must hold snapshot_slots + window_slots")
        if self.batch_bytes_max < 64 or self.catchup_bytes_max < 64 or \
                self.transfer_chunk_bytes < 64:
            raise ConfigError("batch_bytes_max, catchup_bytes_max and transfer_chunk_bytes "
                              "must be at least 64")
        if not self.batch_bytes_max <= self.log_bytes_max <= self.transfer_log_bytes_max:
            raise ConfigError("batch_bytes_max <= log_bytes_max <= transfer_log_bytes_max "
                              "must hold")
        if self.peer_order is not None:
            error = peer_order_error(self.peer_order, n)
            if error is not None:
                raise ConfigError(error)
        if self.tombstone_slots < 0 or self.transfer_log_slots_max < 0:
            raise ConfigError("tombstone_slots and transfer_log_slots_max must not be negative")
        return self
