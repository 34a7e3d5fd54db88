"""A hand-driven network for core unit tests: every message a core sends is recorded
and queued, and a test decides what is delivered, dropped or duplicated (500 Lines'
cluster tests record every message the same way)."""

from __future__ import annotations

import random
from collections import deque

from lowpaxos.core.api import ClientReply, ClientRequest, Command, Effects
from lowpaxos.protocols.registry import PROTOCOLS


class Cluster:
    def __init__(self, replicas: int = 3, seed: int = 0, **options) -> None:
        spec = PROTOCOLS["lowpaxos"]
        self.spec = spec
        options.setdefault("invariant_full_scan_steps", 1)  # every invariant, every step
        self.config = spec.make_config(replicas, **options)
        self.seed = seed
        self.durable = [spec.new_durable() for _ in range(replicas)]
        self.cores = [self._make(i) for i in range(replicas)]
        self.queue: deque[tuple[int, int, object]] = deque()
        self.sent: list[tuple[int, int, object]] = []
        self.replies: list[ClientReply] = []
        self.applied: list[tuple[int, object]] = []
        self.down: set[int] = set()
        self.cut: set[frozenset[int]] = set()
        self.request_ids: dict[int, int] = {}

    def _make(self, replica: int):
        rng = random.Random(self.seed * 1000 + replica)
        return self.spec.make_core(self.config, replica, rng, self.durable[replica].copy(), False)

    # Carrying out effects in the binding order: persist, send, reply, applied.
    def carry_out(self, replica: int, effects: Effects) -> Effects:
        for record in effects.persist:
            self.durable[replica].apply(record)
        for target, message in effects.send:
            self.sent.append((replica, target, message))
            self.queue.append((replica, target, message))
        self.replies.extend(effects.reply)
        self.applied.extend((replica, a) for a in effects.applied)
        return effects

    def tick(self, replica: int, count: int = 1) -> None:
        for _ in range(count):
            if replica not in self.down:
                self.carry_out(replica, self.cores[replica].on_tick())

    def tick_all(self, count: int = 1, deliver: bool = True) -> None:
        for _ in range(count):
            for replica in range(len(self.cores)):
                self.tick(replica)
            if deliver:
                self.deliver_all()

    def deliver_one(self) -> tuple[int, int, object] | None:
        if not self.queue:
            return None
        source, target, message = self.queue.popleft()
        if target in self.down or frozenset((source, target)) in self.cut:
            return (source, target, message)
        self.carry_out(target, self.cores[target].on_message(source, message))
        return (source, target, message)

    def deliver_all(self, limit: int = 100_000) -> int:
        count = 0
        while self.queue and count < limit:
            self.deliver_one()
            count += 1
        assert not self.queue, "delivery bounded: the cluster kept talking"
        return count

    def drop_all(self) -> list[tuple[int, int, object]]:
        dropped = list(self.queue)
        self.queue.clear()
        return dropped

    def take(self, kind: type) -> list[tuple[int, int, object]]:
        """Remove and return the queued messages of one type."""
        taken = [item for item in self.queue if isinstance(item[2], kind)]
        self.queue = deque(item for item in self.queue if not isinstance(item[2], kind))
        return taken

    def crash(self, replica: int) -> None:
        self.down.add(replica)

    def restart(self, replica: int) -> None:
        self.down.discard(replica)
        self.cores[replica] = self._make(replica)

    def elect(self, replica: int, max_rounds: int = 1000) -> None:
        """Make ``replica`` start an election now and run until it leads."""
        core = self.cores[replica]
        # Position the scenario: the others take the old leader as silent for long enough
        # and do not campaign themselves meanwhile.
        for other, peer in enumerate(self.cores):
            if other != replica and other not in self.down:
                peer.leader_heard_tick = -(10**9)
                peer.election_deadline = peer.now + 10**6
        self.carry_out(replica, _start_election(core))
        for _ in range(max_rounds):
            self.deliver_all()
            if core.role.name == "LEADER":
                return
            self.tick_all()
        raise AssertionError(f"replica {replica} did not become leader")

    def leader(self):
        leaders = [c for i, c in enumerate(self.cores) if c.role.name == "LEADER" and i not in self.down]
        return leaders[-1] if leaders else None

    def submit(self, replica: int, client: int, op: str, key: str, value: bytes | None = None,
               expected: bytes | None = None) -> Command:
        request_id = self.request_ids.get(client, 0) + 1
        self.request_ids[client] = request_id
        command = Command(client, request_id, op, key, value, expected)
        self.carry_out(replica, self.cores[replica].on_client_request(ClientRequest(command)))
        return command

    def ok_replies(self) -> list[ClientReply]:
        return [r for r in self.replies if r.status.value == "ok"]


def _start_election(core) -> Effects:
    effects = Effects()
    core.start_election(effects)
    core.check_invariants()
    return effects
