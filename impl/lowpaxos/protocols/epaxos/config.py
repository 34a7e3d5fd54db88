"""EPaxos settings. Times are in ticks; the driver decides how long a tick is."""

from __future__ import annotations

from dataclasses import dataclass

from lowpaxos.protocols.common import peer_order_error

# Replica ids fit the durable entry layout (durable.py: one deps column per replica).
REPLICAS_MAX = 9


class ConfigError(ValueError):
    """A configuration EPaxos cannot run with."""


@dataclass(frozen=True, slots=True)
class EPaxosConfig:
    replicas: int = 3
    # SOSP §4.3's simple fast quorum: 2F replicas including the command leader (N - 1).
    # With it, recovery by explicit prepare alone is correct (TR §4.5's TryPreAccept and
    # EPaxos*'s validation phase are not needed; docs/epaxos.md). None: 2F. Any other
    # value is UNSAFE for N >= 5 and accepted only for negative checks (spec, mutants).
    fast_quorum: int | None = None
    # Thrifty (SOSP §4.3): PreAccept to the fast quorum's other members only, the closest
    # first (``peer_order``: for each replica the others by proximity; None: by id
    # distance), and to every peer when replies are missing after preaccept_retry_ticks.
    thrifty: bool = True
    peer_order: tuple[tuple[int, ...], ...] | None = None
    # Batching per instance, bounded in bytes; at most window_instances own instances
    # in flight (proposed, not committed), a bounded queue beyond, BUSY past it.
    batching: bool = True
    batch_bytes_max: int = 1200
    window_instances: int = 8
    pending_commands_max: int = 1024
    preaccept_retry_ticks: int = 10
    accept_retry_ticks: int = 10
    # An instance this replica waits on (a dependency it cannot execute, or a pre-accepted
    # instance of another replica) that stays uncommitted for a timeout drawn from
    # [recovery_ticks, 2 * recovery_ticks) is recovered by explicit prepare (TR §4.5).
    recovery_ticks: int = 100
    prepare_retry_ticks: int = 20
    recoveries_started_per_tick_max: int = 8
    # Every status_ticks, a Status with our executed and committed frontiers to every
    # peer: the others re-send up to commit_resend_max Commits of their own instances
    # above our committed frontier, and all collect what every replica has executed.
    status_ticks: int = 10
    commit_resend_max: int = 16
    # Collect executed instances in steps of at least collect_instances; save the KVS
    # rows at least every rows_persist_ticks while executing.
    collect_instances: int = 64
    rows_persist_ticks: int = 50
    invariant_full_scan_steps: int = 64

    @property
    def f(self) -> int:
        """Failures tolerated: N = 2F + 1."""
        return (self.replicas - 1) // 2

    @property
    def quorum(self) -> int:
        """F + 1: a majority, the slow path's and recovery's quorum (SOSP §4.3)."""
        return self.f + 1

    @property
    def fast_quorum_size(self) -> int:
        """Replicas of the fast quorum, the command leader included."""
        if self.fast_quorum is not None:
            return self.fast_quorum
        return max(2 * self.f, 1)

    def peers_by_proximity(self, replica: int) -> tuple[int, ...]:
        if self.peer_order is not None:
            return tuple(self.peer_order[replica])
        others = [r for r in range(self.replicas) if r != replica]
        return tuple(sorted(others, key=lambda r: (min(abs(r - replica),
                                                       self.replicas - abs(r - replica)), r)))

    def validate(self) -> "EPaxosConfig":
        if not isinstance(self.replicas, int) or not 1 <= self.replicas <= REPLICAS_MAX:
            raise ConfigError(f"replicas must be 1..{REPLICAS_MAX}, got {self.replicas!r}")
        if self.replicas % 2 == 0:
            raise ConfigError(f"EPaxos runs N = 2F + 1 replicas; {self.replicas} is even")
        if self.fast_quorum is not None and (
                not isinstance(self.fast_quorum, int)
                or not self.quorum <= self.fast_quorum <= self.replicas):
            raise ConfigError(f"fast_quorum must be {self.quorum}..{self.replicas} "
                              f"(default {2 * self.f}), got {self.fast_quorum!r}")
        if self.peer_order is not None:
            error = peer_order_error(self.peer_order, self.replicas)
            if error is not None:
                raise ConfigError(error)
        for name in ("window_instances", "pending_commands_max", "preaccept_retry_ticks",
                     "accept_retry_ticks", "recovery_ticks", "prepare_retry_ticks",
                     "recoveries_started_per_tick_max", "status_ticks", "commit_resend_max",
                     "collect_instances", "rows_persist_ticks", "invariant_full_scan_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be an integer of at least 1, got {value!r}")
        if self.batch_bytes_max < 64:
            raise ConfigError("batch_bytes_max must be at least 64")
        if self.recovery_ticks <= self.preaccept_retry_ticks:
            raise ConfigError("recovery_ticks must be above preaccept_retry_ticks")
        return self
