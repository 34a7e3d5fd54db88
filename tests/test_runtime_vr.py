"""VR Revisited in the real runtime: 3 replica processes on 127.0.0.1 built through the
registry from a cluster file naming ``vr`` (docs/vr.md, "The runtime").

With disk = "sync": SET/GET/MSET through redis-py at every replica (backups forward
to the primary), INFO under the shared names, the primary SIGKILLed (a view change,
§4.2) and restarted, and a full-cluster restart that keeps every acknowledged write.
With disk = "none": a backup SIGKILLed and restarted has lost everything and recovers
by the nonce protocol (§4.3), taking the rows by state transfer since the log was
cut; its file holds nothing but the started mark. Every process started is stopped.
"""

from __future__ import annotations

import sqlite3

import msgpack
import pytest

from tests.runtime_helpers import client, converged, info, leader_of, started_cluster, wait_until

SETTLE_S = 40  # bounds on waiting for a view change, recovery or convergence under load


@pytest.fixture(scope="module")
def sync_cluster(tmp_path_factory):
    yield from started_cluster(tmp_path_factory.mktemp("vr-sync"), protocol_name="vr",
                               protocol={"disk": "sync"}, lifetime_s=300)


def write_through_any(cluster, key: str, value: bytes, replicas=(0, 1, 2)) -> None:
    """SET through the first replica that answers (a killed one refuses the connection)."""
    last = None
    for replica_id in replicas:
        try:
            assert client(cluster, replica_id).set(key, value) is True
            return
        except (OSError, ConnectionError) as error:
            last = error
    raise AssertionError(f"no replica took {key}: {last!r}")


def test_commands_through_every_replica(sync_cluster):
    """SET, GET and MSET work through the primary and through both backups (which
    forward to the primary), and a write through one replica reads back through another."""
    cluster = sync_cluster
    for replica_id in range(3):
        r = client(cluster, replica_id)
        assert r.set(f"k{replica_id}", b"v%d" % replica_id) is True
        assert client(cluster, (replica_id + 1) % 3).get(f"k{replica_id}") == b"v%d" % replica_id
        assert r.mset({f"m{replica_id}a": b"1", f"m{replica_id}b": b"2"}) is True
        assert r.mget(f"m{replica_id}a", f"m{replica_id}b", "absent") == [b"1", b"2", None]
    primary = leader_of(cluster)
    assert primary == 0, "the primary of view 0 is replica 0 (view mod N, §4)"
    backup = info(cluster, 1)
    assert backup["requests_forwarded_out"] >= 1 and info(cluster, 0)["requests_forwarded_in"] >= 1


def test_info_reports_the_shared_fields_and_vr_s_own(sync_cluster):
    """INFO says protocol vr, one leader and two followers in one view, and, once the
    backups executed up to the commit-number, equal kvs_index and kvs_digest."""
    cluster = sync_cluster
    client(cluster, 0).set("info-key", b"x")
    infos = wait_until(lambda: converged(cluster), SETTLE_S, "backups execute the commit-number")
    assert sorted(i["role"] for i in infos) == ["follower", "follower", "leader"]
    for fields in infos:
        assert fields["protocol"] == "vr"
        assert fields["status"] == "normal" and fields["disk"] == "sync"
        assert fields["view"] == infos[0]["view"] and fields["leader_hint"] == 0
        assert fields["commit_index"] == fields["kvs_index"] <= fields["op"]
        for name in ("last_normal_view", "log_start", "transfers_installed", "kvs_keys",
                     "slots_in_memory", "storage_transactions", "peak_rss_kb"):
            assert name in fields, name
    assert infos[0]["commit_index"] >= 10


def test_primary_killed_view_change_then_rejoins(sync_cluster):
    """SIGKILL of the primary: the backups change view (§4.2) and keep serving with
    every acknowledged write; the old primary restarts from its disk and catches up."""
    cluster = sync_cluster
    acknowledged = {f"before-{i}": b"b%d" % i for i in range(5)}
    for key, value in acknowledged.items():
        write_through_any(cluster, key, value)
    primary = leader_of(cluster)
    assert primary is not None
    cluster.kill_replica(primary)
    others = [r for r in range(3) if r != primary]
    new_primary = wait_until(lambda: leader_of(cluster, others), SETTLE_S, "a new primary")
    # Exactly one primary; the shared INFO role answers the question for any protocol.
    assert info(cluster, new_primary)["view"] >= 1
    for i in range(5):
        write_through_any(cluster, f"after-{i}", b"a%d" % i, others)
        acknowledged[f"after-{i}"] = b"a%d" % i
    cluster.start_replica(primary)
    infos = wait_until(lambda: converged(cluster), SETTLE_S, "the old primary catches up")
    assert infos[primary]["role"] == "follower" and infos[primary]["status"] == "normal"
    for key, value in acknowledged.items():
        assert client(cluster, primary).get(key) == value


def test_full_cluster_restart_keeps_acknowledged_writes(sync_cluster):
    """disk = "sync": view and log are on disk before anything is sent, so SIGKILL of
    every replica at once loses no acknowledged write."""
    cluster = sync_cluster
    acknowledged = {f"full-{i}": b"f%d" % i for i in range(8)}
    for key, value in acknowledged.items():
        write_through_any(cluster, key, value)
    for replica_id in range(3):
        cluster.kill_replica(replica_id)
    for replica_id in range(3):
        cluster.start_replica(replica_id, wait=False)
    for replica_id in range(3):
        cluster.wait_ready(replica_id)
    for key, value in acknowledged.items():
        assert client(cluster, 2).get(key) == value
    wait_until(lambda: converged(cluster), SETTLE_S, "every replica after the restart")


def test_diskless_backup_recovers_by_the_nonce_protocol(tmp_path):
    """disk = "none": a backup SIGKILLed after the log was cut restarts empty, recovers
    (§4.3: f + 1 RecoveryResponses to its nonce, the primary's among them) with the rows
    by state transfer, and converges; its database holds only the started mark."""
    for started in started_cluster(tmp_path, protocol_name="vr", lifetime_s=300,
                                   protocol={"disk": "none", "snapshot_slots": 8,
                                             "log_slots_max": 24}):
        cluster = started
        r = client(cluster, 0)
        for i in range(60):
            assert r.set(f"d{i}", b"x%d" % i) is True
        wait_until(lambda: all(info(cluster, i).get("log_start", 0) > 0 for i in range(3)),
                   SETTLE_S, "the log is cut at every replica")
        cluster.kill_replica(2)
        cluster.start_replica(2)
        # Converged rows alone are not recovered: the rows can arrive by transfer before
        # the recovery itself completes (status still "recovering"), so wait for both.
        def recovered():
            infos = converged(cluster)
            return infos if infos and infos[2].get("status") == "normal" else None

        infos = wait_until(recovered, SETTLE_S, "the restarted backup recovers")
        assert infos[2]["status"] == "normal" and infos[2]["role"] == "follower"
        assert infos[2]["transfers_installed"] >= 1, infos[2]
        assert infos[2]["kvs_keys"] == infos[0]["kvs_keys"] >= 60
        assert client(cluster, 2).get("d59") == b"x59"
        # Writes go on with the recovered replica counted in the quorum again.
        assert client(cluster, 2).set("after", b"1") is True
        database = tmp_path / "data" / "replica-2.sqlite"
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
            assert connection.execute("SELECT count(*) FROM entries").fetchone() == (0,)
            assert connection.execute("SELECT count(*) FROM kv_a").fetchone() == (0,)
            assert connection.execute("SELECT count(*) FROM kv_b").fetchone() == (0,)
            meta = {name: msgpack.unpackb(value) for name, value in
                    connection.execute("SELECT name, value FROM meta")}
        assert meta["started"] is True and meta["commit"] == 0 and meta["view"] == 0
        assert meta["protocol"] == "vr"
