"""VR Revisited settings. Times are in ticks; the driver decides how long a tick is."""

from __future__ import annotations

from dataclasses import dataclass

DISK_MODES = ("sync", "none")


class ConfigError(ValueError):
    """A configuration VR cannot run with."""


@dataclass(frozen=True, slots=True)
class VRConfig:
    replicas: int = 3
    # "sync": view, status and log written before anything is sent (like LowPaxos), so
    # a replica restarts from its disk and the whole cluster survives a full restart.
    # "none": the paper's diskless replicas (§4.3): a restarted replica has lost
    # everything and recovers from the others by the nonce protocol. Safe only while at
    # most f replicas are down at once; a full-cluster restart loses the data.
    disk: str = "sync"
    # Batching (§6.2) and pipelining, as in LowPaxos: a Prepare holds a batch bounded
    # by one datagram's payload, at most window_slots ops are prepared but not yet
    # committed, a bounded queue beyond that, and BUSY replies past it.
    batching: bool = True
    batch_bytes_max: int = 1200
    window_slots: int = 8
    window_bytes_max: int = 2 << 20
    pending_commands_max: int = 1024
    # The primary sends Commit after this long without sending to a backup (§4.1 step 6).
    commit_ticks: int = 20
    # A backup that hears nothing from the primary for a timeout drawn from
    # [view_change_ticks, 2 * view_change_ticks) starts a view change (§4.2); a view
    # change that does not finish in such a timeout moves on to the next view.
    view_change_ticks: int = 100
    prepare_retry_ticks: int = 10
    state_retry_ticks: int = 10  # GetState unanswered this long is sent again
    recovery_retry_ticks: int = 20  # Recovery unanswered this long is sent again
    # The largest NewState, in estimated bytes; a longer log suffix is sent as its
    # committed part, and the receiver asks again.
    state_bytes_max: int = 1 << 20
    # Checkpoints (§5.1): cut the log in steps of snapshot_slots applied ops, below what
    # every replica has executed, or below our own commit past log_slots_max ops.
    snapshot_slots: int = 64
    log_slots_max: int = 512
    # Chunked state transfer of the KVS rows (transfer.py), as LowPaxos does it.
    transfer_window: int = 64
    transfer_chunk_bytes: int = 1100
    transfer_scan_rows_max: int = 4096
    images_max: int = 2
    image_reuse_ticks: int = 50
    image_idle_ticks: int = 500
    transfer_retry_ticks: int = 10
    transfer_retries_per_source: int = 3
    # Ops a replica serving an image keeps beyond log_slots_max, so that the receiver
    # can continue from the image through the log.
    transfer_log_slots_max: int = 4096
    tombstone_slots: int = 4096
    commit_hint_ticks: int = 50
    invariant_full_scan_steps: int = 64

    @property
    def f(self) -> int:
        """Failures tolerated: N = 2f + 1 (an even N tolerates (N - 1) // 2)."""
        return (self.replicas - 1) // 2

    @property
    def quorum(self) -> int:
        """f + 1 for N = 2f + 1: a majority, so that any two quorums meet (§3)."""
        return self.replicas // 2 + 1

    def validate(self) -> "VRConfig":
        if not isinstance(self.replicas, int) or self.replicas < 1:
            raise ConfigError(f"replicas must be at least 1, got {self.replicas!r}")
        if self.disk not in DISK_MODES:
            raise ConfigError(f"disk must be one of {', '.join(DISK_MODES)}, got {self.disk!r}")
        for name in ("commit_ticks", "view_change_ticks", "prepare_retry_ticks",
                     "state_retry_ticks", "recovery_retry_ticks", "window_slots",
                     "window_bytes_max", "snapshot_slots", "transfer_window",
                     "transfer_scan_rows_max", "images_max", "image_reuse_ticks",
                     "image_idle_ticks", "transfer_retry_ticks", "transfer_retries_per_source",
                     "invariant_full_scan_steps", "commit_hint_ticks", "pending_commands_max"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1")
        if self.commit_ticks >= self.view_change_ticks:
            raise ConfigError("commit_ticks must be below view_change_ticks")
        if self.log_slots_max < self.snapshot_slots + self.window_slots:
            raise ConfigError("log_slots_max must hold snapshot_slots + window_slots")
        if self.batch_bytes_max < 64 or self.transfer_chunk_bytes < 64:
            raise ConfigError("batch_bytes_max and transfer_chunk_bytes must be at least 64")
        if self.state_bytes_max < self.batch_bytes_max:
            raise ConfigError("state_bytes_max must hold one batch")
        if self.tombstone_slots < 0 or self.transfer_log_slots_max < 0:
            raise ConfigError("tombstone_slots and transfer_log_slots_max must not be negative")
        return self
