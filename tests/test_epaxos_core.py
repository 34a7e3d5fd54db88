"""Unit tests of the EPaxos core (impl/lowpaxos/protocols/epaxos/), tagged with the
section of EPaxos SOSP 2013 (Moraru, Andersen, Kaminsky) or its technical report
CMU-PDL-13-111 (TR) each one checks, and simulator runs of EPaxos under faults.

The cluster below records every message a core sends and delivers only what a test
lets through (every message crosses the codec), so each scenario is positioned
exactly (500 Lines' cluster tests)."""

from __future__ import annotations

import random

import pytest

from lowpaxos import codec
from lowpaxos.core.api import ClientReply, ClientRequest, Command, ReplyStatus
from lowpaxos.protocols.epaxos import messages as m
from lowpaxos.protocols.epaxos.config import ConfigError, EPaxosConfig
from lowpaxos.protocols.epaxos.core import TRANSITIONS, EPaxosReplica, footprint
from lowpaxos.protocols.epaxos.durable import vector
from lowpaxos.protocols.registry import PROTOCOLS

SPEC = PROTOCOLS["epaxos"]
B0 = m.Ballot(0, 0)


class Cluster:
    """N EPaxos cores over a hand-driven network; durable states folded as a driver does."""

    def __init__(self, replicas: int = 3, seed: int = 0, **options) -> None:
        options.setdefault("invariant_full_scan_steps", 1)
        self.config = SPEC.make_config(replicas, **options)
        self.seed = seed
        self.incarnation = [0] * replicas
        self.durable = [SPEC.new_durable() for _ in range(replicas)]
        self.cores: list[EPaxosReplica | None] = [self._make(r, None) for r in range(replicas)]
        self.queue: list[tuple[int, int, object]] = []
        self.replies: list[ClientReply] = []
        self.events: list[dict] = []
        self.request_ids: dict[int, int] = {}

    def _make(self, replica: int, durable) -> EPaxosReplica:
        self.incarnation[replica] += 1
        rng = random.Random(self.seed * 1000 + replica * 10 + self.incarnation[replica])
        return SPEC.make_core(self.config, replica, rng, durable, True)

    def carry_out(self, replica: int, effects) -> None:
        for record in effects.persist:
            self.durable[replica].apply(record)
        for target, message in effects.send:
            assert target != replica, "a core never sends to itself"
            persisted_first(self.durable[replica], message)
            wire = codec.decode(codec.encode(message))
            assert wire == message, "every message survives the wire"
            self.queue.append((replica, target, wire))
        self.replies.extend(effects.reply)
        self.events.extend(effects.trace)

    def request(self, replica: int, op: str, key: str, value: bytes | None = None,
                client: int = 1) -> Command:
        request_id = self.request_ids.get(client, 0) + 1
        self.request_ids[client] = request_id
        command = Command(client, request_id, op, key, value)
        self.carry_out(replica, self.cores[replica].on_client_request(ClientRequest(command)))
        return command

    def tick(self, replica: int, count: int = 1) -> None:
        for _ in range(count):
            if self.cores[replica] is not None:
                self.carry_out(replica, self.cores[replica].on_tick())

    def tick_all(self, count: int = 1) -> None:
        for _ in range(count):
            for replica in range(len(self.cores)):
                self.tick(replica)

    def take(self, kind: type | None = None, source: int | None = None,
             target: int | None = None) -> list[tuple[int, int, object]]:
        """Remove and return the queued messages that match."""
        taken = [item for item in self.queue
                 if (kind is None or type(item[2]) is kind)
                 and (source is None or item[0] == source)
                 and (target is None or item[1] == target)]
        self.queue = [item for item in self.queue if item not in taken]
        return taken

    def deliver(self, items) -> None:
        for source, target, message in items:
            if self.cores[target] is not None:
                self.carry_out(target, self.cores[target].on_message(source, message))

    def deliver_matching(self, kind=None, source=None, target=None) -> int:
        items = self.take(kind, source, target)
        self.deliver(items)
        return len(items)

    def settle(self, steps_max: int = 100_000) -> None:
        """Deliver everything queued (to live replicas) until the network is quiet."""
        for _ in range(steps_max):
            if not self.queue:
                return
            source, target, message = self.queue.pop(0)
            self.deliver([(source, target, message)])
        raise AssertionError("the network did not quiet down")

    def crash(self, replica: int) -> None:
        self.cores[replica] = None
        self.queue = [item for item in self.queue if replica not in item[:2]]

    def restart(self, replica: int) -> None:
        self.cores[replica] = self._make(replica, self.durable[replica].copy())

    def committed(self, replica: int, inst) -> tuple | None:
        instance = self.cores[replica].instances.get(inst)
        if instance is None or instance.status.value not in ("committed", "executed"):
            return None
        return instance.batch, instance.seq, instance.deps


def persisted_first(durable, message) -> None:
    """What a message says about its sender's state is durable before it leaves (the
    issue: the reference implementation sent PreAccept replies before persisting them)."""
    inst = getattr(message, "inst", None)
    if inst is None:
        return
    if inst[1] <= vector(durable.collected, inst[0] + 1)[inst[0]]:
        return  # collected: covered by the saved rows
    record = durable.entries.get(m.instance_key(inst))
    kind = type(message)
    if kind is m.PreAcceptOK:
        assert record is not None and record.status == "preaccepted" and \
            record.vballot == message.ballot and (record.seq, record.deps) == \
            (message.seq, message.deps), f"PreAcceptOK sent before it was persisted: {record}"
    elif kind is m.AcceptOK:
        assert record is not None and record.status == "accepted" and \
            record.vballot == message.ballot, f"AcceptOK sent before it was persisted: {record}"
    elif kind is m.PrepareOK:
        assert record is not None and (record.status == "committed"
                                       or record.ballot >= message.ballot), \
            f"PrepareOK sent before the promise was persisted: {record}"
    elif kind is m.Commit:
        assert record is not None and record.status == "committed", \
            f"Commit sent before it was persisted: {record}"
    elif kind in (m.PreAccept, m.Accept, m.Prepare):
        assert record is not None and record.ballot == message.ballot, \
            f"{message} sent before its own promise was persisted: {record}"


def put(key: str, value: bytes, client: int = 1, request: int = 1) -> Command:
    return Command(client, request, "put", key, value)


# ---------------------------------------------------------------- the fast path


@pytest.mark.parametrize("replicas", [3, 5])
def test_fast_path_commits_after_one_round_trip_of_the_fast_quorum(replicas):
    """SOSP §4.3: with no interference, the leader's PreAccept goes to the 2F - 1 closest
    peers only (thrifty); their unchanged replies commit the instance at once."""
    cluster = Cluster(replicas)
    cluster.request(0, "put", "x", b"1")
    cluster.tick(0)  # a partial batch leaves on the tick
    preaccepts = cluster.take(m.PreAccept)
    assert sorted(t for _, t, _ in preaccepts) == sorted(cluster.config.peers_by_proximity(0)
                                                         [:replicas - 2])
    cluster.deliver(preaccepts)
    cluster.deliver_matching(m.PreAcceptOK)
    leader = cluster.cores[0]
    assert leader.fast_commits == 1 and leader.slow_commits == 0
    assert [r for r in cluster.replies if r.status is ReplyStatus.OK] == \
        [ClientReply(1, 1, ReplyStatus.OK, None, None)]
    cluster.settle()
    assert {cluster.committed(r, (0, 1)) for r in range(replicas)} == \
        {((put("x", b"1"),), 1, (0,) * replicas)}
    assert len({core.kvs.digest() for core in cluster.cores}) == 1


def test_fast_path_refused_when_a_reply_disagrees_then_slow_path_merges_deps():
    """SOSP §4.3: two concurrent interfering instances; each acceptor adds the other to
    the deps, so neither leader may take the fast path; the slow path commits the union
    of a majority's deps, and each instance then depends on the other (one component)."""
    cluster = Cluster(3)
    cluster.request(0, "put", "x", b"a", client=1)
    cluster.request(1, "put", "x", b"b", client=2)
    cluster.tick(0)
    cluster.tick(1)
    cluster.deliver_matching(m.PreAccept)  # both reach the other leader before any reply
    replies = cluster.take(m.PreAcceptOK)
    assert all(not message.unchanged for _, _, message in replies)
    cluster.deliver(replies)
    assert cluster.cores[0].fast_commits == cluster.cores[1].fast_commits == 0
    cluster.settle()
    assert cluster.cores[0].slow_commits == cluster.cores[1].slow_commits == 1
    a = cluster.committed(2, (0, 1))
    b = cluster.committed(2, (1, 1))
    assert a[2][1] == 1 and b[2][0] == 1, "each committed deps holds the other (merged)"
    orders = [[e["state"]["inst"] for e in cluster.events
               if e["action"] == "Execute" and e["replica"] == r] for r in range(3)]
    assert orders[0] == orders[1] == orders[2] and len(orders[0]) == 2
    assert cluster.cores[0].largest_component == 2
    assert len({core.kvs.digest() for core in cluster.cores}) == 1


def test_fast_path_needs_the_whole_fast_quorum_at_five():
    """SOSP §4.3 with N = 5: fast quorum 4; two unchanged replies of three are not
    enough; after preaccept_retry_ticks the leader has a majority and goes slow."""
    cluster = Cluster(5)
    cluster.request(0, "put", "x", b"1")
    cluster.tick(0)
    preaccepts = cluster.take(m.PreAccept)
    assert len(preaccepts) == 3
    cluster.deliver(preaccepts[:2])
    cluster.deliver_matching(m.PreAcceptOK)
    assert cluster.committed(0, (0, 1)) is None, "two of three: no fast commit yet"
    cluster.tick(0, cluster.config.preaccept_retry_ticks)
    assert cluster.take(m.Accept), "a majority after the retry timeout: the slow path"
    assert cluster.cores[0].fast_commits == 0


def test_interference_reads_writes_and_every_key():
    """SOSP §4.1 and the contract: reads interfere only with writes; dbsize and scan read
    every key; commands of one client interfere (they write its session row)."""
    get = Command(1, 1, "get", "k")
    other_get = Command(2, 1, "get", "k")
    write = Command(3, 1, "put", "k", b"v")
    scan = Command(4, 1, "scan", "")
    conflicts = EPaxosReplica(EPaxosConfig(replicas=3), 0, random.Random(0)).conflicts
    conflicts.record((1, 1), (get,), 1)
    assert conflicts.attributes((other_get,), skip=0)[1] == [0, 0, 0], "reads commute"
    assert conflicts.attributes((write,), skip=0)[1] == [0, 1, 0], "a write follows reads"
    conflicts.record((2, 1), (write,), 2)
    assert conflicts.attributes((scan,), skip=0) == (3, [0, 0, 1]), "scan reads every key"
    assert conflicts.attributes((Command(1, 2, "get", "z"),), skip=0)[1] == [0, 1, 0], \
        "one client's commands interfere"
    assert footprint((Command(5, 1, "mset", "", pairs=(("a", b"1"), ("b", b"2"))),))[1] \
        == {"a", "b"}


def test_one_clients_commands_execute_in_one_order_everywhere():
    """Why one client's commands interfere (core.Conflicts): its request 1 commits at
    replicas 0 and 1, the Commit to 2 is late; the client's request 2 (another key) goes
    to replica 2. Were the two independent, replica 2 would execute request 2 first and
    then skip request 1 as stale (kvs.py's session table), and the replicas diverge."""
    cluster = Cluster(3)
    cluster.request(0, "put", "k1", b"a", client=1)
    cluster.tick(0)
    cluster.take(m.Status)
    cluster.deliver_matching(m.PreAccept)
    cluster.deliver_matching(m.PreAcceptOK)
    assert cluster.replies[-1].status is ReplyStatus.OK
    late = cluster.take(m.Commit, target=2)
    cluster.request(2, "put", "k2", b"b", client=1)
    cluster.tick(2)
    cluster.take(m.Status)
    cluster.settle()
    cluster.deliver(late)
    cluster.settle()
    assert {core.kvs.get_value("k1") for core in cluster.cores} == {b"a"}
    assert len({core.kvs.digest() for core in cluster.cores}) == 1


# ---------------------------------------------------------------- recovery


def _committed_values(cluster: Cluster, inst) -> set:
    return {cluster.committed(r, inst) for r in range(len(cluster.cores))
            if cluster.cores[r] is not None and cluster.committed(r, inst) is not None}


def test_leader_crash_after_persisting_its_preaccept_recovers_the_batch():
    """TR §4.5 case 4: the leader persisted its PreAccept and crashed before sending it;
    restarted, it waits on its own uncommitted instance, prepares at a higher ballot,
    finds the batch only at itself and runs Phase 1 again: the batch is committed."""
    cluster = Cluster(3)
    command = cluster.request(0, "put", "x", b"1")
    cluster.tick(0)
    assert cluster.durable[0].entries, "the PreAccept is persisted before it is sent"
    cluster.crash(0)
    cluster.restart(0)
    for _ in range(4 * cluster.config.recovery_ticks):
        cluster.tick_all()
        cluster.settle()
        if len(_committed_values(cluster, (0, 1))) == 1 and all(
                cluster.committed(r, (0, 1)) for r in range(3)):
            break
    # Phase 1 again: fresh attributes (seq may grow: the recoverer's own tables hold the
    # instance already), never the fast path at a non-initial ballot.
    (value,) = _committed_values(cluster, (0, 1))
    assert value[0] == (command,) and value[2] == (0, 0, 0) and value[1] >= 1
    assert cluster.cores[0].recovered_commits == 1
    assert len({core.kvs.digest() for core in cluster.cores}) == 1


def test_leader_crash_after_a_fast_quorum_preaccepted_recovers_its_value():
    """TR §4.5 case 3: the leader crashed after its fast quorum (one peer at N = 3)
    pre-accepted unchanged, so it may have committed on the fast path; the recoverer
    must commit exactly the leader's (seq, deps), by Phase 2."""
    cluster = Cluster(3)
    command = cluster.request(0, "put", "x", b"1")
    cluster.tick(0)
    cluster.deliver_matching(m.PreAccept)
    cluster.crash(0)
    cluster.cores[1].start_recovery((0, 1), effects := __import__(
        "lowpaxos.core.api", fromlist=["Effects"]).Effects())
    cluster.carry_out(1, effects)
    cluster.settle()
    assert _committed_values(cluster, (0, 1)) == {((command,), 1, (0, 0, 0))}
    assert cluster.cores[1].recovered_commits == 1


def test_nobody_holds_the_batch_recovery_commits_nop():
    """TR §4.5 case 5: a dependency nobody in a majority holds becomes a no-op that
    interferes with nothing and keeps the chain (deps[L] = i - 1)."""
    from lowpaxos.core.api import Effects
    cluster = Cluster(3)
    effects = Effects()
    cluster.cores[1].start_recovery((0, 3), effects)
    cluster.carry_out(1, effects)
    cluster.deliver_matching(m.Prepare, target=2)
    cluster.settle()
    assert _committed_values(cluster, (0, 3)) == {((), 0, (2, 0, 0))}


def test_recovery_takes_the_accepted_value_of_the_highest_vballot():
    """TR §4.5 case 2 with separate ballots (Sutra 2019; EPaxos*): at N = 5 the leader's
    slow-path value V0 is accepted at ballot 0 by {0, 1} only; a first recoverer (2)
    finds the fast-path witnesses and commits V1, the leader's initial attributes, at
    (1, 2) with {0, 2, 3}; its Commits are lost and it crashes. A second recoverer (4)
    hears {1, 3}:
    V0 accepted at (0, 0), V1 at (1, 2). Only the highest vballot (V1) is safe."""
    from lowpaxos.core.api import Effects
    cluster = Cluster(5)
    cluster.request(1, "put", "x", b"b", client=2)
    cluster.tick(1)
    cluster.take(m.PreAccept, source=1)  # (1, 1) stays at replica 1 only
    command = cluster.request(0, "put", "x", b"a", client=1)
    cluster.tick(0)
    cluster.take(m.Status)
    assert sorted(t for _, t, _ in cluster.queue) == [1, 2, 4], "thrifty: the 3 closest"
    cluster.deliver_matching(m.PreAccept)
    cluster.deliver_matching(m.PreAcceptOK)  # replica 1's reply changed: the slow path
    accepts = cluster.take(m.Accept, source=0)
    cluster.deliver([a for a in accepts if a[1] == 1])
    cluster.take(m.AcceptOK)
    v0 = cluster.durable[1].entries[m.instance_key((0, 1))]
    assert v0.status == "accepted" and v0.deps[1] == 1
    effects = Effects()
    cluster.cores[2].start_recovery((0, 1), effects)
    cluster.carry_out(2, effects)
    cluster.deliver_matching(m.Prepare, source=2, target=3)
    cluster.deliver_matching(m.Prepare, source=2, target=4)
    cluster.take(m.Prepare, source=2)
    cluster.deliver_matching(m.PrepareOK, target=2)
    accepts = cluster.take(m.Accept, source=2)
    cluster.deliver([a for a in accepts if a[1] in (0, 3)])
    cluster.deliver_matching(m.AcceptOK, target=2)
    v1 = cluster.committed(2, (0, 1))
    assert v1 == ((command,), 1, (0, 0, 0, 0, 0)), "case 3: the leader's initial value"
    cluster.queue.clear()  # the Commits are lost, and replica 2 crashes
    cluster.crash(2)
    effects = Effects()
    cluster.cores[4].start_recovery((0, 1), effects)
    cluster.carry_out(4, effects)
    for target in (1, 3):
        cluster.deliver_matching(m.Prepare, source=4, target=target)
    cluster.take(m.Prepare, source=4)
    cluster.deliver_matching(m.PrepareOK, target=4)
    cluster.settle()
    cluster.restart(2)
    assert _committed_values(cluster, (0, 1)) == {v1}
    assert cluster.committed(4, (0, 1)) == v1


def test_fast_quorum_one_too_small_is_unsafe_at_five():
    """Why the fast quorum is 2F (SOSP §4.3's simple size), the negative check: at N = 5
    with the optimized size F + floor((F + 1) / 2) = 3 (config fast_quorum=3, documented
    unsafe), the leader commits on the fast path with replicas {0, 1, 4}; a recoverer
    hearing {2, 3, 4} sees one witness, fewer than F, cannot tell that the fast path
    happened, and commits other deps (explicit prepare alone needs TryPreAccept or
    EPaxos*'s validation with that size). With the default 2F this cannot happen: the
    fast path needs 2F - 1 witnesses, and any F + 1 replicas hold F of them."""
    from lowpaxos.core.api import Effects
    cluster = Cluster(5, fast_quorum=3)
    cluster.request(2, "put", "x", b"b", client=2)
    cluster.tick(2)
    cluster.take(m.PreAccept, source=2)  # (2, 1) interferes and stays at replica 2
    command = cluster.request(0, "put", "x", b"a", client=1)
    cluster.tick(0)
    cluster.take(m.Status)
    cluster.deliver_matching(m.PreAccept)
    cluster.deliver_matching(m.PreAcceptOK)
    assert cluster.committed(0, (0, 1)) == ((command,), 1, (0,) * 5), "fast path"
    cluster.queue.clear()  # the Commits are lost and the leader crashes
    cluster.crash(0)
    effects = Effects()
    cluster.cores[2].start_recovery((0, 1), effects)
    cluster.carry_out(2, effects)
    for target in (3, 4):
        cluster.deliver_matching(m.Prepare, source=2, target=target)
    cluster.take(m.Prepare)
    cluster.settle()
    cluster.restart(0)
    values = _committed_values(cluster, (0, 1))
    assert len(values) == 2, "two values committed for one instance: the unsafe size"


@pytest.mark.parametrize("seed", range(60))
def test_concurrent_recoveries_of_one_instance_commit_one_value(seed):
    """TR §4.5 with separate ballots (Sutra 2019): the leader of (0, 1) crashes with its
    PreAccept at a random subset; two replicas recover it at once while messages are
    delivered in a random interleaving, some lost and some duplicated, and the leader
    sometimes restarts; every replica that commits the instance commits one value."""
    rng = random.Random(seed)
    replicas = rng.choice([3, 5])
    cluster = Cluster(replicas, seed=seed)
    cluster.request(0, "put", "x", b"0", client=1)
    cluster.request(1, "put", "x", b"1", client=2)  # an interfering instance of replica 1
    cluster.tick(0)
    cluster.tick(1)
    rng.shuffle(cluster.queue)
    for item in list(cluster.queue):
        if rng.random() < 0.5:
            cluster.queue.remove(item)
            cluster.deliver([item])
    cluster.crash(0)
    from lowpaxos.core.api import Effects
    recoverers = rng.sample(range(1, replicas), 2)
    for replica in recoverers:
        effects = Effects()
        cluster.cores[replica].start_recovery((0, 1), effects)
        cluster.carry_out(replica, effects)
    for step in range(2000):
        if not cluster.queue:
            break
        item = cluster.queue.pop(rng.randrange(len(cluster.queue)))
        roll = rng.random()
        if roll < 0.05:
            continue  # lost
        if roll < 0.10:
            cluster.queue.append(item)  # duplicated
        cluster.deliver([item])
        if step == 20 and rng.random() < 0.5:
            cluster.restart(0)
        if step % 25 == 0:
            # A recoverer tries again at a higher ballot (its timeout fired).
            replica = rng.choice(recoverers)
            if (0, 1) not in cluster.cores[replica].drives and \
                    cluster.committed(replica, (0, 1)) is None:
                effects = Effects()
                cluster.cores[replica].start_recovery((0, 1), effects)
                cluster.carry_out(replica, effects)
        assert len(_committed_values(cluster, (0, 1))) <= 1, "one committed value"
        assert len(_committed_values(cluster, (1, 1))) <= 1, "one committed value"
    # Liveness on a quiet network: everything commits, one value, equal KVS.
    if cluster.cores[0] is None:
        cluster.restart(0)
    for _ in range(6 * cluster.config.recovery_ticks):
        cluster.tick_all()
        cluster.settle()
        if all(cluster.committed(r, inst) for r in range(replicas) for inst in ((0, 1), (1, 1))):
            break
    for inst in ((0, 1), (1, 1)):
        values = _committed_values(cluster, inst)
        assert len(values) == 1 and all(cluster.committed(r, inst) for r in range(replicas))
    a, b = cluster.committed(1, (0, 1)), cluster.committed(1, (1, 1))
    if a[0] and b[0]:
        assert a[2][1] >= 1 or b[2][0] >= 1, "interfering instances: one depends on the other"
    assert len({core.kvs.digest() for core in cluster.cores}) == 1
    assert all(core.drops.get("conflicting_commit", 0) == 0 for core in cluster.cores)


def _interfere(a, b) -> bool:
    writes_a = {c.key for c in a if c.op == "put"}
    writes_b = {c.key for c in b if c.op == "put"}
    return bool(writes_a & {c.key for c in b} or writes_b & {c.key for c in a})


@pytest.mark.parametrize("seed", range(20))
def test_random_schedules_of_clients_ticks_crashes_and_messages(seed):
    """The whole core under a random schedule: client commands on two keys at random
    replicas, ticks (so retries, recoveries, Status and collection fire on their own
    timers), crashes and restarts of up to F replicas, and messages delivered in random
    order, some lost, some duplicated. Every step: one committed value per instance (and
    the cluster's persisted-first check on every message). At the end, on a quiet
    network: equal stores and frontiers, and of two committed interfering instances one
    depends on the other (SOSP §4.5)."""
    rng = random.Random(seed)
    replicas = rng.choice([3, 5, 7])
    cluster = Cluster(replicas, seed=seed, recovery_ticks=rng.choice([12, 30]),
                      preaccept_retry_ticks=rng.choice([3, 10]), status_ticks=5,
                      collect_instances=rng.choice([1, 4, 64]))
    operations = 0
    down: set[int] = set()
    for _ in range(1500):
        roll = rng.random()
        if roll < 0.06 and operations < 25:
            replica = rng.randrange(replicas)
            if cluster.cores[replica] is not None:
                operations += 1
                cluster.request(replica, rng.choice(["put", "get"]), rng.choice(["x", "y"]),
                                str(operations).encode(), client=operations)
        elif roll < 0.25:
            cluster.tick(rng.randrange(replicas))
        elif roll < 0.27 and len(down) < (replicas - 1) // 2:
            replica = rng.randrange(replicas)
            if cluster.cores[replica] is not None:
                cluster.crash(replica)
                down.add(replica)
        elif roll < 0.30 and down:
            replica = rng.choice(sorted(down))
            down.discard(replica)
            cluster.restart(replica)
        elif cluster.queue:
            item = cluster.queue.pop(rng.randrange(len(cluster.queue)))
            fate = rng.random()
            if fate < 0.08:
                continue  # lost
            if fate < 0.12:
                cluster.queue.append(item)  # duplicated
            cluster.deliver([item])
        held = set()
        for core in cluster.cores:
            if core is not None:
                held.update(core.instances)
        for inst in held:
            assert len(_committed_values(cluster, inst)) <= 1, f"two values for {inst}"
    for replica in sorted(down):
        cluster.restart(replica)
    for _ in range(3000):
        cluster.tick_all()
        cluster.settle()
        cores = cluster.cores
        if len({core.kvs.digest() for core in cores}) == 1 and not any(c.drives for c in cores) \
                and all(core.executed == cores[0].executed for core in cores):
            break
    assert len({core.kvs.digest() for core in cluster.cores}) == 1
    assert all(core.executed == cluster.cores[0].executed for core in cluster.cores)
    committed = {inst: (x.batch, x.deps) for inst, x in cluster.cores[0].instances.items()
                 if x.status.value in ("committed", "executed")}
    for a, (batch_a, deps_a) in committed.items():
        for b, (batch_b, deps_b) in committed.items():
            if a < b and _interfere(batch_a, batch_b):
                assert deps_a[b[0]] >= b[1] or deps_b[a[0]] >= a[1], (a, b, deps_a, deps_b)
    assert all(core.drops.get("conflicting_commit", 0) == 0 for core in cluster.cores)


def test_a_leader_that_promised_a_higher_ballot_does_not_commit_fast():
    """Contract: L must not commit on the fast path once it has promised a higher
    ballot: a recoverer's Prepare reaches L before the PreAcceptOK does."""
    from lowpaxos.core.api import Effects
    cluster = Cluster(3)
    cluster.request(0, "put", "x", b"1")
    cluster.tick(0)
    cluster.deliver_matching(m.PreAccept)
    effects = Effects()
    cluster.cores[2].start_recovery((0, 1), effects)
    cluster.carry_out(2, effects)
    cluster.deliver_matching(m.Prepare, target=0)
    cluster.deliver_matching(m.PreAcceptOK)
    assert cluster.cores[0].fast_commits == 0
    assert cluster.committed(0, (0, 1)) is None


# ---------------------------------------------------------------- bad input


def test_bad_input_is_dropped_and_counted():
    """Filter, then assert (TigerBeetle): input from a non-member, of an unknown type, a
    malformed batch, deps of the wrong length, a ballot not its sender's, a stale ballot
    and a reply nobody asked for are dropped with a named reason, never a traceback."""
    cluster = Cluster(3)
    core = cluster.cores[1]
    batch = (put("x", b"1"),)
    good = m.PreAccept(B0, (0, 1), batch, 1, (0, 0, 0))
    core.on_message(7, good)
    core.on_message(0, ClientRequest(put("x", b"1")))
    core.on_message(0, m.PreAccept(B0, (0, 1), ("not a command",), 1, (0, 0, 0)))
    core.on_message(0, m.PreAccept(B0, (0, 1), batch, 1, (0, 0)))
    core.on_message(0, m.PreAccept(B0, (0, 1), batch, 1, (0, 0, 0, 0)))
    core.on_message(0, m.PreAccept(B0, (0, 2), batch, 1, (2, 0, 0)))  # depends on itself
    core.on_message(2, good)  # ballot (0, 0) from replica 2
    core.on_message(0, m.PreAccept(B0, (9, 1), batch, 1, (0, 0, 0)))
    core.on_message(0, m.PreAcceptOK(B0, (1, 1), 1, (0, 0, 0), True))
    core.on_message(0, m.Status((0, 0), (0, 0, 0)))
    core.on_message(0, m.PrepareOK(m.Ballot(1, 0), (1, 1), "committed", None, 1, (0, 0, 0),
                                   B0, False))
    # A stale ballot: promise (2, 2) to a recoverer, then the leader's PreAccept at (0, 0).
    core.on_message(2, m.Prepare(m.Ballot(2, 2), (0, 1)))
    effects = core.on_message(0, good)
    assert effects.send == [(0, m.Nack((0, 1), m.Ballot(2, 2)))]
    effects = core.on_message(0, m.Accept(B0, (0, 1), batch, 1, (0, 0, 0)))
    assert effects.send == [(0, m.Nack((0, 1), m.Ballot(2, 2)))]
    assert core.drop_counts() == {
        "non_member": 1, "unknown_type": 1, "bad_batch": 1, "bad_deps": 3,
        "ballot_not_sender": 1, "bad_instance": 1, "stale_reply": 1, "bad_status": 1,
        "bad_prepare_ok": 1, "stale_ballot": 2}
    assert core.instances[(0, 1)].status.value == "none", "nothing bad was taken in"


def test_bad_bytes_are_a_decode_error():
    """wire.py: bytes from the network that are not an EPaxos message raise DecodeError
    (a counted drop in the drivers), never another exception."""
    data = codec.encode(m.PreAccept(B0, (0, 1), (), 1, (0, 0, 0)))
    for broken in (data[:-1], data[:3] + b"\xff" + data[4:], codec.encode(
            m.Nack((0, 1), B0))[:2] + b"\x00"):
        with pytest.raises(codec.DecodeError):
            codec.decode(broken)
    import msgpack
    for wire in ([80, [0, 0], [0, 0], [], 1, [0, 0, 0]],  # instance number 0
                 [80, [0, 0], [0, 1], [], -1, [0, 0, 0]],  # a negative seq
                 [86, [1, 1], [0, 1], 9, None, 0, [], [0, 0], False],  # unknown status
                 [88, [0, "x"], []]):  # a frontier that is not numbers
        with pytest.raises(codec.DecodeError):
            codec.decode(msgpack.packb(wire))


def test_config_is_validated():
    """An even N, a fast quorum below a majority and negative timers are refused."""
    for options in ({"replicas": 4}, {"replicas": 3, "fast_quorum": 1},
                    {"replicas": 3, "status_ticks": 0}, {"replicas": 11},
                    {"replicas": 3, "peer_order": ((1, 2), (0, 2), (0, 0))}):
        with pytest.raises(ConfigError):
            EPaxosConfig(**options).validate()
    assert EPaxosConfig(replicas=5).fast_quorum_size == 4
    assert EPaxosConfig(replicas=3).fast_quorum_size == 2


# ---------------------------------------------------------------- execution, GC, restart


def test_transitions_table_refuses_a_change_of_a_committed_value():
    """SOSP §4.5 stability: nothing leaves COMMITTED but execution."""
    from lowpaxos.protocols.epaxos.messages import InstanceStatus as S
    assert [(a, b) for a, b in TRANSITIONS if a is S.COMMITTED] == [(S.COMMITTED, S.EXECUTED)]
    assert not [(a, b) for a, b in TRANSITIONS if a is S.EXECUTED]


def _sim(replicas: int, seed: int, ops: int = 300, crashes: int = 0, loss: float = 0.0,
         partitions: int = 0, conflicts: int | None = None, **options):
    from lowpaxos.sim.faults import FaultPlan
    from lowpaxos.sim.run import RunLimits, run
    from lowpaxos.sim.simulator import SimOptions
    config = SPEC.make_config(replicas, **options)
    tick_us = 1_000
    safety_us = 400 * tick_us
    plan = FaultPlan.random(random.Random(f"faults:{seed}"), replicas=replicas,
                            window_us=safety_us, tick_us=tick_us, crashes=crashes,
                            partitions=partitions, loss=loss, dup=loss, reorder=loss)
    sim_options = SimOptions(replicas=replicas, clients=6, ops=ops, seed=seed, keys=4,
                             tick_us=tick_us, client_timeout_us=50 * tick_us,
                             client_backoff_us=2 * tick_us)
    limits = RunLimits(safety_us=safety_us, liveness_us_max=60_000 * tick_us,
                       settle_us_max=2_000 * tick_us, wall_s_max=60)
    return run(SPEC, config, sim_options, plan, limits, protocol="epaxos")


@pytest.mark.parametrize("replicas,seed,crashes,loss,partitions", [
    (3, 1, 3, 0.0, 0), (3, 2, 2, 0.05, 1), (5, 3, 3, 0.0, 2), (5, 4, 2, 0.05, 1)])
def test_simulated_runs_under_faults_are_linearizable(replicas, seed, crashes, loss, partitions):
    """The simulator (sim/run.py): crashes, loss, duplication, reordering and partitions
    with few keys, then a healed network: linearizable, equal replicas, every request
    answered, and the networkx dependency-graph check passes."""
    result = _sim(replicas, seed, crashes=crashes, loss=loss, partitions=partitions)
    assert result["linearizable"] is True, result["linearizability"]
    assert result["kvs_converged"] and result["liveness_completed"]
    assert result["graph_check"]["ok"] is True, result["graph_check"].get("explanation")
    assert not any("conflicting_commit" in reason for reason in result["drops"])


def test_collection_bounds_memory_and_the_durable_log():
    """The contract's GC: every instance all replicas have executed leaves memory and the
    durable log (after the rows are saved); what is held stays a small window."""
    from lowpaxos.sim.simulator import SimOptions, Simulator
    config = SPEC.make_config(3, collect_instances=8)
    sim = Simulator(SPEC, config, SimOptions(replicas=3, clients=4, ops=400, seed=5, keys=4))
    assert sim.run_until_quiet(10_000_000)
    sim.run_until(sim.now_us + 100_000)
    for replica in sim.replicas:
        core = replica.core
        assert sum(core.collected) > 0
        assert len(core.instances) <= 40, "held instances are a bounded window"
        assert len(replica.durable.entries) <= 40, "the durable log is cut too"
        assert replica.durable.executed_count <= core.executed_count
    assert len(set(sim.kvs_digests())) == 1


def test_restart_from_durable_state_in_memory_and_sqlite(tmp_path):
    """A replica restarted from its disk (the simulator's in-memory fold, and the runtime's
    SQLite storage folding the same records) re-executes what was committed above its
    saved rows and reaches the same KVS as the others."""
    from lowpaxos.runtime.storage import SqliteStorage
    cluster = Cluster(3, collect_instances=4, status_ticks=2)
    records: list = []
    original = cluster.carry_out

    def carry_out(replica, effects):
        if replica == 1:
            records.append(list(effects.persist))
        original(replica, effects)

    cluster.carry_out = carry_out
    for number in range(30):
        cluster.request(number % 3, "put", f"k{number % 4}", str(number).encode(),
                        client=number % 5 + 1)
        cluster.tick_all()
        cluster.settle()
    cluster.tick_all(10)
    cluster.settle()
    digest = cluster.cores[0].kvs.digest()
    assert {core.kvs.digest() for core in cluster.cores} == {digest}
    assert sum(cluster.cores[1].collected) > 0, "some instances were collected"
    storage = SqliteStorage(tmp_path / "r1.db", 1, protocol="epaxos")
    storage.load()
    for batch in records:
        storage.write(batch)
    stored = storage.load()
    for durable in (cluster.durable[1].copy(), stored):
        core = SPEC.make_core(cluster.config, 1, random.Random(9), durable, True)
        core.on_tick()
        assert core.kvs.digest() == digest
        assert core.executed == cluster.cores[1].executed
        assert core.next_number == cluster.cores[1].next_number
    storage.close()


def test_trace_events_carry_the_touched_instance_state():
    """The contract's trace: each event's state is the one instance it touched, after the
    action; Commit says the path; Execute carries order and keys."""
    cluster = Cluster(3)
    cluster.request(0, "put", "x", b"1")
    cluster.tick(0)
    cluster.settle()
    by_action = {(e["action"], e["replica"]): e for e in cluster.events if "state" in e}
    propose = by_action[("Propose", 0)]["state"]
    assert propose == {"inst": [0, 1], "status": "preaccepted", "ballot": [0, 0],
                       "vballot": [0, 0], "batch": propose["batch"], "seq": 1,
                       "deps": [0, 0, 0], "unchanged": True}
    assert by_action[("HandlePreAccept", 1)]["message"]["type"] == "PreAccept"
    assert by_action[("HandlePreAcceptOK", 0)]["state"]["status"] == "preaccepted"
    commit = by_action[("Commit", 0)]
    assert commit["path"] == "fast" and commit["state"]["status"] == "committed"
    execute = by_action[("Execute", 0)]
    assert execute["order"] == 0 and \
        execute["keys"] == {"read": [], "write": ["x"], "clients": [1]}
    assert by_action[("Propose", 0)]["keys"] == execute["keys"]
    assert execute["state"]["status"] == "executed"
    assert by_action[("HandleCommit", 2)]["state"]["status"] == "committed"


def test_protocol_metrics_and_info_fields():
    """Contract: protocol_metrics() and the INFO names (role replica, epaxos_*)."""
    cluster = Cluster(3)
    cluster.request(0, "put", "x", b"1")
    cluster.tick(0)
    cluster.settle()
    metrics = cluster.cores[0].protocol_metrics()
    assert metrics["fast_commits"] == 1 and metrics["largest_component"] == 1
    fields = dict(cluster.cores[0].info_fields())
    assert fields["role"] == "replica" and fields["commit_index"] == 1
    for name in ("epaxos_fast_commits", "epaxos_slow_commits", "epaxos_recoveries",
                 "epaxos_largest_scc", "epaxos_execute_delay_max_ticks"):
        assert name in fields
    assert cluster.cores[0].is_leader() and cluster.cores[0].leader_hint is None
