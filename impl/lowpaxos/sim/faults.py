"""Faults as data: what goes wrong in a run, and when, decided up front from a seed.

A ``FaultPlan`` lists crashes (with their restart) and partitions (with their
heal) at virtual times, and the network's loss, duplication and reordering
rates. The simulator only carries the plan out, so a failing run is replayed
exactly from its seed, and a test can script a plan by hand.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Crash:
    time_us: int
    replica: int
    downtime_us: int  # restarted this long after the crash (unless the run ends first)


@dataclass(frozen=True, slots=True)
class Partition:
    time_us: int
    groups: tuple[tuple[int, ...], ...]  # replicas in different groups cannot talk
    duration_us: int  # healed this long after it starts


@dataclass(frozen=True, slots=True)
class FaultPlan:
    crashes: tuple[Crash, ...] = ()
    partitions: tuple[Partition, ...] = ()
    loss: float = 0.0  # probability that a message is lost
    dup: float = 0.0  # probability that a message is delivered twice
    reorder: float = 0.0  # probability that a message is held back by an extra delay
    reorder_delay_us_max: int = 5_000

    def __post_init__(self) -> None:
        for name in ("loss", "dup", "reorder"):
            rate = getattr(self, name)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be a probability, got {rate}")
        if self.reorder_delay_us_max < 1:
            raise ValueError("reorder_delay_us_max must be at least 1")

    def describe(self) -> str:
        parts = [f"{len(self.crashes)} crashes", f"{len(self.partitions)} partitions"]
        parts += [f"loss {self.loss:g}", f"dup {self.dup:g}", f"reorder {self.reorder:g}"]
        return ", ".join(parts)

    @staticmethod
    def random(
        rng: random.Random,
        replicas: int,
        window_us: int,
        tick_us: int,
        crashes: int = 0,
        partitions: int = 0,
        loss: float = 0.0,
        dup: float = 0.0,
        reorder: float = 0.0,
    ) -> "FaultPlan":
        """``crashes`` crashes and ``partitions`` partitions at uniform times in the
        window; downtimes and partition lengths of 20 to 150 ticks, long enough to
        force elections (with the default 100-tick election timeout) but not always."""
        assert window_us >= 1 and tick_us >= 1
        crash_list = [
            Crash(
                time_us=rng.randrange(window_us),
                replica=rng.randrange(replicas),
                downtime_us=rng.randint(20, 150) * tick_us,
            )
            for _ in range(crashes)
        ]
        partition_list = []
        for _ in range(partitions if replicas > 1 else 0):
            members = list(range(replicas))
            rng.shuffle(members)
            split = rng.randint(1, replicas - 1)
            groups = (tuple(sorted(members[:split])), tuple(sorted(members[split:])))
            partition_list.append(
                Partition(rng.randrange(window_us), groups, rng.randint(20, 150) * tick_us)
            )
        return FaultPlan(
            crashes=tuple(sorted(crash_list, key=lambda c: (c.time_us, c.replica))),
            partitions=tuple(sorted(partition_list, key=lambda p: (p.time_us, p.groups))),
            loss=loss,
            dup=dup,
            reorder=reorder,
            reorder_delay_us_max=max(1, 5 * tick_us),
        )



@dataclass(frozen=True, slots=True)
class LinkCut:
    """Links between replicas cut for a while: any shape, not only groups. A bridge
    (one link cut, a replica in the middle talking to both sides) is the partition a
    group list cannot express; the driver applies these through Simulator.cut_links."""

    time_us: int
    links: tuple[tuple[int, int], ...]  # (a, b) with a < b
    duration_us: int


def hostile_plan(rng: random.Random, replicas: int, window_us: int, tick_us: int,
                 election_ticks: int = 100) -> tuple[FaultPlan, tuple[LinkCut, ...]]:
    """A schedule that favours what breaks Paxos (issue 12), for seeded sweeps: a
    FaultPlan (crashes and the network's rates) and a timeline of link cuts.

    The cuts follow one another over the whole window, each one replica cut off (in a
    leader-based protocol, often the leader with its proposals in flight), every
    replica alone (all campaign, rounds climb and collide), or a bridge (one link cut:
    two candidates that cannot hear each other both reach the replica between them),
    lasting from a quarter of an election timeout to three, so that leaders change
    while accepts are in flight and candidates compete. Crash-restarts of random
    replicas at random times restart from lagging disk state. Loss and duplication,
    and reordering with delays up to two election timeouts, so that messages of an old
    ballot arrive after a new one took over. Everything is drawn from ``rng``.
    """
    assert window_us >= 1 and tick_us >= 1 and replicas >= 1 and election_ticks >= 1
    election_us = election_ticks * tick_us
    pairs = [(a, b) for a in range(replicas) for b in range(a + 1, replicas)]
    cuts = []
    time_us = rng.randrange(election_us)
    while pairs and time_us < window_us:
        shape = rng.random()
        if shape < 0.25:
            links = tuple(pairs)  # everyone alone
        elif shape < 0.6:
            isolated = rng.randrange(replicas)
            links = tuple(pair for pair in pairs if isolated in pair)
        else:
            links = (rng.choice(pairs),)  # a bridge
        duration_us = rng.randint(election_us // 4, 3 * election_us)
        cuts.append(LinkCut(time_us, links, duration_us))
        # Healed for a while (a new leader settles, or does not quite), then the next.
        time_us += duration_us + rng.randint(election_us // 10, 2 * election_us)
    crashes = [
        Crash(rng.randrange(window_us), rng.randrange(replicas),
              rng.randint(election_us // 5, 3 * election_us))
        for _ in range(rng.randint(1, max(1, window_us // (2 * election_us))))
    ]
    plan = FaultPlan(
        crashes=tuple(sorted(crashes, key=lambda c: (c.time_us, c.replica))),
        loss=rng.choice((0.0, 0.02, 0.1)),
        dup=rng.choice((0.0, 0.05)),
        reorder=rng.choice((0.05, 0.2)),
        reorder_delay_us_max=max(1, rng.randint(1, 2) * election_us),
    )
    return plan, tuple(cuts)
