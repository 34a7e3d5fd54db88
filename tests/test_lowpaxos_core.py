"""Unit tests of the LowPaxos core, one per protocol feature, on a hand-driven network.

Tags name the part of the design each test checks (docs/architecture.md, issue 2's list).
"""

from __future__ import annotations

import dataclasses
import pytest

from lowpaxos.core.api import ClientRequest, Command, ReplyStatus
from lowpaxos.protocols.lowpaxos.config import ConfigError, LowPaxosConfig
from lowpaxos.protocols.lowpaxos.core import Role
from lowpaxos.protocols.lowpaxos.messages import (
    Accept,
    Accepted,
    Ballot,
    CatchupReply,
    CatchupRequest,
    Entry,
    Heartbeat,
    Prepare,
    Promise,
    SnapshotChunk,
    SnapshotRequest,
)

from tests.harness import Cluster, _start_election


def put(cluster: Cluster, leader: int, count: int, client: int = 1, key_count: int = 4) -> None:
    for i in range(count):
        cluster.submit(leader, client, "put", f"k{i % key_count}", b"v%d" % i)


# ---- 1. Elections, phase 1 over all open slots, re-proposal and no-op fill ----


def test_election_elects_one_leader_with_a_fresh_ballot():
    """[1] A timed-out follower runs phase 1 and leads with ballot (1, itself)."""
    cluster = Cluster(3)
    cluster.tick_all(400)
    leaders = [c for c in cluster.cores if c.role is Role.LEADER]
    assert len(leaders) == 1
    leader = leaders[0]
    assert leader.promised == Ballot(1, leader.replica_id)
    assert all(c.promised == leader.promised for c in cluster.cores)


def test_new_leader_reproposes_phase1_values_and_fills_gaps_with_noops():
    """[1] Slot 2 accepted only by replica 1 and slot 1 nowhere: the next leader keeps
    slot 2's value (highest ballot reported) and puts a no-op in slot 1."""
    cluster = Cluster(3)
    cluster.elect(0)
    ballot = cluster.cores[0].promised
    batch = (Command(7, 1, "put", "a", b"x"),)
    # Replica 1 accepts slot 2 directly (as if the Accept for slot 1 were lost everywhere).
    cluster.carry_out(1, cluster.cores[1].on_message(0, Accept(ballot, 2, batch, 0, 0)))
    cluster.drop_all()
    cluster.crash(0)
    cluster.elect(1)
    new = cluster.cores[1]
    assert new.log[1].batch == ()
    assert new.log[2].batch == batch
    assert new.log[1].ballot == new.log[2].ballot == new.promised
    cluster.tick_all(5)
    assert new.commit_index == 2
    assert cluster.cores[2].log[2].batch == batch


def test_phase1_is_one_prepare_per_peer_for_all_slots():
    """[1] One Prepare per peer covers every open slot: no per-slot phase 1."""
    cluster = Cluster(3)
    cluster.elect(0)
    put(cluster, 0, 40)
    cluster.tick_all(3)
    cluster.crash(0)
    cluster.sent.clear()
    cluster.elect(1)
    targets = sorted(t for _, t, m in cluster.sent if isinstance(m, Prepare))
    assert targets == [0, 2], "one Prepare per peer, whatever the number of open slots"
    old_slots = [s for s, e in cluster.cores[1].log.items() if e.batch]
    assert len(old_slots) >= 1
    assert cluster.cores[1].commit_index >= max(old_slots) or cluster.cores[1].acks


def test_lower_ballot_accept_is_rejected():
    """An Accept below the promised ballot is refused and changes nothing."""
    cluster = Cluster(3)
    cluster.elect(0)
    cluster.crash(0)
    cluster.elect(1)
    follower = cluster.cores[2]
    before = dict(follower.log)
    effects = follower.on_message(0, Accept(Ballot(1, 0), 5, (), 0, 0))
    assert follower.log == before
    assert [type(m).__name__ for _, m in effects.send] == ["Reject"]
    assert follower.drop_counts()["stale_ballot"] == 1


# ---- 2. Thrifty phase 2 ----


def test_thrifty_sends_accept_to_one_follower_then_widens():
    """[2] With N=3 an Accept goes to one follower; unanswered, it widens to the other."""
    cluster = Cluster(3, thrifty=True, batching=False)
    cluster.elect(0)
    cluster.drop_all()
    cluster.sent.clear()
    cluster.submit(0, 1, "put", "k", b"v")
    accepts = [(t, m) for _, t, m in cluster.sent if isinstance(m, Accept)]
    assert len(accepts) == 1
    first_target = accepts[0][0]
    cluster.drop_all()  # the Accept is lost
    for _ in range(cluster.config.accept_retry_ticks):
        cluster.tick(0)
    retried = [t for _, t, m in cluster.sent if isinstance(m, Accept)]
    assert sorted(retried[1:]) == [1, 2], "widened to every follower that has not acked"
    assert first_target in (1, 2)


def test_thrifty_prefers_the_closest_live_followers_by_peer_order():
    """[2] With peer_order (the simulator fills it from its latency matrix) thrifty phase 2
    sends to the closest live followers, not the next ones by id: on the five-site WAN
    see docs/benchmarks.md (WAN p50 at 3 replicas from 138 to 35.5 ms)."""
    order = ((4, 3, 2, 1), (0, 2, 3, 4), (1, 3, 4, 0), (2, 4, 0, 1), (3, 0, 1, 2))
    cluster = Cluster(5, thrifty=True, batching=False, peer_order=order)
    cluster.elect(0)
    cluster.drop_all()
    cluster.sent.clear()
    cluster.submit(0, 1, "put", "k", b"v")
    assert sorted(t for _, t, m in cluster.sent if isinstance(m, Accept)) == [3, 4]
    with pytest.raises(ConfigError):
        LowPaxosConfig(replicas=3, peer_order=((1, 2), (0, 2), (0, 0))).validate()
    with pytest.raises(ConfigError):
        LowPaxosConfig(replicas=3, peer_order=((1, 2), (0, 2))).validate()


def test_not_thrifty_sends_accept_to_all():
    """[2] With thrifty off every follower gets every Accept."""
    cluster = Cluster(3, thrifty=False, batching=False)
    cluster.elect(0)
    cluster.drop_all()
    cluster.sent.clear()
    cluster.submit(0, 1, "put", "k", b"v")
    assert sorted(t for _, t, m in cluster.sent if isinstance(m, Accept)) == [1, 2]


# ---- 3. Flexible quorums ----


def test_flexible_quorums_must_intersect():
    """[3] |Q1| + |Q2| <= N is refused at start-up; > N is accepted."""
    with pytest.raises(ConfigError):
        LowPaxosConfig(replicas=5, q1=3, q2=2).validate()
    LowPaxosConfig(replicas=5, q1=4, q2=2).validate()


def test_phase2_quorum_of_two_commits_with_one_ack_in_five():
    """[3] With N=5, |Q1|=4, |Q2|=2 one follower's ack commits a slot."""
    cluster = Cluster(5, q1=4, q2=2, batching=False)
    cluster.elect(0)
    cluster.drop_all()
    cluster.submit(0, 1, "put", "k", b"v")
    accepts = cluster.take(Accept)
    assert len(accepts) == 1, "thrifty: Q2 - 1 = 1 follower"
    source, target, message = accepts[0]
    cluster.carry_out(target, cluster.cores[target].on_message(source, message))
    cluster.deliver_all()
    assert cluster.cores[0].commit_index == 1
    assert cluster.ok_replies()[-1].request_id == 1


def test_commit_needs_a_full_phase2_quorum():
    """[3] With majorities at N=5 two acks are not enough: the leader waits for a third."""
    cluster = Cluster(5, thrifty=False, batching=False)
    cluster.elect(0)
    cluster.drop_all()
    cluster.submit(0, 1, "put", "k", b"v")
    accepts = cluster.take(Accept)
    for source, target, message in accepts[:1]:
        cluster.carry_out(target, cluster.cores[target].on_message(source, message))
    cluster.queue.clear()
    cluster.deliver_all()
    leader = cluster.cores[0]
    accepted = [item for item in cluster.sent if isinstance(item[2], Accepted)]
    assert len(accepted) == 1
    cluster.carry_out(0, leader.on_message(accepted[0][0], accepted[0][2]))
    assert leader.commit_index == 0, "leader + 1 follower = 2 < 3"
    source, target, message = accepts[1]
    cluster.carry_out(target, cluster.cores[target].on_message(source, message))
    cluster.deliver_all()
    assert leader.commit_index == 1


# ---- 4. Batching, pipelining, back-pressure ----


def test_batches_stay_within_the_byte_budget():
    """[4] Many small commands share a slot; no batch exceeds the datagram budget."""
    from lowpaxos.codec import encoded_size

    cluster = Cluster(3, batch_bytes_max=1200)
    cluster.elect(0)
    put(cluster, 0, 200)
    cluster.tick_all(10)
    slots = [e for e in cluster.cores[0].log.values() if e.batch]
    assert len(slots) < 20, "200 commands in far fewer slots"
    for _, _, message in cluster.sent:
        if isinstance(message, Accept):
            assert encoded_size(message) <= 1200
    assert len(cluster.ok_replies()) == 200


def test_window_bounds_slots_in_flight_and_queue_gives_busy():
    """[4] No more than window_slots slots in flight; past the queue bound, BUSY."""
    cluster = Cluster(3, batching=False, window_slots=4, pending_commands_max=3)
    cluster.elect(0)
    cluster.drop_all()
    leader = cluster.cores[0]
    for i in range(8):
        cluster.submit(0, 1 + i, "put", "k", b"v")
    assert leader.next_slot - 1 - leader.commit_index == 4
    assert len(leader.pending) == 3
    busy = [r for r in cluster.replies if r.status is ReplyStatus.BUSY]
    assert len(busy) == 1
    cluster.deliver_all()
    cluster.tick_all(3)
    assert leader.commit_index == 7
    assert not leader.pending


# ---- 5. No commit messages in steady state ----


def test_commit_point_rides_on_the_next_accept():
    """[5] A follower learns slot 1 is committed from the Accept for slot 2."""
    cluster = Cluster(3, thrifty=False, batching=False)
    cluster.elect(0)
    cluster.tick_all(2)
    cluster.submit(0, 1, "put", "a", b"1")
    cluster.deliver_all()
    follower = cluster.cores[1]
    assert cluster.cores[0].commit_index == 1
    assert follower.commit_index == 0
    cluster.submit(0, 1, "put", "b", b"2")
    cluster.deliver_one()  # the Accept for slot 2 to replica 1
    assert follower.commit_index == 1
    assert follower.kvs.get_value("a") == b"1"
    kinds = {type(m).__name__ for _, _, m in cluster.sent}
    assert "Commit" not in kinds


def test_idle_follower_learns_commit_from_heartbeat():
    """[5] With no further Accepts, the next heartbeat carries the commit point."""
    cluster = Cluster(3, thrifty=False, batching=False)
    cluster.elect(0)
    cluster.submit(0, 1, "put", "a", b"1")
    cluster.deliver_all()
    assert cluster.cores[2].commit_index == 0
    cluster.tick_all(cluster.config.heartbeat_ticks + 1)
    assert cluster.cores[2].commit_index == 1


def test_follower_commits_only_entries_of_the_leaders_ballot():
    """[5] A follower holding an older-ballot value for a slot the new leader committed
    with another value must not take its own stale value as committed."""
    cluster = Cluster(3, batching=False)
    cluster.elect(0)
    cluster.submit(0, 1, "put", "x", b"stale")
    # The Accept goes to one follower (thrifty); make sure it is replica 2, then cut 2 off.
    accepts = cluster.take(Accept)
    assert len(accepts) == 1
    _, target, message = accepts[0]
    cluster.carry_out(2, cluster.cores[2].on_message(0, message))
    cluster.drop_all()
    cluster.crash(2)
    cluster.elect(1)  # phase 1 with {1, 0}: neither holds slot 1
    cluster.submit(1, 2, "put", "x", b"fresh")
    cluster.tick_all(3)
    assert cluster.cores[1].commit_index >= 1
    cluster.down.discard(2)  # replica 2 comes back with its volatile state intact
    new_ballot = cluster.cores[1].promised
    cluster.carry_out(2, cluster.cores[2].on_message(1, Heartbeat(new_ballot, cluster.cores[1].commit_index, 0)))
    assert cluster.cores[2].kvs.get_value("x") != b"stale"
    cluster.deliver_all()
    cluster.tick_all(3)
    assert cluster.cores[2].kvs.get_value("x") == b"fresh"


def test_new_leader_takes_the_highest_ballot_value():
    """[1] Two promises report different values for a slot: the higher ballot wins
    (Paxos Made Simple §2.2, P2c)."""
    cluster = Cluster(3)
    core = cluster.cores[0]
    cluster.carry_out(0, _start(core))
    ballot = core.promised
    low = Entry(1, Ballot(0, 1), (Command(1, 1, "put", "k", b"low"),))
    high = Entry(1, Ballot(0, 2), (Command(2, 1, "put", "k", b"high"),))
    # Replica 0's own promise has nothing; one peer reports the lower, one the higher.
    cluster.carry_out(0, core.on_message(1, Promise(ballot, (low,), 0)))
    assert core.role is Role.LEADER  # Q1 = 2 reached with replica 1
    assert core.log[1].batch == low.batch
    cluster2 = Cluster(3, q1=3, q2=1)
    core = cluster2.cores[0]
    cluster2.carry_out(0, _start(core))
    ballot = core.promised
    core.on_message(1, Promise(ballot, (low,), 0))
    core.on_message(2, Promise(ballot, (high,), 0))
    assert core.role is Role.LEADER
    assert core.log[1].batch == high.batch


def test_stale_accepted_does_not_count():
    """An Accepted for an older ballot must not count toward the current ballot's quorum."""
    cluster = Cluster(3, batching=False, thrifty=False)
    cluster.elect(0)
    old_ballot = cluster.cores[0].promised
    cluster.elect(1)
    cluster.elect(0)  # re-elected with a newer ballot
    assert cluster.cores[0].promised > old_ballot
    cluster.submit(0, 1, "put", "k", b"v")
    slot = cluster.cores[0].next_slot - 1
    cluster.drop_all()
    cluster.carry_out(0, cluster.cores[0].on_message(1, Accepted(old_ballot, slot, 0)))
    assert cluster.cores[0].commit_index < slot
    assert cluster.cores[0].drop_counts()["stale_accepted"] >= 1


def _start(core):
    from lowpaxos.core.api import Effects
    effects = Effects()
    core.start_election(effects)
    return effects


# ---- 6. Catch-up in bounded chunks ----


def test_catchup_in_bounded_chunks():
    """[6] A replica that missed 100 slots fetches them in chunks under the byte bound."""
    cluster = Cluster(3, thrifty=True, batching=False, catchup_bytes_max=300,
                      snapshot_slots=1000, log_slots_max=2000)
    cluster.elect(0)
    cluster.crash(2)
    for i in range(100):
        cluster.submit(0, 1, "put", f"k{i}", b"v")
        cluster.deliver_all()
    cluster.restart(2)
    cluster.sent.clear()
    cluster.tick_all(cluster.config.heartbeat_ticks + 2)
    replies = [m for _, _, m in cluster.sent if isinstance(m, CatchupReply)]
    assert cluster.cores[2].commit_index >= 100
    assert len(replies) > 3
    from lowpaxos.codec import encoded_size
    assert all(encoded_size(m) <= 300 + 200 for m in replies)
    assert cluster.cores[2].kvs.digest() == cluster.cores[0].kvs.digest()


# ---- 7. Bounded memory: snapshots and truncation ----


def test_log_is_truncated_after_every_replica_applied():
    """[7] Slots every replica applied are dropped after a snapshot; the log stays short."""
    cluster = Cluster(3, thrifty=False, batching=False, snapshot_slots=16, log_slots_max=64,
                      window_slots=8)
    cluster.elect(0)
    for i in range(300):
        cluster.submit(0, 1, "put", f"k{i % 7}", b"v%d" % i)
        cluster.deliver_all()
    cluster.tick_all(30)
    for core in cluster.cores:
        assert core.commit_index >= 300
        assert len(core.log) <= 64
        assert core.log_start > 0
    assert len({c.kvs.digest() for c in cluster.cores}) == 1


def test_replica_behind_the_cut_receives_a_snapshot():
    """[7] With one replica down the log is still cut at log_slots_max; on return the
    replica gets the state by chunked transfer and converges."""
    cluster = Cluster(3, thrifty=True, batching=False, snapshot_slots=16, log_slots_max=32,
                      window_slots=8)
    cluster.elect(0)
    cluster.crash(2)
    for i in range(200):
        cluster.submit(0, 1, "put", f"k{i % 9}", b"v%d" % i)
        cluster.deliver_all()
    assert len(cluster.cores[0].log) <= 32 + 16
    cluster.restart(2)
    cluster.sent.clear()
    cluster.tick_all(60)
    assert sum(isinstance(m, SnapshotChunk) for _, _, m in cluster.sent) >= 1
    assert cluster.cores[2].commit_index >= 200
    assert cluster.cores[2].kvs.digest() == cluster.cores[0].kvs.digest()



def test_log_bytes_bound_the_memory_of_large_commands_while_a_replica_is_down():
    """[7] Large commands: with a replica down, the applied slots held stay within
    log_bytes_max (the slot bound alone would hold 60 slots of 6 KB here), the rest is
    cut below saved rows, and the replica that returns converges by transfer."""
    cluster = Cluster(3, thrifty=False, batching=True, snapshot_slots=16, log_slots_max=64,
                      window_slots=4, batch_bytes_max=1200, log_bytes_max=24_000,
                      transfer_log_bytes_max=48_000)
    cluster.elect(0)
    cluster.crash(2)
    value = b"x" * 6000  # one command per slot, 6 KB each
    for i in range(60):
        cluster.submit(0, 1, "put", f"k{i % 7}", value + b"%d" % i)
        cluster.deliver_all()
        for core in cluster.cores[:2]:
            assert core.applied_bytes_total <= 24_000 + 6100, "held applied bytes bounded"
    leader = cluster.cores[0]
    assert leader.commit_index >= 60
    assert leader.log_start >= leader.commit_index - 4, "cut by bytes, not by slots"
    cluster.restart(2)
    cluster.tick_all(80)
    assert cluster.cores[2].commit_index == leader.commit_index
    assert cluster.cores[2].kvs.digest() == leader.kvs.digest()


# ---- Durability and crash recovery ----


def test_restart_rebuilds_state_from_durable_records():
    """A restarted replica recovers its promise, log and applied KVS from its records."""
    cluster = Cluster(3)
    cluster.elect(0)
    put(cluster, 0, 30)
    cluster.tick_all(cluster.config.commit_hint_ticks + 5)
    digest = cluster.cores[1].kvs.digest()
    promised = cluster.cores[1].promised
    persisted_commit = cluster.durable[1].commit_index
    cluster.crash(1)
    cluster.restart(1)
    assert cluster.cores[1].promised == promised
    # The commit point on disk is a hint: the restarted replica has applied at least that
    # far at once, and catches up on the rest from the leader.
    assert cluster.cores[1].commit_index >= persisted_commit > 0
    cluster.tick_all(cluster.config.heartbeat_ticks + 2)
    assert cluster.cores[1].kvs.digest() == digest


def test_write_survives_when_the_leader_restarts_and_its_follower_is_lost():
    """A write committed by the leader and one follower survives the follower's loss:
    the leader's own accept was durable before the commit (persist before send)."""
    cluster = Cluster(3, batching=False)
    cluster.elect(0)
    cluster.submit(0, 1, "put", "a", b"kept")
    cluster.deliver_all()
    assert cluster.ok_replies()
    cluster.crash(0)
    cluster.restart(0)
    helper = [r for r in (1, 2) if cluster.cores[r].log][0]
    cluster.crash(helper)
    cluster.drop_all()
    cluster.elect(0)
    cluster.submit(0, 2, "get", "a")
    cluster.tick_all(20)
    assert cluster.ok_replies()[-1].result == b"kept"


def test_acknowledged_writes_survive_leader_crash():
    """A write acknowledged before the leader crashes is readable from the next leader."""
    cluster = Cluster(3)
    cluster.elect(0)
    cluster.submit(0, 1, "put", "a", b"kept")
    cluster.tick_all(3)
    assert cluster.ok_replies()
    cluster.crash(0)
    cluster.elect(2)
    cluster.submit(2, 2, "get", "a")
    cluster.tick_all(5)
    assert cluster.ok_replies()[-1].result == b"kept"


# ---- Client sessions ----


def test_retried_request_executes_once():
    """A retried (client, request) is answered from the client table, not run again."""
    cluster = Cluster(3, batching=False)
    cluster.elect(0)
    command = Command(5, 1, "cas", "a", b"1", None)
    cluster.carry_out(0, cluster.cores[0].on_client_request(ClientRequest(command)))
    cluster.deliver_all()
    cluster.carry_out(0, cluster.cores[0].on_client_request(ClientRequest(command)))
    cluster.deliver_all()
    results = [r.result for r in cluster.ok_replies()]
    assert results == [True, True]
    assert cluster.cores[0].kvs.executed == 1
    assert cluster.cores[0].commit_index == 1


def test_followers_redirect_clients_to_the_leader():
    """A follower answers NOT_LEADER with the leader's id."""
    cluster = Cluster(3)
    cluster.elect(0)
    cluster.tick_all(2)
    cluster.submit(1, 1, "get", "a")
    assert cluster.replies[-1].status is ReplyStatus.NOT_LEADER
    assert cluster.replies[-1].leader_hint == 0


# ---- Bad input ----


def test_bad_input_is_dropped_and_counted():
    """Unknown types, non-members, forged ballots and bad commands are counted drops."""
    cluster = Cluster(3)
    cluster.elect(0)
    core = cluster.cores[1]
    assert core.on_message(7, Heartbeat(Ballot(9, 7), 0, 0)).empty()
    assert core.on_message(0, "garbage").empty()
    assert core.on_message(2, Heartbeat(Ballot(9, 0), 0, 0)).empty()
    effects = cluster.cores[0].on_client_request(ClientRequest(Command(1, 1, "frobnicate", "k")))
    assert effects.reply[0].status is ReplyStatus.INVALID
    drops = core.drop_counts()
    assert drops["non_member"] == 1
    assert drops["unknown_type"] == 1
    assert drops["not_ballot_owner"] == 1
    assert cluster.cores[0].drop_counts()["bad_command"] == 1


def test_promise_for_an_old_ballot_is_ignored():
    """A Promise that does not match the current candidacy changes nothing."""
    cluster = Cluster(3)
    cluster.elect(0)
    before = cluster.cores[0].drop_counts().get("stale_promise", 0)
    effects = cluster.cores[0].on_message(1, Promise(Ballot(0, 0), (), 0))
    assert effects.empty()
    assert cluster.cores[0].drop_counts()["stale_promise"] == before + 1


def test_catchup_request_beyond_commit_sends_nothing():
    """A catch-up request for slots not yet committed is dropped, not answered."""
    cluster = Cluster(3)
    cluster.elect(0)
    effects = cluster.cores[1].on_message(2, CatchupRequest(Ballot(1, 0), 99))
    assert effects.empty()


def test_catchup_keeps_the_higher_ballot_of_the_same_value():
    """[6] Catch-up brings slot 1's committed value in the ballot its source accepted it
    in; our own entry holds the same value in a higher ballot and must keep it, or a
    later phase 1 could miss that we were part of the choosing quorum."""
    cluster = Cluster(3)
    follower = cluster.cores[2]
    batch = (Command(1, 1, "put", "k", b"v"),)
    high = Ballot(3, 1)
    follower.on_message(1, Accept(high, 1, batch, 0, 0))
    assert follower.log[1].ballot == high
    follower.on_message(0, CatchupReply(Ballot(1, 0), (Entry(1, Ballot(1, 0), batch),), 1))
    assert follower.commit_index == 1
    assert follower.log[1].ballot == high


def test_retried_prepare_gets_the_same_promise_again():
    """[1] A candidate whose Promise was lost retries its Prepare; the acceptor answers
    with the very same Promise (a duplicate, not a new promise), and the candidate leads."""
    cluster = Cluster(3)
    core = cluster.cores[0]
    for peer in cluster.cores[1:]:
        peer.election_deadline = 10**6
    cluster.carry_out(0, _start(core))
    prepares = cluster.take(Prepare)
    source, target, prepare = prepares[0]
    cluster.carry_out(target, cluster.cores[target].on_message(source, prepare))
    first = cluster.take(Promise)
    assert len(first) == 1  # lost: never delivered
    cluster.drop_all()
    cluster.carry_out(target, cluster.cores[target].on_message(source, prepare))
    again = cluster.take(Promise)
    assert [m for _, _, m in again] == [first[0][2]]
    cluster.carry_out(0, core.on_message(target, again[0][2]))
    assert core.role is Role.LEADER


# ---- 7b. State transfer in chunks: loss, crashes on either side, a bad digest ----


def behind_the_cut(keys=60, value=b"x" * 40, replicas=3, **options):
    """A cluster whose replica 2 was down while the log was cut past it: when it returns,
    its catch-up request starts a state transfer of a store of many chunks."""
    settings = dict(thrifty=False, batching=False, snapshot_slots=8, log_slots_max=24,
                    window_slots=4, transfer_chunk_bytes=120, transfer_window=4)
    settings.update(options)
    cluster = Cluster(replicas, **settings)
    cluster.elect(0)
    cluster.crash(2)
    for i in range(keys):
        cluster.submit(0, 1, "put", f"key{i:03d}", value + b"%d" % i)
        cluster.deliver_all()
    cluster.submit(0, 1, "delete", "key001")
    cluster.deliver_all()
    assert cluster.cores[0].log_start > 0
    cluster.restart(2)
    return cluster


def chunks_sent(cluster, target=2):
    return [m for _, t, m in cluster.sent if t == target and isinstance(m, SnapshotChunk)]


def test_transfer_installs_a_store_of_many_chunks_and_verifies_it():
    """A replica behind the cut receives the rows in many chunks, a window at a time,
    installs them once the digest matches, and converges with the leader."""
    cluster = behind_the_cut()
    cluster.tick_all(40)
    receiver = cluster.cores[2]
    assert receiver.transfer is None
    assert len(chunks_sent(cluster)) >= 10
    assert receiver.kvs.digest() == cluster.cores[0].kvs.digest()
    assert receiver.commit_index == cluster.cores[0].commit_index
    assert cluster.durable[2].store.digest == receiver.kvs.rows.digest


def test_a_lost_chunk_costs_one_chunk():
    """Losing one chunk of a window: the later ones wait in the buffer, and once two of
    them have arrived the receiver asks for the lost chunk alone (credits 1), not the
    whole window, and without waiting for its retry timer."""
    cluster = behind_the_cut()
    cluster.tick_all(cluster.config.heartbeat_ticks + 1, deliver=False)
    dropped = None
    for _ in range(400):
        if not cluster.queue:
            cluster.tick_all(1, deliver=False)
            continue
        item = cluster.queue[0]
        if dropped is None and isinstance(item[2], SnapshotChunk) and item[2].cursor is not None:
            dropped = cluster.queue.popleft()[2]
            sent_before = len(cluster.sent)
            continue
        cluster.deliver_one()
        if dropped is not None and len(cluster.cores[2].transfer_buffer) >= 2:
            break
    assert dropped is not None
    asked = [m for _, t, m in cluster.sent[sent_before:] if isinstance(m, SnapshotRequest)]
    assert asked and asked[-1].credits == 1 and asked[-1].cursor == dropped.cursor
    before = len(chunks_sent(cluster))
    cluster.deliver_all()
    resent = chunks_sent(cluster)[before:]
    assert dropped in resent  # the lost chunk itself came again
    assert sum(m.cursor == dropped.cursor for m in resent) == 1, "and only once"
    cluster.tick_all(40)
    assert cluster.cores[2].kvs.digest() == cluster.cores[0].kvs.digest()


def interrupt_transfer(cluster, chunks=6):
    """Deliver messages until the receiver has taken ``chunks`` chunks, then drop the rest."""
    cluster.tick_all(cluster.config.heartbeat_ticks + 1, deliver=False)
    for _ in range(10_000):
        transfer = cluster.cores[2].transfer
        taken = len(cluster.durable[2].staging.rows)
        if transfer is not None and taken >= chunks:
            break
        if not cluster.deliver_one():
            cluster.tick_all(1, deliver=False)
    cluster.drop_all()
    return len(cluster.durable[2].staging.rows)


def test_receiver_crash_resumes_from_its_durable_cursor():
    """The receiver crashes mid-transfer: its staged rows and cursor are durable, so after
    the restart it asks for the rest, not for everything again."""
    cluster = behind_the_cut()
    before = dict(cluster.cores[2].kvs.rows.rows), cluster.cores[2].kvs.digest()
    staged = interrupt_transfer(cluster)
    assert 0 < staged < 60
    cursor = cluster.durable[2].transfer.cursor
    cluster.crash(2)
    cluster.restart(2)
    assert cluster.cores[2].transfer.cursor == cursor
    # Installing is atomic: until the last chunk, the old state is intact and in use.
    assert (dict(cluster.cores[2].kvs.rows.rows), cluster.cores[2].kvs.digest()) == before
    cluster.sent.clear()
    cluster.tick_all(60)
    assert cluster.cores[2].kvs.digest() == cluster.cores[0].kvs.digest()
    resent = sum(len(m.rows) for m in chunks_sent(cluster))
    assert resent < 64 - staged + 8, "rows already staged were not sent again"


def test_sender_crash_resumes_from_a_newer_image_with_only_the_changes():
    """The serving replica crashes mid-transfer and the store changes meanwhile: the
    receiver keeps what it staged, takes a newer image from another replica with only
    the rows changed below its split, and installs exactly the newer state."""
    cluster = behind_the_cut(replicas=5)
    staged = interrupt_transfer(cluster, chunks=20)
    source = cluster.cores[2].transfer.source
    assert source == 0
    # The leader crashes (and the receiver with it); replica 1 leads and the store changes
    # below and above the receiver's split.
    cluster.crash(0)
    cluster.crash(2)
    cluster.restart(2)
    cluster.crash(2)
    cluster.elect(1)
    for i in (0, 2, 50):
        cluster.submit(1, 7, "put", f"key{i:03d}", b"new")
        cluster.deliver_all()
    cluster.submit(1, 7, "delete", "key003")
    cluster.deliver_all()
    cluster.restart(2)
    cluster.sent.clear()
    cluster.tick_all(200)
    streams = {(m.image_index, m.base, m.split) for m in chunks_sent(cluster)}
    assert any(base == 61 and split is not None for _, base, split in streams), streams
    receiver = cluster.cores[2]
    assert receiver.transfer is None
    assert receiver.kvs.digest() == cluster.cores[1].kvs.digest()
    assert receiver.kvs.get_value("key003") is None and receiver.kvs.get_value("key002") == b"new"
    resent = sum(len(m.rows) for m in chunks_sent(cluster))
    assert resent < 64 - staged + 10, "a newer image sent only what changed below the split"


def test_a_chunk_that_does_not_match_the_digest_is_never_installed():
    """A corrupted chunk (one row changed in flight) makes the staged state miss the
    image digest: the receiver refuses to install it and starts over."""
    cluster = behind_the_cut()
    cluster.tick_all(cluster.config.heartbeat_ticks + 1, deliver=False)
    corrupted = False
    for _ in range(10_000):
        if not cluster.queue:
            if cluster.cores[2].transfer is None and corrupted:
                break
            cluster.tick_all(1, deliver=False)
            continue
        source, target, message = cluster.queue[0]
        if not corrupted and isinstance(message, SnapshotChunk) and message.rows:
            kind, key, value, version = message.rows[0]
            bad = dataclasses.replace(message, rows=((kind, key, b"evil", version),)
                                      + message.rows[1:])
            cluster.queue[0] = (source, target, bad)
            corrupted = True
        cluster.deliver_one()
    assert cluster.cores[2].drop_counts().get("transfer_digest_mismatch") == 1
    cluster.tick_all(60)
    assert cluster.cores[2].kvs.digest() == cluster.cores[0].kvs.digest()
    assert b"evil" not in [cluster.cores[2].kvs.get_value(f"key{i:03d}") for i in range(60)]


def test_command_size_estimate_bounds_the_encoded_size():
    """The core's size estimate of a command (it does no encoding) is never below what the
    codec makes of it, multi-key commands included, so batches stay within their bound."""
    from lowpaxos.codec import COMMAND
    import msgpack
    commands = [
        Command(1, 2, "put", "k" * 30, b"v" * 500),
        Command(1, 2, "mset", "", pairs=tuple((f"key{i}", b"x" * 100) for i in range(40))),
        Command(1, 2, "mget", "", keys=tuple(f"key{i}" for i in range(100))),
        Command(1, 2, "scan", "", value=b"user:*", keys=("after",), count=100),
    ]
    from lowpaxos.protocols.lowpaxos.core import command_size_bytes
    for command in commands:
        encoded = len(msgpack.packb(COMMAND.to_wire(command), use_bin_type=True))
        assert command_size_bytes(command) >= encoded, command.op


def test_catchup_reply_never_exceeds_what_the_receiver_takes():
    """A catch-up reply of many small slots stops at log_slots_max slots past the
    requester's commit point, so the requester never refuses it whole as out of range
    (it did once the reply bound became 32 KiB: a follower fell behind the cut)."""
    cluster = Cluster(3, thrifty=False, batching=False, log_slots_max=32, snapshot_slots=16,
                      window_slots=4, catchup_bytes_max=1 << 16)
    cluster.elect(0)
    cluster.crash(2)
    # An open image (a transfer being served) keeps the leader's log from its index on.
    cluster.cores[0]._image(0, 0)
    for i in range(60):
        cluster.submit(0, 1, "put", "k", b"%d" % i)
        cluster.deliver_all()
    assert cluster.cores[0].log_start <= 1 and len(cluster.cores[0].log) > 32
    reply = cluster.cores[0].on_message(2, CatchupRequest(cluster.cores[0].promised, 2))
    entries = [m for _, m in reply.send if isinstance(m, CatchupReply)][0].entries
    assert entries and entries[-1].slot <= 1 + 32
    cluster.restart(2)
    cluster.tick_all(60)
    assert cluster.cores[2].drop_counts().get("bad_entries", 0) == 0
    assert cluster.cores[2].kvs.digest() == cluster.cores[0].kvs.digest()


def test_a_replica_elected_during_its_transfer_abandons_it():
    """A receiver that wins an election mid-transfer (a quorum promised on its log)
    drops the transfer and its staged rows instead of leading with one open (an
    invariant failure the conformance corpus's seed-7 run found)."""
    cluster = behind_the_cut()
    interrupt_transfer(cluster)
    core = cluster.cores[2]
    assert core.transfer is not None
    cluster.carry_out(2, _start_election(core))
    effects = core.on_message(1, Promise(core.promised, (), core.commit_index))
    cluster.carry_out(2, effects)
    assert core.role is Role.LEADER and core.transfer is None
    assert cluster.durable[2].transfer is None and not cluster.durable[2].staging.rows
    core.check_invariants()


# ---- Issue 12, point 1: the bug classes that once survived make test ----


def _accept_into(cluster: Cluster, replica: int, ballot: Ballot, slot: int, batch, commit: int = 0):
    """Make ``replica`` accept ``batch`` at ``slot`` from the owner of ``ballot``."""
    cluster.carry_out(replica, cluster.cores[replica].on_message(
        ballot.replica, Accept(ballot, slot, batch, commit, 0)))


@pytest.mark.parametrize("own_is_higher", [True, False])
def test_new_leader_takes_the_highest_ballot_value_in_any_order(own_is_higher):
    """[1] Paxos Made Simple §2.2, P2c, whichever of the candidate's own entry and a peer's
    reported one is higher, and though the peer's log reaches further: the candidate's
    promise is counted first, the peer's last, so neither "first", "last" nor "longest
    log" picks the right value in both orders."""
    cluster = Cluster(3, thrifty=False)
    low, high = (Command(1, 1, "put", "k", b"low"),), (Command(2, 1, "put", "k", b"high"),)
    own, reported = (high, low) if own_is_higher else (low, high)
    own_ballot, reported_ballot = (Ballot(2, 2), Ballot(1, 2)) if own_is_higher \
        else (Ballot(1, 2), Ballot(2, 2))
    _accept_into(cluster, 0, own_ballot, 1, own)
    cluster.drop_all()
    core = cluster.cores[0]
    cluster.carry_out(0, _start(core))
    extra = Entry(2, reported_ballot, (Command(3, 1, "put", "j", b"j"),))
    cluster.carry_out(0, core.on_message(1, Promise(core.promised, (
        Entry(1, reported_ballot, reported), extra), 0)))
    assert core.role is Role.LEADER
    assert core.log[1].batch == high, "the highest-ballot value of slot 1 is re-proposed"
    assert core.log[2].batch == extra.batch


def test_a_reaccept_under_a_higher_ballot_reaches_the_disk():
    """[4] A follower that accepts a slot again under a higher ballot, with another value
    or the same one, writes the new entry: after a restart it still holds it."""
    cluster = Cluster(3)
    first = (Command(1, 1, "put", "k", b"old"),)
    second = (Command(2, 1, "put", "k", b"new"),)
    _accept_into(cluster, 1, Ballot(1, 0), 1, first)
    _accept_into(cluster, 1, Ballot(2, 2), 1, second)
    assert cluster.durable[1].entries[1] == Entry(1, Ballot(2, 2), second)
    _accept_into(cluster, 1, Ballot(3, 0), 1, second)
    assert cluster.durable[1].entries[1] == Entry(1, Ballot(3, 0), second)
    cluster.crash(1)
    cluster.restart(1)
    assert cluster.cores[1].log[1] == Entry(1, Ballot(3, 0), second)


def test_a_catchup_overwrite_reaches_the_disk():
    """[6] Catch-up that replaces an open entry of another ballot with the committed value
    writes it: after a restart the replica holds the committed value, not its old one."""
    cluster = Cluster(3)
    stale = (Command(1, 1, "put", "k", b"stale"),)
    chosen = (Command(2, 1, "put", "k", b"chosen"),)
    _accept_into(cluster, 1, Ballot(1, 0), 1, stale)
    core = cluster.cores[1]
    cluster.carry_out(1, core.on_message(2, CatchupReply(Ballot(2, 2), (Entry(1, Ballot(2, 2), chosen),), 1)))
    assert core.commit_index == 1 and core.log[1].batch == chosen
    assert cluster.durable[1].entries[1].batch == chosen
    cluster.crash(1)
    cluster.restart(1)
    assert cluster.cores[1].log[1].batch == chosen


def test_catchup_serves_only_the_servers_committed_slots():
    """[6] A follower that committed slot 1 and holds slot 2 from an older ballot (not
    committed: the leader's ballot differs) serves slot 1 alone, however far the leader's
    announced commit point reaches."""
    cluster = Cluster(3)
    old = Ballot(1, 0)
    _accept_into(cluster, 1, old, 1, (Command(1, 1, "put", "a", b"1"),))
    _accept_into(cluster, 1, old, 2, (Command(1, 2, "put", "a", b"2"),), commit=1)
    core = cluster.cores[1]
    assert core.commit_index == 1
    cluster.carry_out(1, core.on_message(2, Heartbeat(Ballot(2, 2), 2, 0)))
    assert core.commit_index == 1 and core.leader_commit_seen == 2
    cluster.drop_all()
    effects = cluster.carry_out(1, core.on_message(0, CatchupRequest(Ballot(2, 2), 1)))
    (reply,) = [m for _, m in effects.send if isinstance(m, CatchupReply)]
    assert [e.slot for e in reply.entries] == [1]
    assert reply.commit_index == 1


def _replica_cut_at(slot: int):
    """A replica whose log was cut at ``slot`` (its rows cover slots up to it)."""
    from lowpaxos.protocols.lowpaxos.durable import DurableState
    import random
    durable = DurableState()
    durable.store.index = slot
    durable.commit_index = slot
    durable.log_start = slot
    cluster = Cluster(3)
    core = cluster.spec.make_core(cluster.config, 1, random.Random(0), durable, False)
    assert core.log_start == slot == core.commit_index
    return core


def test_a_candidate_one_slot_behind_the_cut_is_refused_as_lagging():
    """[7] The cut slot itself is not in the log: a candidate that has not committed it
    gets a Reject marked lagging (it must fetch the state); one that has gets a Promise."""
    core = _replica_cut_at(5)
    effects = core.on_message(0, Prepare(Ballot(1, 0), 4))
    assert [type(m).__name__ for _, m in effects.send] == ["Reject"]
    assert effects.send[0][1].lagging
    effects = core.on_message(2, Prepare(Ballot(2, 2), 5))
    assert [type(m).__name__ for _, m in effects.send] == ["Promise"]


def test_catchup_from_the_cut_slot_starts_a_transfer():
    """[7] A catch-up request from exactly the cut slot is answered with a state transfer
    (the slot is no longer in the log); one from the next slot has nothing to send."""
    core = _replica_cut_at(5)
    effects = core.on_message(0, CatchupRequest(Ballot(1, 0), 5))
    assert effects.send and all(isinstance(m, SnapshotChunk) for _, m in effects.send)
    assert core.on_message(0, CatchupRequest(Ballot(1, 0), 6)).send == []


def test_ballots_of_one_round_order_by_replica():
    """[1] Ballot (3, 1) is above (3, 0): a replica that promised (3, 1) refuses the
    Prepare and the Accepts of (3, 0), so two candidates of one round never both lead."""
    cluster = Cluster(3)
    core = cluster.cores[2]
    cluster.carry_out(2, core.on_message(1, Prepare(Ballot(3, 1), 0)))
    assert core.promised == Ballot(3, 1)
    effects = core.on_message(0, Prepare(Ballot(3, 0), 0))
    assert [type(m).__name__ for _, m in effects.send] == ["Reject"]
    effects = core.on_message(0, Accept(Ballot(3, 0), 1, (Command(1, 1, "put", "k", b"v"),), 0, 0))
    assert [type(m).__name__ for _, m in effects.send] == ["Reject"]
    assert 1 not in core.log
