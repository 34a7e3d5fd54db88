"""A seeded discrete-event simulator that drives any protocol core.

Theory of operation
-------------------
Virtual time is an integer count of microseconds. Every future event (a
message delivery, a replica's tick, a client's retry or timeout, a planned
fault) sits in one heap ordered by ``(time_us, sequence)``; the sequence number
breaks ties in scheduling order, so a run is a pure function of its seed
(TigerBeetle's VOPR and FoundationDB's simulator work the same way). All
randomness comes from generators derived from that seed, one per purpose, so
that, for example, a change in the workload does not shift the network's draws.

Replicas are a core plus a durable state (the simulated disk). Each step's
``Effects`` are carried out in the order core/api.py prescribes: persist (apply
every record to the disk), send, reply, applied. A crash throws the core away
and keeps only the disk; a restart builds a new core from a copy of the disk.

Every message crosses the network as bytes: it is encoded with the wire codec
when sent (its size counted) and decoded on delivery, so the codec is exercised
on every hop and a codec failure shows up as a counted drop. The network knobs
(loss, duplication, reordering, partitions) act on the bytes in flight, and a
test can also take the network over by hand through ``pending_messages``,
``deliver_now``, ``drop`` and ``duplicate``.

Every event has a one-line text form; the SHA-256 of all lines is the run's
``trace_digest``, so two runs are the same run exactly when their digests match.

Client histories carry two times per operation. ``invoke_us``/``response_us``
are virtual microseconds (for latencies). ``invoke_stamp``/``response_stamp``
order the history for the linearizability checker: a client issues its next
request inside the very event that delivers the previous reply, so both carry
the same microsecond, and the checker takes equal stamps as overlapping. That
would let a client read back a value older than its own last write and pass.
The simulator runs one event at a time, so of two history events the one
handled first really happened first: the stamp is the virtual time in
nanoseconds (``now_us * STAMPS_PER_US``) raised past the previous stamp when
needed (``check.StrictClock``). Stamps never tie, and they order events as
``(time_us, event sequence)`` does.
"""

from __future__ import annotations

import hashlib
import heapq
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

from lowpaxos import codec
from lowpaxos.check.linearizability import Operation, StrictClock
from lowpaxos.core.api import OPS, ClientReply, ClientRequest, Command, Effects, ReplyStatus
from lowpaxos.sim.faults import FaultPlan
from lowpaxos.sim.topology import Topology, lan, replica_site

# Event kinds in the heap.
_DELIVER, _TICK, _CLIENT_WAKE, _CLIENT_TIMEOUT, _FAULT = range(5)

# History stamps per virtual microsecond: a stamp reads as virtual nanoseconds.
STAMPS_PER_US = 1_000

DEFAULT_OP_MIX = {"get": 0.50, "put": 0.40, "delete": 0.05, "cas": 0.05}

# The shared key of a ``conflicts`` workload (SimOptions.conflicts).
HOT_KEY = "hot"


@dataclass(frozen=True, slots=True)
class SimOptions:
    """Everything that shapes a run besides the protocol: same options and seed, same run."""

    replicas: int = 3
    clients: int = 4
    ops: int = 100  # logical client requests issued in total
    seed: int = 1
    keys: int = 10
    value_bytes: int = 0  # writes carry values padded to at least this many bytes
    op_mix: tuple[tuple[str, float], ...] = tuple(DEFAULT_OP_MIX.items())
    tick_us: int = 1_000
    client_timeout_us: int = 50_000
    client_backoff_us: int = 2_000  # first BUSY back-off; doubles up to 32 times this
    topology: Topology = field(default_factory=lan)
    print_events: Callable[[str], None] | None = None  # called with every event line
    core_trace: bool = False
    # Called with every spec-level trace event (a dict, see docs/conformance.md); setting
    # it turns the cores' tracing on. None (the default) costs nothing.
    trace_events: Callable[[dict], None] | None = None
    # A conflict rate in percent, as in the EPaxos paper's evaluation (SOSP 2013, §6:
    # the fraction of commands on one shared key): each command goes to the one shared
    # key HOT_KEY with this probability, else to one of ``keys`` keys private to its
    # client ("c<client>.k<i>"), which no other client touches. None: every command
    # picks one of ``keys`` keys shared by all clients ("k<i>"), as before.
    conflicts: float | None = None

    def __post_init__(self) -> None:
        if self.replicas < 1 or self.clients < 0 or self.ops < 0 or self.keys < 1 or \
                self.value_bytes < 0:
            raise ValueError("replicas and keys must be at least 1; clients and ops at least 0")
        if self.tick_us < 1 or self.client_timeout_us < 1 or self.client_backoff_us < 1:
            raise ValueError("tick_us, client_timeout_us and client_backoff_us must be positive")
        for op, weight in self.op_mix:
            if op not in OPS or weight < 0:
                raise ValueError(f"bad op mix entry {op!r}: {weight}")
        if sum(weight for _, weight in self.op_mix) <= 0:
            raise ValueError("the op mix needs a positive weight")
        if self.conflicts is not None and not 0 <= self.conflicts <= 100:
            raise ValueError(f"conflicts is a percentage in 0..100, got {self.conflicts}")


@dataclass(slots=True)
class InFlight:
    """One message on the wire, as bytes, with where and when it lands."""

    msg_id: int
    source: int  # node id: replicas are 0..n-1, clients n..n+c-1
    target: int
    data: bytes
    type_name: str
    sent_us: int
    deliver_us: int


@dataclass(slots=True)
class OperationRecord:
    """What a client saw of one logical request (becomes a checker Operation).

    ``*_us`` are virtual times; ``*_stamp`` order the history (module docstring).
    """

    client_id: int
    request_id: int
    op: str
    key: str
    value: bytes | None
    expected: bytes | None
    invoke_us: int
    invoke_stamp: int
    response_us: int | None = None
    response_stamp: int | None = None
    result: bytes | bool | None = None

    def operation(self) -> Operation:
        """This request as the checker takes it, ordered by stamps."""
        return Operation(self.client_id, self.op, self.key, self.value, self.expected,
                         self.invoke_stamp, self.response_stamp, self.result)


@dataclass(slots=True)
class _Replica:
    replica_id: int
    durable: Any
    core: Any = None  # None while crashed
    incarnation: int = 0


@dataclass(slots=True)
class _Client:
    index: int
    node: int
    client_id: int
    site: int
    leader_guess: int
    command: Command | None = None  # the outstanding request, at most one
    record: OperationRecord | None = None
    next_request_id: int = 1
    token: int = 0  # bumped on every send and every answer; stale timers carry an old one
    busy_retries: int = 0
    redirects: int = 0  # NOT_LEADER hops without a pause, bounded (see _on_not_leader)
    last_seen: dict[str, bytes | None] = field(default_factory=dict)


class Simulator:
    """Drives ``spec`` cores (see lowpaxos.protocols.registry) over a simulated network."""

    REDIRECTS_MAX = 3  # NOT_LEADER hops followed at once before a client pauses

    def __init__(self, spec: Any, config: Any, options: SimOptions, plan: FaultPlan | None = None):
        self.spec = spec
        self.config = config
        self.options = options
        self.plan = plan if plan is not None else FaultPlan()
        seed_rng = random.Random(options.seed)
        # One generator per purpose, derived in a fixed order from the one seed.
        self.network_rng = random.Random(seed_rng.getrandbits(64))
        self.workload_rng = random.Random(seed_rng.getrandbits(64))
        self.core_seed_rng = random.Random(seed_rng.getrandbits(64))
        self.fault_rng = random.Random(seed_rng.getrandbits(64))

        self.now_us = 0
        self._heap: list[tuple[int, int, int, int, int]] = []
        self._sequence = 0
        self._in_flight: dict[int, InFlight] = {}
        self._next_msg_id = 1
        # While a traced step sends: the ids given to the message being sent.
        self._launched_ids: list[int] | None = None
        self._digest = hashlib.sha256()
        self.events = 0

        n = options.replicas
        self.replica_count = n
        self.loss = self.plan.loss
        self.dup = self.plan.dup
        self.reorder = self.plan.reorder
        self.reorder_delay_us_max = self.plan.reorder_delay_us_max
        self.cut_links: set[tuple[int, int]] = set()  # (a, b) with a < b, replicas only
        self.faults_enabled = True
        self.faults_injected: Counter[str] = Counter()

        # Accounting.
        self.replica_messages = 0
        self.replica_bytes = 0
        self.client_messages = 0
        self.client_bytes = 0
        self.drops: Counter[str] = Counter()
        self._retired_core_drops: Counter[str] = Counter()
        # protocol_metrics() of every core crashed so far (see protocol_metrics).
        self._retired_core_metrics: list[dict] = []
        self.applied = 0

        # Sites: replicas round-robin over the topology's sites, clients round-robin
        # over the sites that hold a replica (a client talks to a nearby replica first).
        self.node_site = [replica_site(r, options.topology) for r in range(n)]
        replica_sites = sorted(set(self.node_site))

        self.replicas = [_Replica(r, spec.new_durable()) for r in range(n)]
        for replica in self.replicas:
            self._start_core(replica, durable=None)

        self.clients: list[_Client] = []
        self.client_by_id: dict[int, _Client] = {}
        for index in range(options.clients):
            site = replica_sites[index % len(replica_sites)]
            local = [r for r in range(n) if self.node_site[r] == site]
            client = _Client(
                index=index,
                node=n + index,
                client_id=index + 1,
                site=site,
                leader_guess=self.workload_rng.choice(local),
            )
            self.node_site.append(site)
            self.clients.append(client)
            self.client_by_id[client.client_id] = client
        self.ops_issued = 0
        self.history: list[OperationRecord] = []
        self._history_clock = StrictClock()
        self._op_names = [op for op, _ in options.op_mix]
        self._op_weights = [weight for _, weight in options.op_mix]

        for client in self.clients:
            # Staggered starts within the first tick, so clients do not move in lockstep.
            self._push(self.workload_rng.randrange(options.tick_us), _CLIENT_WAKE, client.index, 0)

        self._faults: list[tuple[str, Any]] = []
        for crash in self.plan.crashes:
            self._schedule_fault(crash.time_us, ("crash", crash.replica))
            self._schedule_fault(crash.time_us + crash.downtime_us, ("restart", crash.replica))
        for partition in self.plan.partitions:
            self._schedule_fault(partition.time_us, ("partition", partition.groups))
            self._schedule_fault(partition.time_us + partition.duration_us, ("heal", None))

    # ------------------------------------------------------------------ events

    def _push(self, time_us: int, kind: int, a: int, b: int) -> None:
        self._sequence += 1
        heapq.heappush(self._heap, (time_us, self._sequence, kind, a, b))

    def _schedule_fault(self, time_us: int, action: tuple[str, Any]) -> None:
        self._faults.append(action)
        self._push(time_us, _FAULT, len(self._faults) - 1, 0)

    def _log(self, line: str) -> None:
        """Record one event: it counts, it feeds the digest, and it may be printed."""
        text = f"t={self.now_us} {line}"
        self.events += 1
        self._digest.update(text.encode())
        self._digest.update(b"\n")
        if self.options.print_events is not None:
            self.options.print_events(text)

    @property
    def trace_digest(self) -> str:
        return self._digest.hexdigest()

    def step(self) -> bool:
        """Run the next event; False when nothing is scheduled."""
        heap = self._heap
        while heap:
            time_us, _, kind, a, b = heapq.heappop(heap)
            if kind == _DELIVER:
                flight = self._in_flight.pop(a, None)
                if flight is None:
                    continue  # taken by drop() or deliver_now(): not an event
                self.now_us = time_us
                self._deliver(flight)
                return True
            if kind == _TICK:
                replica = self.replicas[a]
                if replica.core is None or replica.incarnation != b:
                    continue  # the tick chain of a crashed incarnation ends here
                self.now_us = time_us
                self._push(time_us + self.options.tick_us, _TICK, a, b)
                self._run_core(replica, "tick", replica.core.on_tick)
                return True
            client = self.clients[a] if kind in (_CLIENT_WAKE, _CLIENT_TIMEOUT) else None
            if client is not None:
                if b != client.token:
                    continue  # superseded by a reply or a later send
                self.now_us = time_us
                if kind == _CLIENT_WAKE:
                    self._client_wake(client)
                else:
                    self._client_timeout(client)
                return True
            assert kind == _FAULT, f"unknown event kind {kind}"
            if not self.faults_enabled:
                continue
            self.now_us = time_us
            self._carry_out_fault(self._faults[a])
            return True
        return False

    def run_until(self, time_us: int, events_max: int = 10_000_000) -> None:
        """Run every event scheduled up to ``time_us`` (at most ``events_max``), then
        set the clock to ``time_us``."""
        assert time_us >= self.now_us, "time does not go back"
        for _ in range(events_max):
            if not self._heap or self._heap[0][0] > time_us:
                break
            self.step()
        if not self._heap or self._heap[0][0] > time_us:
            self.now_us = time_us

    def run_while(
        self,
        busy: Callable[[], bool],
        time_us_max: int,
        events_max: int = 10_000_000,
        wall_s_max: float = 300.0,
        check_every_events: int = 64,
    ) -> bool:
        """Run while ``busy()`` holds, bounded by virtual time, event count and wall time;
        True when ``busy()`` turned false within the bounds."""
        deadline = time.monotonic() + wall_s_max
        for count in range(events_max):
            if count % check_every_events == 0:
                if not busy():
                    return True
                if count % 4096 == 0 and time.monotonic() > deadline:
                    return False
            if not self._heap or self._heap[0][0] > time_us_max:
                return not busy()
            self.step()
        return not busy()

    def run_until_quiet(self, time_us_max: int, events_max: int = 10_000_000,
                        wall_s_max: float = 300.0) -> bool:
        """Run until every client has issued and completed all its work (bounded)."""
        return self.run_while(lambda: not self.clients_done(), time_us_max, events_max, wall_s_max)

    # ------------------------------------------------------------------ replicas

    def _start_core(self, replica: _Replica, durable: Any) -> None:
        replica.incarnation += 1
        rng = random.Random(self.core_seed_rng.getrandbits(64))
        replica.core = self.spec.make_core(
            self.config, replica.replica_id, rng, durable,
            self.options.core_trace or self.options.trace_events is not None,
        )
        # Replicas tick at evenly spread phases of the tick period.
        phase_us = self.options.tick_us * replica.replica_id // self.replica_count
        first_us = self.now_us - self.now_us % self.options.tick_us + phase_us
        if first_us <= self.now_us:
            first_us += self.options.tick_us
        self._push(first_us, _TICK, replica.replica_id, replica.incarnation)

    def _run_core(self, replica: _Replica, what: str, call: Callable[..., Effects], *args,
                  received: InFlight | None = None) -> None:
        effects = call(*args)
        self._carry_out(replica, what, effects, received)

    def _carry_out(self, replica: _Replica, what: str, effects: Effects,
                   received: InFlight | None = None) -> None:
        """core/api.py order: persist, then send, then reply, then applied."""
        for record in effects.persist:
            replica.durable.apply(record)
        source = replica.replica_id
        sent = []
        tracing = self.options.trace_events is not None and effects.trace
        sent_ids: list[list[int]] = []
        for target, message in effects.send:
            assert 0 <= target < self.replica_count, f"r{source} sends to unknown replica {target}"
            assert target != source, f"r{source} sends to itself"
            if tracing:
                self._launched_ids = []
                sent_ids.append(self._launched_ids)
            sent.append(self._send(source, target, message))
        self._launched_ids = None
        if tracing:
            self._write_trace(replica, effects, received, sent_ids)
        for reply in effects.reply:
            client = self.client_by_id.get(reply.client_id)
            if client is None:
                self.drops["sim:reply_to_unknown_client"] += 1
                continue
            sent.append(self._send(source, client.node, reply))
        self.applied += len(effects.applied)
        self._log(
            f"r{source} {what} p{len(effects.persist)} a{len(effects.applied)}"
            + (" -> " + " ".join(sent) if sent else "")
        )
        if self.options.print_events is not None:
            for event in effects.trace:
                self.options.print_events(f"    r{source} {event}")

    def _write_trace(self, replica: _Replica, effects: Effects, received: InFlight | None,
                     sent_ids: list[list[int]]) -> None:
        """Hand the step's spec events to ``trace_events``, with the ids of the messages:
        every event of a step carries the step number and, for a receive, the id, sender
        and receiver of the message handled; the step's last event lists what it sent
        (ids empty for a message the network lost or cut, two for a duplicated one)."""
        step = self.events + 1  # the number _log gives this step's event line
        describe = getattr(replica.core, "describe_message", None)
        events = effects.trace
        for event in events:
            event["step"] = step
            event["time_us"] = self.now_us
            if received is not None:
                event["received"] = {"id": received.msg_id, "sender": received.source,
                                     "receiver": received.target}
        events[-1]["sent"] = [
            {"ids": ids, "target": target,
             "message": describe(message) if describe is not None else type(message).__name__}
            for (target, message), ids in zip(effects.send, sent_ids)
        ]
        for event in events:
            self.options.trace_events(event)

    def crash(self, replica_id: int) -> bool:
        """Destroy the core (all volatile state); the durable state stays. False if down."""
        replica = self.replicas[replica_id]
        if replica.core is None:
            return False
        self._retired_core_drops.update(replica.core.drop_counts())
        metrics = getattr(replica.core, "protocol_metrics", None)
        if metrics is not None:
            self._retired_core_metrics.append(dict(metrics()))
        replica.core = None
        replica.incarnation += 1  # stops the tick chain
        self._log(f"r{replica_id} crash")
        if self.options.trace_events is not None:
            self.options.trace_events({"action": "Crash", "replica": replica_id,
                                       "step": self.events, "time_us": self.now_us})
        return True

    def restart(self, replica_id: int) -> bool:
        """Build a new core from a copy of the durable state. False if already up."""
        replica = self.replicas[replica_id]
        if replica.core is not None:
            return False
        self._start_core(replica, replica.durable.copy())
        self._log(f"r{replica_id} restart")
        if self.options.trace_events is not None:
            state = getattr(replica.core, "spec_state", None)
            self.options.trace_events({"action": "Restart", "replica": replica_id,
                                       "state": state() if state is not None else None,
                                       "step": self.events, "time_us": self.now_us})
        return True

    def live_replicas(self) -> list[int]:
        return [r.replica_id for r in self.replicas if r.core is not None]

    def cores(self) -> list[Any]:
        return [r.core for r in self.replicas]

    # ------------------------------------------------------------------ network

    def node_name(self, node: int) -> str:
        if node < self.replica_count:
            return f"r{node}"
        return f"c{self.clients[node - self.replica_count].client_id}"

    def _link_cut(self, source: int, target: int) -> bool:
        if source >= self.replica_count or target >= self.replica_count:
            return False  # partitions split replicas; clients keep their links
        return (min(source, target), max(source, target)) in self.cut_links

    def _send(self, source: int, target: int, message: Any) -> str:
        """Put ``message`` on the wire; returns its short form for the event line."""
        try:
            data = codec.encode(message)
        except codec.EncodeError as error:
            if error.reason != "oversized":
                raise  # a malformed message is a bug in the sender, not a network event
            self.drops["codec:encode_oversized"] += 1
            return f"x{type(message).__name__}:oversized"
        client_traffic = source >= self.replica_count or target >= self.replica_count
        if client_traffic:
            self.client_messages += 1
            self.client_bytes += len(data)
        else:
            self.replica_messages += 1
            self.replica_bytes += len(data)
        name = type(message).__name__
        label = f"{name}>{self.node_name(target)}"
        if self._link_cut(source, target):
            self.drops["net:partition"] += 1
            return label + ":cut"
        rng = self.network_rng
        if self.loss and rng.random() < self.loss:
            self.drops["net:loss"] += 1
            return label + ":lost"
        copies = 2 if self.dup and rng.random() < self.dup else 1
        ids = []
        for _ in range(copies):
            msg_id = self._launch(source, target, data, name)
            if self._launched_ids is not None:
                self._launched_ids.append(msg_id)
            ids.append(str(msg_id))
        return f"{label}:m{'+m'.join(ids)}"

    def _launch(self, source: int, target: int, data: bytes, name: str) -> int:
        topology = self.options.topology
        rng = self.network_rng
        delay_us = topology.one_way_us[self.node_site[source]][self.node_site[target]]
        if topology.jitter_us:
            delay_us += rng.randrange(topology.jitter_us + 1)
        if self.reorder and rng.random() < self.reorder:
            delay_us += 1 + rng.randrange(self.reorder_delay_us_max)
        msg_id = self._next_msg_id
        self._next_msg_id += 1
        flight = InFlight(msg_id, source, target, data, name, self.now_us, self.now_us + delay_us)
        self._in_flight[msg_id] = flight
        self._push(flight.deliver_us, _DELIVER, msg_id, 0)
        return msg_id

    def _deliver(self, flight: InFlight) -> None:
        source, target = flight.source, flight.target
        what = f"m{flight.msg_id} {flight.type_name}<{self.node_name(source)}"
        head = f"{self.node_name(target)} {what}"
        if self._link_cut(source, target):
            # A partition that starts while a message is in flight cuts it too.
            self.drops["net:partition"] += 1
            self._log(head + " cut")
            return
        try:
            message = codec.decode(flight.data)
        except codec.DecodeError as error:
            self.drops[f"codec:{error.reason}"] += 1
            self._log(head + f" undecodable {error.reason}")
            return
        if target >= self.replica_count:
            client = self.clients[target - self.replica_count]
            self._client_receive(client, source, message, head)
            return
        replica = self.replicas[target]
        if replica.core is None:
            self.drops["net:target_down"] += 1
            self._log(head + " down")
            return
        if type(message) is ClientRequest:
            self._run_core(replica, f"recv {what}", replica.core.on_client_request, message)
        else:
            self._run_core(replica, f"recv {what}", replica.core.on_message, source, message,
                           received=flight)

    # The hand controls a Hypothesis state machine uses.

    def pending_messages(self) -> list[InFlight]:
        """Messages on the wire, in msg_id order."""
        return [self._in_flight[msg_id] for msg_id in sorted(self._in_flight)]

    def deliver_now(self, msg_id: int) -> None:
        """Deliver ``msg_id`` at the current time, ahead of its schedule."""
        flight = self._in_flight.pop(msg_id)
        self._deliver(flight)

    def drop(self, msg_id: int) -> None:
        flight = self._in_flight.pop(msg_id)
        self.drops["net:dropped_by_hand"] += 1
        self._log(f"net drop m{flight.msg_id} {flight.type_name}")

    def duplicate(self, msg_id: int) -> int:
        """Put a second copy of ``msg_id`` on the wire; returns the copy's id."""
        flight = self._in_flight[msg_id]
        copy_id = self._launch(flight.source, flight.target, flight.data, flight.type_name)
        self._log(f"net dup m{msg_id} as m{copy_id}")
        return copy_id

    def partition(self, groups: Any) -> None:
        """Cut every link between replicas in different groups (replicas in no group are
        cut off from everyone); links to clients stay up."""
        group_of = {}
        for index, group in enumerate(groups):
            for replica in group:
                group_of[replica] = index
        self.cut_links = {
            (a, b)
            for a in range(self.replica_count)
            for b in range(a + 1, self.replica_count)
            if group_of.get(a, -1 - a) != group_of.get(b, -1 - b)
        }
        shown = "|".join(",".join(map(str, sorted(group))) for group in groups)
        self._log(f"net partition {shown}")

    def heal(self) -> None:
        self.cut_links = set()
        self._log("net heal")

    def _carry_out_fault(self, action: tuple[str, Any]) -> None:
        kind, argument = action
        if kind == "crash":
            if self.crash(argument):
                self.faults_injected["crash"] += 1
        elif kind == "restart":
            self.restart(argument)
        elif kind == "partition":
            self.partition(argument)
            self.faults_injected["partition"] += 1
        else:
            assert kind == "heal", kind
            self.heal()

    def end_faults(self) -> None:
        """Begin the liveness phase: no more planned faults, a clean network, every
        replica up."""
        self.faults_enabled = False
        self.loss = self.dup = self.reorder = 0.0
        self.heal()
        for replica in self.replicas:
            self.restart(replica.replica_id)

    # ------------------------------------------------------------------ clients

    def clients_done(self) -> bool:
        if self.ops_issued < self.options.ops:
            return False
        return all(client.command is None for client in self.clients)

    def _client_wake(self, client: _Client) -> None:
        why = "retry"
        if client.command is None:
            if self.ops_issued >= self.options.ops:
                return
            self._client_new_request(client)
            why = "invoke"
        self._client_send(client, why)

    def _client_new_request(self, client: _Client) -> None:
        rng = self.workload_rng
        op = rng.choices(self._op_names, self._op_weights)[0]
        conflicts = self.options.conflicts
        if conflicts is None:
            key = f"k{rng.randrange(self.options.keys)}"
        elif rng.random() * 100 < conflicts:
            key = HOT_KEY
        else:
            key = f"c{client.client_id}.k{rng.randrange(self.options.keys)}"
        request_id = client.next_request_id
        client.next_request_id += 1
        value = expected = None
        if op in ("put", "cas"):
            # Unique per write, so the checker can tell which write a read saw.
            value = f"c{client.client_id}.{request_id}".encode().ljust(self.options.value_bytes, b".")
        if op == "cas":
            expected = client.last_seen.get(key)
        client.command = Command(client.client_id, request_id, op, key, value, expected)
        client.record = OperationRecord(
            client.client_id, request_id, op, key, value, expected, invoke_us=self.now_us,
            invoke_stamp=self.history_stamp(),
        )
        client.busy_retries = 0
        client.redirects = 0
        self.history.append(client.record)
        self.ops_issued += 1

    def _client_send(self, client: _Client, why: str) -> None:
        assert client.command is not None, "a client sends only an outstanding request"
        client.token += 1
        target = client.leader_guess
        sent = self._send(client.node, target, ClientRequest(client.command))
        self._push(self.now_us + self.options.client_timeout_us, _CLIENT_TIMEOUT,
                   client.index, client.token)
        command = client.command
        self._log(f"c{client.client_id} {why} {command.request_id} {command.op} {command.key} "
                  f"-> {sent}")

    def _client_timeout(self, client: _Client) -> None:
        # The same (client_id, request_id) at the next replica: the session table makes
        # the retry safe (VR Revisited §4), and the next replica may be the leader.
        client.leader_guess = (client.leader_guess + 1) % self.replica_count
        client.redirects = 0
        self._client_send(client, "timeout")

    def _client_receive(self, client: _Client, source: int, message: Any, head: str) -> None:
        if type(message) is not ClientReply:
            self.drops["client:not_a_reply"] += 1
            self._log(head + " ignored")
            return
        command = client.command
        if command is None or message.request_id != command.request_id:
            self.drops["client:stale_reply"] += 1
            self._log(head + " stale")
            return
        status = message.status
        self._log(f"{head} {status.name} {message.request_id}")
        if status is ReplyStatus.OK:
            record = client.record
            record.response_us = self.now_us
            record.response_stamp = self.history_stamp()
            record.result = message.result
            if command.op == "get":
                client.last_seen[command.key] = message.result
            elif command.op == "put":
                client.last_seen[command.key] = command.value
            elif command.op == "cas" and message.result is True:
                client.last_seen[command.key] = command.value
            elif command.op == "delete":
                client.last_seen[command.key] = None
            client.command = None
            client.record = None
            client.token += 1
            if message.leader_hint is not None:
                client.leader_guess = message.leader_hint
            # Closed loop: the next request goes out at once.
            self._client_wake(client)
        elif status is ReplyStatus.NOT_LEADER:
            self._on_not_leader(client, source, message.leader_hint)
        elif status is ReplyStatus.BUSY:
            client.token += 1
            client.busy_retries += 1
            backoff_us = self.options.client_backoff_us << min(client.busy_retries - 1, 5)
            backoff_us += self.workload_rng.randrange(backoff_us)
            self._push(self.now_us + backoff_us, _CLIENT_WAKE, client.index, client.token)
        else:
            # The simulator only builds well-formed commands, so INVALID is a bug here.
            raise AssertionError(f"replica refused a well-formed command: {message!r}")

    def _on_not_leader(self, client: _Client, source: int, hint: int | None) -> None:
        client.token += 1
        client.redirects += 1
        if hint is not None and hint != source and 0 <= hint < self.replica_count:
            client.leader_guess = hint
        else:
            client.leader_guess = (source + 1) % self.replica_count
        if client.redirects <= self.REDIRECTS_MAX:
            self._client_send(client, "redirect")
            return
        # Replicas that disagree about the leader (an election under way) could bounce a
        # client back and forth forever; pause for a few ticks instead.
        client.redirects = 0
        pause_us = self.options.tick_us * (5 + self.workload_rng.randrange(5))
        self._push(self.now_us + pause_us, _CLIENT_WAKE, client.index, client.token)

    # ------------------------------------------------------------------ results

    def history_stamp(self) -> int:
        """A stamp for a history event now: later than every earlier one (docstring)."""
        return self._history_clock.stamp(self.now_us * STAMPS_PER_US)

    def history_operations(self) -> list[Operation]:
        """The clients' history so far, as the linearizability checker takes it."""
        return [record.operation() for record in self.history]

    def drop_counts(self) -> Counter[str]:
        """Drops by reason: the network's and codec's, and every core's (crashed ones too)."""
        total = Counter(self.drops)
        for reason, count in self._retired_core_drops.items():
            total[f"core:{reason}"] += count
        for replica in self.replicas:
            if replica.core is not None:
                for reason, count in replica.core.drop_counts().items():
                    total[f"core:{reason}"] += count
        return total

    def protocol_metrics(self) -> dict[str, int | float]:
        """The cores' optional ``protocol_metrics()`` (EPaxos: fast/slow/recovered commits,
        largest component, execute delay), over every core of the run, crashed ones too:
        a metric whose name contains "max" or starts with "largest" is the maximum over
        the cores, any other is their sum. Empty when the protocol has none."""
        samples = list(self._retired_core_metrics)
        for replica in self.replicas:
            metrics = getattr(replica.core, "protocol_metrics", None)
            if metrics is not None:
                samples.append(dict(metrics()))
        total: dict[str, int | float] = {}
        for sample in samples:
            for name, value in sample.items():
                if name not in total:
                    total[name] = value
                elif "max" in name or name.startswith("largest"):
                    total[name] = max(total[name], value)
                else:
                    total[name] += value
        return dict(sorted(total.items()))

    def kvs_digests(self) -> list[str | None]:
        return [r.core.kvs.digest() if r.core is not None else None for r in self.replicas]
