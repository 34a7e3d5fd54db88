"""Persist before send, checked in the real runtime driver (runtime/replica.py).

api.py binds the order of an Effects batch: its persist records are durable before
any of its messages or replies leaves, and batches are carried out in order, so a
message of batch n also waits for the records of every batch before n (the core's
state when it produced batch n already reflected them). SIGKILL in the nemesis test
practically never lands in the gap between an early send and the write, so this
test watches the gap itself: each replica process runs the real ``Replica`` with
three seams overridden, and nothing else changed:

* ``enqueue``: numbers each batch the core returns, and notes which message
  counters, persist records and replies it holds;
* ``new_storage``: the SqliteStorage's ``write`` marks a batch written once the
  transaction holding the last of its records has committed (``write`` returned);
* ``send_datagram`` and ``deliver_reply``: every datagram of a core message (whole
  or a fragment, the first send and any resend after a NACK) and every client reply
  is checked, at the moment of the call, against the batches written so far.

A violation is written to ``violations-<id>.txt`` at once; each process keeps
what it checked in ``summary-<id>-<pid>.json`` (rewritten every 0.2 s, at a clean
stop, and before a failed write makes it exit, so SIGKILLed processes count too). The cluster goes
through a leader's SIGKILL and an election, a restarted replica's catch-up, and a
replica that falls behind the log cut and gets the state by transfer, and a
replica whose storage write fails at COMMIT with a disk I/O error (the test asks
for it with a file ``fail-write-<id>``): it must exit with status 3 having sent
nothing of that batch, and rejoin from its file. The test fails on any violation
and requires that the checks covered each of those paths.

Run as a script (``python tests/test_runtime_persist_order.py replica ...``, the
arguments of ``lowpaxos replica``) this module is the checked replica process.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import redis

from lowpaxos.runtime import framing
from lowpaxos.runtime import replica as replica_module
from lowpaxos.runtime.launcher import LocalCluster
from lowpaxos.runtime.storage import SqliteStorage

# Small log bounds so that a replica down for a few hundred writes is behind the cut.
PROTOCOL = {"snapshot_slots": 4, "window_slots": 4, "log_slots_max": 12,
            "transfer_log_slots_max": 64, "commit_hint_ticks": 10}
LIMITS = {"request_timeout_ms": 4000}
STEP_TIMEOUT_S = 30.0  # each phase of the scenario, bounded
SUMMARY_INTERVAL_S = 0.2


class PersistOrderChecker:
    """What one replica process sent, checked against what it wrote (see the module
    docstring). Written from the storage thread, read on the event loop: one lock."""

    def __init__(self, directory: Path, replica_id: int) -> None:
        self.directory = directory
        self.replica_id = replica_id
        self.lock = threading.Lock()
        self.batches = 0
        self.message_batch: dict[int, tuple[int, str]] = {}  # counter -> (batch, type name)
        self.record_batch: dict[int, int] = {}  # id(record) -> batch, until written
        self.records_left: dict[int, int] = {}  # batch -> its records not yet written
        self.reply_batch: dict[int, int] = {}  # id(reply) -> batch, until delivered
        self.checked: Counter[str] = Counter()  # sends checked, by message type
        self.written: Counter[str] = Counter()  # records written, by type
        self.violations = 0

    def batch_returned(self, first_counter: int, effects) -> None:
        with self.lock:
            self.batches += 1
            batch = self.batches
            for index, (_, message) in enumerate(effects.send):
                self.message_batch[first_counter + index] = (batch, type(message).__name__)
            if effects.persist:
                self.records_left[batch] = len(effects.persist)
                for record in effects.persist:
                    self.record_batch[id(record)] = batch
            for reply in effects.reply:
                self.reply_batch[id(reply)] = batch

    def written_records(self, records: list) -> None:
        """Called once the transaction holding ``records`` committed."""
        with self.lock:
            for record in records:
                self.written[type(record).__name__] += 1
                batch = self.record_batch.pop(id(record), None)
                if batch is None:
                    continue
                self.records_left[batch] -= 1
                if self.records_left[batch] == 0:
                    del self.records_left[batch]

    def check(self, batch: int, what: str) -> None:
        with self.lock:
            self.checked[what] += 1
            unwritten = sorted(b for b in self.records_left if b <= batch)
        if unwritten:
            self.violations += 1
            line = (f"replica {self.replica_id}: {what} of batch {batch} left before the "
                    f"records of batches {unwritten[:5]} were written\n")
            with open(self.directory / f"violations-{self.replica_id}.txt", "a") as file:
                file.write(line)

    def check_datagram(self, datagram: bytes) -> None:
        _, _, kind, _, counter = framing.HEADER.unpack_from(datagram)
        if kind == framing.NACK:
            return  # a NACK names a fragment of the peer's message: no state of ours
        found = self.message_batch.get(counter)
        if found is not None:  # None: a forwarded client request, outside any batch
            self.check(found[0], found[1])

    def check_reply(self, reply) -> None:
        batch = self.reply_batch.pop(id(reply), None)
        if batch is not None:  # None: a reply a peer forwarded to us
            self.check(batch, "ClientReply")

    def write_summary(self) -> None:
        with self.lock:
            summary = {"checked": dict(self.checked), "written": dict(self.written),
                       "batches": self.batches, "violations": self.violations}
        path = self.directory / f"summary-{self.replica_id}-{os.getpid()}.json"
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(summary))
        os.replace(temporary, path)  # a reader never sees half a summary, even after SIGKILL

    def summarize_every(self, interval_s: float) -> None:
        """Keep the summary file fresh, so that an incarnation killed with SIGKILL still
        counts (a daemon thread: it ends with the process)."""
        while True:
            time.sleep(interval_s)
            self.write_summary()


CHECKER: PersistOrderChecker | None = None


class FailingCommit:
    """A storage connection whose COMMIT fails as a failed fsync does (disk I/O error)."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    @property
    def in_transaction(self) -> bool:
        return self.connection.in_transaction

    def execute(self, sql: str, *arguments):
        if sql == "COMMIT":
            raise sqlite3.OperationalError("disk I/O error")
        return self.connection.execute(sql, *arguments)

    def __getattr__(self, name):
        return getattr(self.connection, name)


class CheckedStorage(SqliteStorage):
    def write(self, records: list) -> None:
        trigger = CHECKER.directory / f"fail-write-{CHECKER.replica_id}"
        if trigger.exists():  # the test asks for one failed write (see the module docstring)
            trigger.unlink()
            CHECKER.write_summary()  # the process is about to exit with status 3
            self.connection = FailingCommit(self.connection)
        super().write(records)
        CHECKER.written_records(records)


class CheckedReplica(replica_module.Replica):
    def new_storage(self) -> SqliteStorage:
        return CheckedStorage(self.spec.database_path(self.replica_id), self.replica_id,
                              images_max=self.spec.protocol.images_max)

    def enqueue(self, effects, received) -> None:
        # Noted before the runtime sees the batch, so nothing it does with it goes unchecked;
        # enqueue gives the batch's messages the counters that follow.
        if not effects.empty():
            CHECKER.batch_returned(self.counter + 1, effects)
        super().enqueue(effects, received)

    def send_datagram(self, target: int, datagram: bytes) -> None:
        CHECKER.check_datagram(datagram)
        super().send_datagram(target, datagram)

    def deliver_reply(self, reply) -> None:
        CHECKER.check_reply(reply)
        super().deliver_reply(reply)

    async def run(self) -> int:
        status = await super().run()
        CHECKER.write_summary()
        return status


def replica_main(argv: list[str]) -> int:
    """``lowpaxos replica`` with the checked Replica (the launcher's argument list)."""
    global CHECKER
    arguments = argv[argv.index("--id") + 1]
    cluster_file = Path(argv[argv.index("--cluster") + 1])
    CHECKER = PersistOrderChecker(cluster_file.parent, int(arguments))
    threading.Thread(target=CHECKER.summarize_every, args=(SUMMARY_INTERVAL_S,), daemon=True,
                     name="persist-order-summary").start()
    replica_module.Replica = CheckedReplica
    return replica_module.main(argv)


# ------------------------------------------------------------------------ test


def wrapper_script(directory: Path) -> Path:
    """An executable the launcher runs in place of Python: it drops the launcher's
    ``-m lowpaxos.runtime.replica`` and runs this module's checked replica instead."""
    script = directory / "checked-python"
    script.write_text(f'#!/bin/sh\nshift 2\nexec "{sys.executable}" "{Path(__file__).resolve()}" '
                      f'replica "$@"\n')
    script.chmod(0o755)
    return script


def connect(cluster: LocalCluster, replica_id: int) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=cluster.resp_ports[replica_id], protocol=2,
                       socket_timeout=10)


def info(cluster: LocalCluster, replica_id: int) -> dict:
    return connect(cluster, replica_id).info()


def wait_for(what: str, condition) -> None:
    deadline = time.monotonic() + STEP_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except (redis.RedisError, OSError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"not within {STEP_TIMEOUT_S} s: {what}")


def leader(cluster: LocalCluster, alive: list[int]) -> int | None:
    for replica_id in alive:
        try:
            if info(cluster, replica_id)["role"] == "leader":
                return replica_id
        except (redis.RedisError, OSError):
            continue
    return None


def write_keys(cluster: LocalCluster, through: int, prefix: str, count: int) -> None:
    """``count`` SETs through replica ``through``: half one at a time (a slot each),
    half pipelined (several batches pending at once: group commit)."""
    client = connect(cluster, through)
    for number in range(count // 2):
        # TRYAGAIN (no progress within request_timeout_ms, e.g. an election slowed by a
        # loaded machine and this test's durability wrapper) asks the client to retry: the
        # SET is idempotent, so a bounded number of retries keeps the test about order.
        for attempt in range(5):
            try:
                client.set(f"{prefix}-{number}", b"v%d" % number)
                break
            except redis.exceptions.TryAgainError:
                if attempt == 4:
                    raise
    pipe = client.pipeline(transaction=False)
    for number in range(count // 2, count):
        pipe.set(f"{prefix}-{number}", b"v%d" % number)
    assert all(pipe.execute())


def assert_no_violations(directory: Path) -> None:
    violations = sorted(directory.glob("violations-*.txt"))
    assert not violations, "".join(path.read_text()[:2000] for path in violations)


def test_nothing_leaves_a_replica_before_its_records_are_durable(tmp_path):
    """Elections, catch-up and a state transfer in a real 3-process cluster, every
    datagram and reply checked against the durable records at the moment it left."""
    cluster = LocalCluster(tmp_path, 3, protocol=PROTOCOL, limits=LIMITS, lifetime_s=240,
                           python=str(wrapper_script(tmp_path)))
    with cluster:
        cluster.start()
        write_keys(cluster, 0, "first", 40)
        old_leader = leader(cluster, [0, 1, 2])
        assert old_leader is not None
        # The leader dies: the others elect (Prepare/Promise, the new leader's phase 2).
        cluster.kill_replica(old_leader)
        others = [r for r in range(3) if r != old_leader]
        write_keys(cluster, others[0], "second", 6)
        wait_for("a new leader", lambda: leader(cluster, others) is not None)
        new_leader = leader(cluster, others)
        # The old leader comes back a few slots behind (within the log) and catches up.
        cluster.start_replica(old_leader)
        wait_for("the restarted old leader caught up",
                 lambda: info(cluster, old_leader)["kvs_index"]
                 >= info(cluster, new_leader)["commit_index"])
        # A follower goes down while the log moves past the cut: it needs a transfer.
        lagging = next(r for r in others if r != new_leader)
        cluster.kill_replica(lagging)
        write_keys(cluster, new_leader, "third", 200)
        cluster.start_replica(lagging)
        wait_for("the lagging replica installs a transfer and reaches the leader",
                 lambda: int(info(cluster, lagging)["transfers_installed"]) >= 1
                 and info(cluster, lagging)["kvs_index"] >= info(cluster, new_leader)["commit_index"])
        assert connect(cluster, lagging).get("third-199") == b"v199"
        # A follower's write fails at COMMIT (a disk I/O error): it exits with status 3
        # before sending anything of that batch, restarts from its file and catches up.
        failing = lagging
        (tmp_path / f"fail-write-{failing}").touch()
        write_keys(cluster, new_leader, "fourth", 4)
        wait_for("the replica whose write failed exits, or a violation",
                 lambda: cluster.processes[failing].poll() is not None
                 or any(tmp_path.glob("violations-*.txt")))
        assert_no_violations(tmp_path)
        assert cluster.processes[failing].returncode == replica_module.EXIT_STORAGE_FAILED
        cluster.start_replica(failing)
        wait_for("the replica whose write failed caught up",
                 lambda: connect(cluster, failing).get("fourth-3") == b"v3")
    assert_no_violations(tmp_path)
    summaries = [json.loads(path.read_text()) for path in tmp_path.glob("summary-*.json")]
    # One per process started: three, the two SIGKILLed ones restarted, the failed one.
    assert len(summaries) == 6, f"{len(summaries)} summaries: each replica process reports"
    checked = sum((Counter(s["checked"]) for s in summaries), Counter())
    written = sum((Counter(s["written"]) for s in summaries), Counter())
    print(f"checked sends {dict(checked)}; records written {dict(written)}")
    # Coverage: each path this test is about was checked, not just exercised.
    for name in ("Prepare", "Promise", "Accept", "Accepted", "Heartbeat", "CatchupReply",
                 "SnapshotChunk", "ClientReply"):
        assert checked[name] > 0, (name, dict(checked))
    for name in ("SavePromise", "SaveEntries", "SaveCommit", "SaveStaged", "SaveInstall"):
        assert written[name] > 0, (name, dict(written))


if __name__ == "__main__":
    assert sys.argv[1] == "replica", sys.argv
    sys.exit(replica_main(sys.argv[2:]))
