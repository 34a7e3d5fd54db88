"""Unit tests of the VR Revisited core (impl/lowpaxos/protocols/vr/), tagged with the
section of Liskov and Cowling, "Viewstamped Replication Revisited" (MIT-CSAIL-TR-2012-021)
each one checks, and simulator runs of VR in both disk modes.

The cluster below records every message a core sends and delivers only what a test
lets through, so each scenario is positioned exactly (500 Lines' cluster tests)."""

from __future__ import annotations

import contextlib
import io
import json
import random
from collections import deque

import pytest

from lowpaxos import codec
from lowpaxos.core.api import ClientReply, ClientRequest, Command, ReplyStatus
from lowpaxos.protocols.registry import PROTOCOLS
from lowpaxos.protocols.vr import messages as m
from lowpaxos.protocols.vr.config import ConfigError, VRConfig
from lowpaxos.protocols.vr.core import TRANSITIONS, Status, VRReplica

SPEC = PROTOCOLS["vr"]


class VRCluster:
    """N VR cores over a hand-driven network; durable states folded as a driver does."""

    def __init__(self, replicas: int = 3, seed: int = 0, **options) -> None:
        options.setdefault("invariant_full_scan_steps", 1)
        self.config = SPEC.make_config(replicas, **options)
        self.seed = seed
        self.incarnation = [0] * replicas
        self.durable = [SPEC.new_durable() for _ in range(replicas)]
        self.cores: list[VRReplica] = [self._make(r, None) for r in range(replicas)]
        self.queue: deque[tuple[int, int, object]] = deque()
        self.sent: list[tuple[int, int, object]] = []
        self.replies: list[ClientReply] = []
        self.applied: list[tuple[int, object]] = []
        self.down: set[int] = set()
        self.cut: set[frozenset[int]] = set()
        self.request_ids: dict[int, int] = {}

    def _make(self, replica: int, durable):
        self.incarnation[replica] += 1
        rng = random.Random(self.seed * 1000 + replica * 10 + self.incarnation[replica])
        return SPEC.make_core(self.config, replica, rng, durable, False)

    def carry_out(self, replica: int, effects) -> None:
        for record in effects.persist:
            self.durable[replica].apply(record)
        for target, message in effects.send:
            assert target != replica, "a core never sends to itself"
            # Every message must survive the wire: the simulator and the runtime encode it.
            assert codec.decode(codec.encode(message)) == message
            self.sent.append((replica, target, message))
            self.queue.append((replica, target, message))
        self.replies.extend(effects.reply)
        self.applied.extend((replica, a) for a in effects.applied)

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

    def deliver_one(self):
        source, target, message = self.queue.popleft()
        if target in self.down or frozenset((source, target)) in self.cut:
            return
        self.carry_out(target, self.cores[target].on_message(source, message))

    def deliver_all(self, limit: int = 100_000, lose: tuple[type, ...] = ()) -> None:
        """Deliver until the network is empty; messages of the ``lose`` types are lost."""
        for _ in range(limit):
            if not self.queue:
                return
            if isinstance(self.queue[0][2], lose):
                self.queue.popleft()
                continue
            self.deliver_one()
        raise AssertionError("delivery bounded: the cluster kept talking")

    def crash(self, replica: int) -> None:
        self.down.add(replica)

    def restart(self, replica: int) -> None:
        self.down.discard(replica)
        self.cores[replica] = self._make(replica, self.durable[replica].copy())

    def submit(self, replica: int, client: int, op: str, key: str,
               value: bytes | None = None, request_id: int | None = None) -> Command:
        if request_id is None:
            request_id = self.request_ids.get(client, 0) + 1
        self.request_ids[client] = request_id
        command = Command(client, request_id, op, key, value)
        self.carry_out(replica, self.cores[replica].on_client_request(ClientRequest(command)))
        return command

    def ok(self) -> list[ClientReply]:
        return [r for r in self.replies if r.status is ReplyStatus.OK]

    def primary(self) -> VRReplica:
        primaries = [c for i, c in enumerate(self.cores) if i not in self.down and c.is_primary()]
        return max(primaries, key=lambda c: c.view)


def put_many(cluster: VRCluster, count: int, client: int = 1, value: bytes = b"v",
             key_prefix: str = "k") -> None:
    """``count`` puts at the primary, one at a time, each committed before the next."""
    for i in range(count):
        primary = cluster.primary().replica_id
        cluster.submit(primary, client, "put", f"{key_prefix}{i}", value)
        cluster.tick(primary)  # a partial batch leaves on a tick
        cluster.deliver_all()


def committed_log(core: VRReplica) -> dict[int, tuple]:
    return {op: batch for op, batch in core.log.items() if op <= core.commit}


# ----------------------------------------------------------------- normal operation


def test_normal_operation_prepare_prepareok_commit():
    """§4.1: a request at the primary is prepared at op 1, committed with f + 1 PrepareOKs
    and answered; backups execute it when the next Commit carries the commit-number."""
    cluster = VRCluster()
    cluster.submit(0, 7, "put", "x", b"1")
    cluster.tick(0)
    prepares = [item for item in cluster.queue if isinstance(item[2], m.Prepare)]
    assert [(t, p.view, p.op, p.commit) for _, t, p in prepares] == [(1, 0, 1, 0), (2, 0, 1, 0)]
    cluster.deliver_all()
    assert [(r.client_id, r.request_id, r.status) for r in cluster.replies] == \
        [(7, 1, ReplyStatus.OK)]
    assert cluster.cores[0].commit == 1
    assert [c.commit for c in cluster.cores[1:]] == [0, 0]
    cluster.tick_all(cluster.config.commit_ticks)  # idle: the primary sends Commit
    assert [c.commit for c in cluster.cores] == [1, 1, 1]
    assert len({c.kvs.digest() for c in cluster.cores}) == 1
    kinds = {type(message).__name__ for _, _, message in cluster.sent}
    assert kinds == {"Prepare", "PrepareOK", "Commit"}


def test_backup_redirects_clients_to_the_primary():
    """§4: the primary is view mod N; a backup answers NOT_LEADER naming it."""
    cluster = VRCluster()
    cluster.submit(2, 7, "put", "x", b"1")
    assert cluster.replies == [ClientReply(7, 1, ReplyStatus.NOT_LEADER, None, 0)]


def test_client_table_executes_at_most_once():
    """§4.1 step 2: a retry of the latest executed request is answered from the client
    table, a duplicate of one in progress and an older request are dropped, and a
    retry that reaches a new primary after a view change does not run again."""
    cluster = VRCluster()
    cluster.submit(0, 7, "append", "x", b"a")
    cluster.submit(0, 7, "append", "x", b"a", request_id=1)  # duplicate in progress
    cluster.tick(0)
    cluster.deliver_all()
    assert cluster.cores[0].drop_counts()["duplicate_request"] == 1
    cluster.submit(0, 7, "append", "x", b"a", request_id=1)  # retry after execution
    assert [r.result for r in cluster.ok()] == [1, 1]
    cluster.submit(0, 7, "append", "x", b"b", request_id=2)
    cluster.tick(0)
    cluster.deliver_all()
    cluster.submit(0, 7, "append", "x", b"a", request_id=1)  # older than the latest
    assert cluster.cores[0].drop_counts()["stale_request"] == 1
    assert cluster.cores[0].kvs.get_value("x") == b"ab"
    # The retry of request 2 reaches the primary of view 1: answered, not executed again.
    cluster.tick_all(cluster.config.commit_ticks)
    cluster.crash(0)
    cluster.tick_all(2 * cluster.config.view_change_ticks + 10)
    assert cluster.primary().replica_id == 1
    cluster.submit(1, 7, "append", "x", b"b", request_id=2)
    assert cluster.replies[-1] == ClientReply(7, 2, ReplyStatus.OK, 2, 1)
    assert cluster.cores[1].kvs.get_value("x") == b"ab"


def test_batching_window_and_back_pressure():
    """§6.2 and LowPaxos's pipelining: queued requests leave as batches, at most
    window_slots ops are prepared and not committed, and past the bounded queue the
    primary answers BUSY."""
    cluster = VRCluster(window_slots=2, pending_commands_max=40, batch_bytes_max=200)
    for client in range(50):
        cluster.submit(0, client, "put", f"key{client}", b"x" * 20)
    prepares = [p for _, t, p in cluster.queue if isinstance(p, m.Prepare) and t == 1]
    assert len(prepares) == 2, "the window holds two ops"
    assert [len(p.batch) for p in prepares] == [3, 3], "full batches (3 commands fit)"
    busy = [r for r in cluster.replies if r.status is ReplyStatus.BUSY]
    assert len(busy) == 50 - 6 - 40, "proposed 6, queued 40, the rest BUSY"
    for _ in range(40):
        cluster.tick(0)
        cluster.deliver_all()
    assert len(cluster.ok()) == 46
    assert cluster.cores[0].commit == cluster.cores[0].op


# ----------------------------------------------------------------- view changes


def _batch(tag: str) -> tuple[Command, ...]:
    return (Command(99, 1, "put", tag, tag.encode()),)


class OpNumberOnlyReplica(VRReplica):
    """A wrong view change that picks the log by op-number alone (used only to show that
    the test below can fail)."""

    @staticmethod
    def choose_log(candidates):
        return max(candidates, key=lambda r: (candidates[r].op, -r))


def _view_4_change(replica_class) -> VRReplica:
    """Of five replicas, replica 4 collects for view 4 (its primary: 4 mod 5) a
    DoViewChange with last normal view 3 and ops 1-2 and one with last normal view 2 and
    ops 1-5; with its own (empty) log that makes f + 1 = 3."""
    cluster = VRCluster(replicas=5)
    core = replica_class(cluster.config, 4, random.Random(1))
    cluster.cores[4] = core
    later = m.DoViewChange(4, 3, 2, 0, 0, (m.Entry(1, _batch("v3a")), m.Entry(2, _batch("v3b"))))
    longer = m.DoViewChange(4, 2, 5, 0, 0, tuple(m.Entry(op, _batch(f"v2-{op}"))
                                                 for op in range(1, 6)))
    cluster.carry_out(4, core.on_message(0, later))
    assert core.status is Status.VIEW_CHANGE
    cluster.carry_out(4, core.on_message(1, longer))
    assert core.is_primary() and core.view == 4
    return core


def test_view_change_takes_largest_last_normal_view_then_op():
    """§4.2 step 3: the new primary takes the log with the largest last-normal view, even
    when another DoViewChange reports a longer log from an older view."""
    core = _view_4_change(VRReplica)
    assert core.op == 2 and core.log == {1: _batch("v3a"), 2: _batch("v3b")}


def test_view_change_by_op_number_alone_is_caught():
    """The same DoViewChanges with the log chosen by op-number alone: the test above
    would fail (the view-2 log wins)."""
    core = _view_4_change(OpNumberOnlyReplica)
    assert core.op == 5 and core.log[1] == _batch("v2-1")


def test_view_change_equal_last_normal_view_takes_largest_op():
    """§4.2 step 3: among equal last-normal views, the largest op-number wins, over the
    new primary's own shorter log."""
    cluster = VRCluster()
    put_many(cluster, 2)
    cluster.tick_all(cluster.config.commit_ticks)
    cluster.crash(0)
    core = cluster.cores[1]
    longer = m.DoViewChange(1, 0, 3, 2, 0, (m.Entry(3, _batch("third")),))
    cluster.carry_out(1, core.on_message(2, m.StartViewChange(1)))
    cluster.carry_out(1, core.on_message(2, longer))
    assert core.is_primary() and core.view == 1
    assert core.op == 3 and core.log[3] == _batch("third")


def test_view_change_after_primary_crash_keeps_committed_ops():
    """§4.2: the backups of a crashed primary time out, replica 1 leads view 1 with every
    committed op, and commits new ones; replica 0 rejoins by StartViewChange of view 1."""
    cluster = VRCluster()
    put_many(cluster, 5)
    committed = committed_log(cluster.cores[0])
    cluster.crash(0)
    cluster.tick_all(2 * cluster.config.view_change_ticks + 10)
    primary = cluster.primary()
    assert primary.replica_id == 1 and primary.view == 1
    assert all(primary.log[op] == batch for op, batch in committed.items())
    put_many(cluster, 3, client=2, key_prefix="after")
    cluster.restart(0)  # disk = "sync": it comes back with its log, in view 0
    cluster.tick_all(2 * cluster.config.view_change_ticks)
    assert [c.view for c in cluster.cores] == [1, 1, 1]
    assert len({c.kvs.digest() for c in cluster.cores}) == 1


def test_new_primary_fetches_committed_ops_it_lacks():
    """§5.3: DoViewChange carries only the log above the sender's commit-number, so a new
    primary whose commit-number is lower first fetches the committed ops in between."""
    cluster = VRCluster()
    put_many(cluster, 4)
    cluster.tick_all(cluster.config.commit_ticks)
    # Replica 1 misses everything from here on; replicas 0 and 2 commit 4 more ops.
    cluster.cut = {frozenset((0, 1))}
    put_many(cluster, 4, key_prefix="late")
    cluster.tick_all(cluster.config.commit_ticks)
    assert (cluster.cores[1].commit, cluster.cores[2].commit) == (4, 8)
    cluster.cut = set()
    cluster.crash(0)
    cluster.tick_all(2 * cluster.config.view_change_ticks + 10)
    primary = cluster.primary()
    assert primary.replica_id == 1 and primary.op == 8
    assert committed_log(primary) == committed_log(cluster.cores[2])
    assert "GetState" in {type(msg).__name__ for s, t, msg in cluster.sent if s == 1}


def test_get_state_from_a_replica_out_of_the_view_serves_committed_ops_only():
    """§5.2: a replica that is not normal in the asker's view serves only ops it has
    executed (committed ops are the same in every log); an op it holds above its
    commit-number may still be replaced by the view change, so it is never handed on as
    committed."""
    cluster = VRCluster()
    put_many(cluster, 2)
    cluster.tick_all(cluster.config.commit_ticks)
    cluster.cut = {frozenset((0, 2))}
    cluster.submit(0, 1, "put", "open", b"o")
    cluster.tick(0)
    cluster.deliver_all(lose=(m.PrepareOK,))
    core1 = cluster.cores[1]
    assert (core1.op, core1.commit) == (3, 2), "op 3 is held by replica 1, not committed"
    cluster.carry_out(1, _start_view_change(core1))
    cluster.queue.clear()
    assert core1.status is Status.VIEW_CHANGE
    effects = core1.on_message(2, m.GetState(core1.view, 1))
    (new_state,) = [msg for _, msg in effects.send if isinstance(msg, m.NewState)]
    assert new_state.committed_only and [e.op for e in new_state.entries] == [2]
    assert new_state.op == 2


# ------------------------------------------------------------ the truncation pitfall


class PaperLiteralReplica(VRReplica):
    """§5.2 read literally: a replica that learns of a later view from a Prepare sets its
    op-number to its commit-number, drops the rest of its log and is normal in the new
    view at once. Used only to show that the scenario below tells the two apart."""

    def _join_view_if_later(self, view, action, effects):
        if view == self.view and self.status is Status.NORMAL:
            return False
        for op in [op for op in self.log if op > self.commit]:
            del self.log[op]
        self.op = self.commit
        self.view = view
        if self.status is not Status.NORMAL:
            self._set_status(Status.NORMAL, action)
        self.last_normal_view = view
        self._reset_view_change()
        self._request_state(self.primary_of(view), effects)
        return True


def _pitfall_scenario(cluster: "VRCluster", replica_class) -> dict[int, tuple]:
    """Replica 0 commits ops 2-3 with replica 1 while replica 2 has op 1 only; replica 1
    leads view 1 but its StartViews are lost, and its first Prepare of view 1 reaches
    replica 2 alone. Replica 1 then crashes, and replicas 0 (view change, last normal
    view 0, ops 1-3) and 2 elect replica 2 for view 2. Returns the ops replica 0
    committed (and answered clients for)."""
    cluster.cores[2] = replica_class(cluster.config, 2, random.Random(2))
    put_many(cluster, 1)
    cluster.tick_all(cluster.config.commit_ticks)
    assert [c.commit for c in cluster.cores] == [1, 1, 1]
    cluster.cut = {frozenset((0, 2)), frozenset((1, 2))}
    put_many(cluster, 2, key_prefix="committed")
    assert cluster.cores[0].commit == 3 and cluster.cores[2].op == 1
    committed = committed_log(cluster.cores[0])
    # View change to view 1 between replicas 0 and 1 only; every StartView is lost.
    cluster.cut = {frozenset((0, 2)), frozenset((1, 2))}
    core1 = cluster.cores[1]
    cluster.carry_out(1, _start_view_change(core1))
    cluster.deliver_all(lose=(m.StartView,))
    assert core1.is_primary() and core1.view == 1 and core1.op == 3
    assert cluster.cores[0].status is Status.VIEW_CHANGE and cluster.cores[0].view == 1
    # A client request at replica 1: its Prepare of view 1 reaches replica 2 only.
    cluster.cut = {frozenset((0, 1)), frozenset((0, 2))}
    cluster.submit(1, 5, "put", "new", b"n")
    cluster.tick(1)
    for item in list(cluster.queue):
        if isinstance(item[2], m.Prepare) and item[1] == 2:
            cluster.queue = deque([item])
            break
    cluster.deliver_one()
    cluster.queue.clear()  # replica 2's GetState is lost too
    cluster.crash(1)
    cluster.cut = set()
    # Replicas 0 and 2 move to view 2, whose primary is replica 2.
    cluster.carry_out(2, _start_view_change(cluster.cores[2]))
    cluster.carry_out(0, _start_view_change(cluster.cores[0]))
    cluster.deliver_all()
    return committed


def _start_view_change(core: VRReplica):
    """The view-change timeout fires at ``core`` now."""
    from lowpaxos.core.api import Effects
    effects = Effects()
    core.start_view_change(effects)
    core.check_invariants()
    return effects


def test_truncation_pitfall_ours_keeps_committed_ops():
    """The 2022 model-checking finding on §5.2: ours keeps the old log and last-normal
    view until NewState, so the view-2 primary takes replica 0's log with the committed
    ops 2-3."""
    cluster = VRCluster()
    committed = _pitfall_scenario(cluster, VRReplica)
    primary = cluster.cores[2]
    assert primary.is_primary() and primary.view == 2 and primary.op >= 3
    for op, batch in committed.items():
        assert primary.log.get(op) == batch, f"committed op {op} kept"


def test_truncation_pitfall_paper_literal_loses_committed_ops():
    """The same scenario with §5.2 read literally: the new primary reports view 1 as its
    last normal view with only op 1 and wins, so committed ops 2-3 disappear (this
    shows the scenario above can fail)."""
    cluster = VRCluster()
    _pitfall_scenario(cluster, PaperLiteralReplica)
    primary = cluster.cores[2]
    assert primary.is_primary() and primary.view == 2 and primary.last_normal_view == 2
    assert primary.op == 1 and 2 not in primary.log and 3 not in primary.log
    # Replica 0, which executed ops 1-3, refuses the view-2 log of op 1 only.
    assert cluster.cores[0].drop_counts()["start_view_behind_commit"] == 1


# ------------------------------------------------------------------ recovery


def test_recovery_waits_for_the_primary_response():
    """§4.3: a diskless replica that restarts answers nothing and stays recovering with
    f + 1 responses from backups only; the latest view's primary's response completes
    it with the primary's log."""
    cluster = VRCluster(replicas=5, disk="none")
    put_many(cluster, 3)
    cluster.tick_all(cluster.config.commit_ticks)
    cluster.crash(4)
    cluster.restart(4)
    recovering = cluster.cores[4]
    assert recovering.status is Status.RECOVERING and recovering.commit == 0
    cluster.tick(4)
    recoveries = [item for item in cluster.queue if isinstance(item[2], m.Recovery)]
    assert len(recoveries) == 4
    cluster.cut = {frozenset((0, 4))}  # the primary's answer does not arrive
    cluster.deliver_all()
    assert recovering.status is Status.RECOVERING
    assert len(recovering.recovery_responses) == 3  # f + 1 = 3 responses, none the primary's
    # A Prepare reaching a recovering replica is not answered.
    cluster.carry_out(4, recovering.on_message(0, m.Prepare(0, 4, _batch("p"), 3)))
    assert recovering.drop_counts()["recovering"] == 1 and not cluster.queue
    cluster.cut = set()
    cluster.tick(4, cluster.config.recovery_retry_ticks)
    cluster.deliver_all()
    assert recovering.status is Status.NORMAL and recovering.view == 0
    assert committed_log(recovering) == committed_log(cluster.cores[0])


def test_recovery_needs_f_plus_one_responses_even_with_the_primarys():
    """§4.3 step 3: f responses, the primary's among them, are not enough: a primary
    alone may have been replaced without knowing it, and only f + 1 responses meet every
    quorum of a later view. The f + 1-th completes the recovery."""
    cluster = VRCluster(replicas=5, disk="none")
    put_many(cluster, 2)
    cluster.tick_all(cluster.config.commit_ticks)
    cluster.crash(4)
    cluster.restart(4)
    recovering = cluster.cores[4]
    cluster.cut = {frozenset((2, 4)), frozenset((3, 4))}  # f = 2 answer: 0 (primary) and 1
    cluster.tick(4)
    cluster.deliver_all()
    assert recovering.status is Status.RECOVERING, "f responses do not recover"
    assert set(recovering.recovery_responses) == {0, 1}
    cluster.cut = {frozenset((3, 4))}
    cluster.tick(4, cluster.config.recovery_retry_ticks)
    cluster.deliver_all()
    assert recovering.status is Status.NORMAL
    assert committed_log(recovering) == committed_log(cluster.cores[0])


def test_recovery_ignores_responses_to_another_nonce():
    """§4.3: a response to an earlier Recovery (another nonce) does not count."""
    cluster = VRCluster(disk="none")
    put_many(cluster, 1)
    cluster.crash(2)
    cluster.restart(2)
    cluster.tick(2)
    nonce = cluster.cores[2].nonce
    cluster.carry_out(2, cluster.cores[2].on_message(
        0, m.RecoveryResponse(0, nonce + 1, True, 0, 0, 1, 1, (m.Entry(1, _batch("z")),))))
    cluster.carry_out(2, cluster.cores[2].on_message(
        1, m.RecoveryResponse(0, nonce + 1, False, 0, 0, 0, 0, ())))
    assert cluster.cores[2].status is Status.RECOVERING
    assert cluster.cores[2].drop_counts()["stale_recovery_response"] == 2


def test_diskless_restart_recovers_a_store_beyond_the_log_cut():
    """§4.3 and §5.1: a diskless replica restarted after the others cut their logs gets
    the rows by a chunked transfer, then the log after them by a second recovery round."""
    cluster = VRCluster(disk="none", snapshot_slots=4, log_slots_max=12,
                        transfer_chunk_bytes=64, transfer_window=2)
    put_many(cluster, 30, value=b"x" * 40)
    cluster.tick_all(cluster.config.commit_ticks)
    assert cluster.durable[2].entries == {} and cluster.durable[2].started
    cluster.crash(2)
    cluster.restart(2)
    cluster.tick_all(200)
    core = cluster.cores[2]
    assert core.status is Status.NORMAL and core.transfers_installed == 1
    assert core.kvs.digest() == cluster.cores[0].kvs.digest()
    chunks = [msg for s, t, msg in cluster.sent if isinstance(msg, m.SnapshotChunk) and t == 2]
    assert len(chunks) > 10


def test_sync_mode_survives_a_full_cluster_restart():
    """disk = "sync": view, status and log are on disk before anything is sent, so after
    every replica crashes and restarts the committed ops are all there."""
    cluster = VRCluster(disk="sync")
    put_many(cluster, 6)
    digest = cluster.cores[0].kvs.digest()
    for replica in range(3):
        cluster.crash(replica)
    for replica in range(3):
        cluster.restart(replica)
    cluster.tick_all(cluster.config.commit_ticks + 1)
    assert cluster.cores[0].is_primary()
    assert {c.kvs.digest() for c in cluster.cores} == {digest}
    put_many(cluster, 2, client=3, key_prefix="more")
    assert cluster.cores[0].commit == 8


# ------------------------------------------------------------ state transfer


def test_state_transfer_of_a_store_bigger_than_one_chunk():
    """§5.2 with checkpoints (§5.1): a backup cut off while the others cut their logs
    asks for state, learns the ops are cut, pulls the rows in many one-datagram chunks,
    installs them verified and goes on through the log."""
    cluster = VRCluster(snapshot_slots=4, log_slots_max=12, transfer_chunk_bytes=256,
                        transfer_window=4)
    cluster.cut = {frozenset((0, 2)), frozenset((1, 2))}
    put_many(cluster, 40, value=b"y" * 100)
    assert cluster.cores[0].log_start > cluster.cores[2].commit
    rows = sum(16 + len(key) + len(value) for (_, key), (value, _) in
               cluster.cores[0].kvs.rows.rows.items())
    assert rows > 4 * cluster.config.transfer_chunk_bytes, "the store spans many chunks"
    cluster.cut = set()
    cluster.tick_all(100)
    core = cluster.cores[2]
    assert core.transfers_installed == 1
    assert core.kvs.digest() == cluster.cores[0].kvs.digest()
    assert core.commit == cluster.cores[0].commit
    kinds = [type(msg).__name__ for s, t, msg in cluster.sent if 2 in (s, t)]
    for kind in ("GetState", "NewState", "SnapshotRequest", "SnapshotChunk"):
        assert kind in kinds
    assert sum(1 for kind in kinds if kind == "SnapshotChunk") > 4


def test_memory_stays_bounded_with_a_replica_down():
    """§5.1: with a backup down the log is still cut past log_slots_max ops."""
    cluster = VRCluster(snapshot_slots=4, log_slots_max=12)
    cluster.crash(2)
    put_many(cluster, 60)
    assert len(cluster.cores[0].log) <= cluster.config.log_slots_max
    assert len(cluster.cores[1].log) <= cluster.config.log_slots_max


# ------------------------------------------------------------ filters and tables


def test_bad_input_is_dropped_and_counted():
    """Filter, then assert: non-members, unknown types, forged primaries, malformed
    entries and bad credits are counted drops, never exceptions."""
    cluster = VRCluster()
    core = cluster.cores[1]
    cases = [
        (9, m.Commit(0, 0, 0), "non_member"),
        (0, object(), "unknown_type"),
        (2, m.Prepare(0, 1, _batch("a"), 0), "not_primary"),
        (0, m.Prepare(0, 1, (), 0), "bad_command"),
        (0, m.Prepare(0, 10_000, _batch("a"), 0), "op_out_of_range"),
        (0, m.StartView(3, 2, 0, 0, (m.Entry(1, _batch("a")),)), "bad_start_view"),
        (2, m.DoViewChange(4, 5, 0, 0, 0, ()), "bad_do_view_change"),
        (0, m.SnapshotRequest(0, 0, None, 0), "bad_credits"),
        (0, m.GetState(0, -1), "bad_get_state"),
    ]
    for source, message, reason in cases:
        effects = core.on_message(source, message)
        assert not effects.send, reason
        assert core.drop_counts().get(reason, 0) >= 1, reason
    bad = core.on_client_request(ClientRequest(Command(1, 1, "nope", "k")))
    assert bad.reply[0].status is ReplyStatus.INVALID


def _vr_messages():
    from hypothesis import strategies as st

    small = st.integers(0, 6)
    batch = st.lists(st.builds(Command, st.integers(0, 3), st.integers(0, 5),
                               st.sampled_from(["put", "get", "append"]),
                               st.sampled_from(["a", "b"]), st.just(b"v")),
                     min_size=0, max_size=2).map(tuple)

    def entries(after, count):
        return st.lists(batch, min_size=count, max_size=count).map(
            lambda batches: tuple(m.Entry(after + 1 + i, b) for i, b in enumerate(batches)))

    suffix = st.tuples(small, st.integers(0, 3)).flatmap(
        lambda pair: entries(pair[0], pair[1]).map(lambda e: (pair[0], pair[0] + pair[1], e)))
    return st.one_of(
        st.builds(m.Prepare, small, small, batch, small),
        st.builds(m.PrepareOK, small, small, small),
        st.builds(m.Commit, small, small, small),
        st.builds(m.StartViewChange, small),
        st.builds(lambda v, lnv, c, ls, sx: m.DoViewChange(v, lnv, sx[1], c, ls, sx[2]),
                  small, small, small, small, suffix),
        st.builds(lambda v, c, sx: m.StartView(v, sx[1], c, sx[0], sx[2]), small, small, suffix),
        st.builds(m.GetState, small, st.integers(-1, 6)),
        st.builds(lambda v, ls, c, co, sx: m.NewState(v, ls, sx[0], sx[1], c, co, sx[2]),
                  small, small, small, st.booleans(), suffix),
        st.builds(m.Recovery, small, small),
        st.builds(lambda v, n, p, ls, c, sx: m.RecoveryResponse(v, n, p, ls, sx[0], sx[1], c,
                                                                sx[2]),
                  small, small, st.booleans(), small, small, suffix),
        st.builds(m.SnapshotRequest, small, small, st.none(), st.integers(0, 3)),
        st.builds(m.SnapshotChunk, small, small, small, st.none(), st.none(), st.just(())),
    )


def test_random_messages_never_raise():
    """Bad input never raises out of a VR core: random well-typed messages from members
    and strangers leave every replica's invariants intact, in both disk modes."""
    from hypothesis import HealthCheck, given, settings, strategies as st

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.sampled_from(["sync", "none"]),
           st.lists(st.tuples(st.integers(0, 2), st.integers(-1, 3), _vr_messages()),
                    min_size=1, max_size=25))
    def run(disk, inputs):
        cluster = VRCluster(disk=disk)
        put_many(cluster, 2)
        for target, source, message in inputs:
            core = cluster.cores[target]
            effects = core.on_message(source, message)
            core.check_invariants()
            cluster.carry_out(target, effects)
        cluster.tick_all(5)

    run()


def test_every_status_change_is_in_the_table():
    """h2-style: each (status, action) pair not in TRANSITIONS is refused."""
    actions = {action for _, action in TRANSITIONS} | {"Propose", "HandleRecovery"}
    for status in Status:
        for action in sorted(actions):
            for target in Status:
                if target is status:
                    continue
                core = VRCluster().cores[0]
                core.status = status
                if TRANSITIONS.get((status, action)) is target:
                    core._set_status(target, action)
                    assert core.status is target
                else:
                    with pytest.raises(AssertionError):
                        core._set_status(target, action)


def test_config_refuses_unsafe_settings():
    """Bad settings get a clear ConfigError."""
    with pytest.raises(ConfigError, match="disk"):
        VRConfig(disk="async").validate()
    with pytest.raises(ConfigError, match="log_slots_max"):
        VRConfig(snapshot_slots=64, log_slots_max=10).validate()


def test_vr_messages_round_trip_the_codec():
    """Every VR message type encodes and decodes to itself; garbage is a DecodeError."""
    batch = _batch("a")
    samples = [
        m.Prepare(1, 2, batch, 1), m.PrepareOK(1, 2, 1), m.Commit(1, 2, 1),
        m.StartViewChange(3), m.DoViewChange(3, 1, 2, 1, 0, (m.Entry(2, batch),)),
        m.StartView(3, 2, 1, 1, (m.Entry(2, batch),)), m.GetState(3, 1),
        m.NewState(3, 0, 1, 2, 1, False, (m.Entry(2, batch),)), m.Recovery(12345, 0),
        m.RecoveryResponse(3, 12345, True, 0, 0, 1, 1, (m.Entry(1, batch),)),
        m.SnapshotRequest(3, 0, None, 4),
        m.SnapshotChunk(3, 7, 2**100, None, (1, 0, "k"), ((0, "k", b"v", 7),)),
    ]
    assert {type(s) for s in samples} == set(m.MESSAGE_TYPES)
    for sample in samples:
        assert codec.decode(codec.encode(sample)) == sample
    with pytest.raises(codec.DecodeError):
        codec.decode(codec.encode(m.StartViewChange(3))[:-1] + b"\xc1")


# ------------------------------------------------------------ the simulator


def _sim_json(*arguments: str) -> dict:
    import argparse

    from lowpaxos.sim import cli

    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.command(parser.parse_args([*arguments, "--json"]))
    result = json.loads(out.getvalue())
    result["exit_code"] = code
    return result


def test_sim_runs_vr_with_the_same_summary_as_lowpaxos():
    """`lowpaxos sim --protocol vr ... --json` (the issue's command) prints the same fields
    as LowPaxos, with a linearizable history, converged replicas and liveness."""
    arguments = ["--replicas", "3", "--clients", "32", "--ops", "2000", "--seed", "1",
                 "--loss", "0.01", "--crashes", "1"]
    vr = _sim_json("--protocol", "vr", *arguments)
    lowpaxos = _sim_json("--protocol", "lowpaxos", "--ops", "50",
                         *[a for a in arguments if a not in ("--ops", "2000")])
    assert sorted(vr) == sorted(lowpaxos)
    assert vr["exit_code"] == 0
    assert vr["linearizable"] is True and vr["kvs_converged"] and vr["liveness_completed"]
    assert vr["committed"] == 2000


@pytest.mark.parametrize("disk", ["sync", "none"])
def test_sim_faults_both_disk_modes(disk):
    """The simulator under crashes, a partition, loss, duplication and reordering, with
    small log-cut settings so that transfers happen: safe and live in both disk modes
    (diskless: one crash at a time, within f)."""
    from lowpaxos.sim import topology
    from lowpaxos.sim.faults import FaultPlan
    from lowpaxos.sim.run import RunLimits, run
    from lowpaxos.sim.simulator import SimOptions

    for seed in (3, 4):
        config = SPEC.make_config(3, disk=disk, invariant_full_scan_steps=1, snapshot_slots=4,
                                  log_slots_max=12, transfer_window=2, transfer_chunk_bytes=64)
        tick_us = 1000
        options = SimOptions(replicas=3, clients=8, ops=300, seed=seed, keys=10, value_bytes=0,
                             tick_us=tick_us, client_timeout_us=50 * tick_us,
                             client_backoff_us=2 * tick_us, topology=topology.load("lan"),
                             print_events=None, core_trace=True, trace_events=None)
        plan = FaultPlan.random(random.Random(f"faults:{seed}"), replicas=3,
                                window_us=400 * tick_us, tick_us=tick_us,
                                crashes=2 if disk == "sync" else 1, partitions=1,
                                loss=0.02, dup=0.01, reorder=0.01)
        limits = RunLimits(safety_us=400 * tick_us, liveness_us_max=60_000 * tick_us,
                           settle_us_max=2_000 * tick_us, wall_s_max=60)
        result = run(SPEC, config, options, plan, limits, protocol="vr")
        assert result["linearizable"] is True, (seed, result["linearizability"])
        assert result["kvs_converged"] and result["liveness_completed"], seed
        assert result["faults_injected"].get("crash", 0) >= 1


def test_trace_events_have_the_shared_shape():
    """Trace events carry action, replica and the spec_state variables of docs/vr.md, as
    LowPaxos's do; receive events name the source and describe the message."""
    cluster = VRCluster()
    for core in cluster.cores:
        core.trace_on = True
    events = []
    effects = cluster.cores[0].on_client_request(ClientRequest(Command(1, 1, "put", "a", b"1")))
    events += effects.trace
    cluster.carry_out(0, effects)
    effects = cluster.cores[0].on_tick()
    events += effects.trace
    cluster.carry_out(0, effects)
    source, target, message = cluster.queue.popleft()
    effects = cluster.cores[target].on_message(source, message)
    events += effects.trace
    assert [e["action"] for e in events] == ["Propose", "HandlePrepare"]
    for event in events:
        assert set(event["state"]) == {"view", "status", "last_normal_view", "op", "commit",
                                       "log", "log_start"}
        json.dumps(event)
    assert events[1]["source"] == 0 and events[1]["message"]["type"] == "Prepare"
    assert events[1]["state"]["log"] == events[0]["state"]["log"]
