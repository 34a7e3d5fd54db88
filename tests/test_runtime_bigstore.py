"""A big store on a real 3-process cluster on 127.0.0.1: a follower that was down while
the log was cut catches up by chunked state transfer under datagram loss and a leader
crash, and redis-benchmark's load leaves every replica alive and converged.

Convergence is judged by the KVS digest (kvs.py: the sum of the row hashes, sessions
included): every replica reports the same ``kvs_index`` and ``kvs_digest`` in INFO, and
after the cluster stops each database, rebuilt to that index (the stored rows, checked
against their meta digest, then the log entries above them applied with the KVS, as a
restarted replica does), has that digest.

Every process the tests start is stopped; every loop is bounded in count and time.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import shutil
import socket
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import msgpack

from lowpaxos.check.linearizability import Operation, check_history
from lowpaxos.kvs import KeyValueStore
from lowpaxos.protocols.lowpaxos.durable import decode_transfer
from lowpaxos.runtime.client import LowPaxosClient, ReplyError
from lowpaxos.runtime.faultproxy import UdpFaultProxy
from lowpaxos.runtime.launcher import LocalCluster, ping
from lowpaxos.runtime.resp import ReplyParser, encode_command
from lowpaxos.runtime.storage import SqliteStorage

import redis  # noqa: E402 - a test dependency (pyproject's test extras); never skipped

# ---------------------------------------------------------------- helpers


def info(port: int, timeout_s: float = 3.0) -> dict[str, str]:
    """INFO of one replica as a dict; {} when it does not answer within ``timeout_s``
    (one try: a replica that is down or busy must not stall the caller for longer)."""
    deadline = time.monotonic() + timeout_s
    parser = ReplyParser()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
            sock.sendall(encode_command(["INFO"]))
            reply = parser.next_reply()
            while reply is None and time.monotonic() < deadline:  # bounded by time
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                data = sock.recv(65536)
                if not data:
                    return {}
                parser.feed(data)
                reply = parser.next_reply()
    except OSError:
        return {}
    if reply is None or reply[0] != "$":
        return {}
    fields = {}
    for line in reply[1].decode().splitlines():
        if line and not line.startswith("#") and ":" in line:
            name, _, value = line.partition(":")
            fields[name] = value
    return fields


def leader_of(cluster: LocalCluster) -> int | None:
    for replica_id, port in enumerate(cluster.resp_ports):
        if info(port).get("role") == "leader":
            return replica_id
    return None


def wait_for_leader(cluster: LocalCluster, timeout_s: float = 15.0) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:  # bounded by time
        leader = leader_of(cluster)
        if leader is not None:
            return leader
        time.sleep(0.1)
    raise AssertionError(f"no leader within {timeout_s} s")


def database_path(cluster: LocalCluster, replica_id: int) -> Path:
    return cluster.directory / "data" / f"replica-{replica_id}.sqlite"


def read_meta(path: Path) -> dict:
    """The meta rows of a (possibly running) replica's database, read-only. WAL lets
    this reader run beside the replica's writer; it sees the last committed state."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return {name: msgpack.unpackb(value, raw=False)
                for name, value in connection.execute("SELECT name, value FROM meta")}
    finally:
        connection.close()


def transfer_state(path: Path) -> dict | None:
    """The state transfer in progress in a replica's database (source, image index,
    whether the stream resumes an earlier one, rows staged so far), or None."""
    meta = read_meta(path)
    transfer = decode_transfer(meta["transfer"])
    if transfer is None:
        return None
    staging = "b" if meta["live"] == "a" else "a"
    staged_rows = meta[f"rows_{staging}"][3]  # PairMeta value: index, digest, horizon, data rows
    return {"source": transfer.source, "image_index": transfer.image_index,
            "resumed": transfer.split is not None, "staged_rows": staged_rows}


class TransferTimeline:
    """Samples of a replica's transfer (``transfer_state``), kept when the stream changes
    (source, image, resumed or not) or the staged rows shrink (a restart from nothing),
    and at most once a second otherwise: what the test and its report show."""

    def __init__(self, path: Path, started: float) -> None:
        self.path = path
        self.started = started
        self.samples: list[tuple[float, dict | None]] = []
        self.last_kept = 0.0

    def sample(self) -> dict | None:
        state = transfer_state(self.path)
        now = time.monotonic() - self.started
        previous = self.samples[-1][1] if self.samples else None
        changed = (state is None) != (previous is None) or (
            state is not None and previous is not None
            and ((state["source"], state["image_index"], state["resumed"])
                 != (previous["source"], previous["image_index"], previous["resumed"])
                 or state["staged_rows"] < previous["staged_rows"]))
        if changed or now - self.last_kept >= 1.0:
            self.samples.append((round(now, 2), state))
            self.last_kept = now
        return state

    def streams(self) -> list[tuple]:
        """(source, image index, resumed) of every stream seen, in order."""
        seen: list[tuple] = []
        for _, state in self.samples:
            if state is not None:
                stream = (state["source"], state["image_index"], state["resumed"])
                if not seen or seen[-1] != stream:
                    seen.append(stream)
        return seen

    def restarts_from_nothing(self) -> int:
        """How often the staged rows shrank: a stream begun again from nothing."""
        count, previous = 0, None
        for _, state in self.samples:
            if state is not None and previous is not None and \
                    state["staged_rows"] < previous["staged_rows"]:
                count += 1
            previous = state if state is not None else previous
        return count


def stored_digest(path: Path, replica_id: int, index: int) -> tuple[int, int]:
    """(index, digest) of a stopped replica's KVS at ``index``: its stored rows, checked
    against their meta digest, then the log entries above them up to ``index`` applied
    in slot order, as the core does when it restarts (LowPaxosReplica.__init__)."""
    storage = SqliteStorage(path, replica_id)
    try:
        state = storage.load(verify_rows=True)
        kvs = KeyValueStore(state.open_store())
        store_index = kvs.rows.index
        assert store_index <= index, f"replica {replica_id} stored rows at {store_index} > {index}"
        for slot in range(store_index + 1, index + 1):
            assert slot in state.entries, f"replica {replica_id} lacks applied slot {slot}"
            for command in state.entries[slot].batch:
                kvs.apply(command, slot)
        return index, kvs.rows.digest
    finally:
        storage.close()


def converged_digests(cluster: LocalCluster, timeout_s: float) -> dict[int, tuple[int, str]]:
    """Wait (bounded) until every replica reports the same ``kvs_index`` and ``kvs_digest``
    in INFO; return each replica's pair."""
    deadline = time.monotonic() + timeout_s
    last: dict[int, dict] = {}
    while time.monotonic() < deadline:  # bounded by time
        last = {i: info(port, 1.0) for i, port in enumerate(cluster.resp_ports)}
        assert all("kvs_index" in fields for fields in last.values() if fields), \
            "INFO has no kvs_index/kvs_digest lines"
        pairs = {i: (int(f["kvs_index"]), f["kvs_digest"]) for i, f in last.items() if f}
        if len(pairs) == cluster.count and len(set(pairs.values())) == 1:
            return pairs
        time.sleep(0.2)
    summary = {i: {k: f.get(k) for k in ("role", "commit_index", "kvs_index", "kvs_digest",
                                         "log_start")} for i, f in last.items()}
    raise AssertionError(f"replicas did not converge within {timeout_s} s: {summary}")


def check_stored_state(cluster: LocalCluster, digests: dict[int, tuple[int, str]]) -> None:
    """After ``cluster.stop()``: every database, rebuilt to the index INFO reported,
    has the digest INFO reported (so the converged state is also the durable one)."""
    for replica_id, (index, digest) in digests.items():
        _, stored = stored_digest(database_path(cluster, replica_id), replica_id, index)
        assert f"{stored:032x}"[:len(digest)] == digest, (replica_id, index, digest, stored)


# ------------------------------------------- a follower catches up a big store

KEYS = [f"h{i:03d}" for i in range(300)]
WORKERS = 4
CLIENT_TIMEOUT_S = 6.0
FILL_VALUE_BYTES = 1000
FILL_PAIRS_PER_MSET = 10  # 21 arguments, within arguments_max (64)
FILL_KEYS = 10_500  # 10.5 MB of values
FILL_CONNECTIONS = 4
FILL_PIPELINE = 16
LOSS = 0.05
CATCH_UP_S_MAX = 60
BIG_PROTOCOL = {
    # Cut the log every 16 applied slots, and hold at most 64 even while a replica is
    # down, so a 10 MB fill (about a thousand 10 KB MSET slots) cuts it many times. The
    # transfer settings are the defaults.
    "snapshot_slots": 16,
    "log_slots_max": 64,
}


def fill_value(key: str) -> bytes:
    return (key.encode() + b".") * (FILL_VALUE_BYTES // (len(key) + 1)) + b"!"


def fill(port: int, cuts: list[int]) -> None:
    """MSET every fill key through ``port`` (pipelined, FILL_CONNECTIONS connections),
    recording each new log_start that replica (the leader) reports meanwhile in ``cuts``."""
    keys = [f"fill:{i:05d}" for i in range(FILL_KEYS)]
    groups = [keys[i:i + FILL_PAIRS_PER_MSET] for i in range(0, len(keys), FILL_PAIRS_PER_MSET)]
    errors: list[BaseException] = []

    def connection(share: list[list[str]]) -> None:
        client = redis.Redis(host="127.0.0.1", port=port, protocol=2, socket_timeout=30)
        try:
            for start in range(0, len(share), FILL_PIPELINE):
                pipeline = client.pipeline(transaction=False)
                for group in share[start:start + FILL_PIPELINE]:
                    pipeline.mset({key: fill_value(key) for key in group})
                assert all(reply is True for reply in pipeline.execute())
        except BaseException as error:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(error)

    threads = [threading.Thread(target=connection, args=(groups[i::FILL_CONNECTIONS],))
               for i in range(FILL_CONNECTIONS)]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):  # bounded: the fill ends or times out
        log_start = int(info(port).get("log_start", 0))
        if not cuts or log_start != cuts[-1]:
            cuts.append(log_start)
        time.sleep(0.1)
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


async def history_worker(index: int, ports: list[int], stop: asyncio.Event,
                         history: list[Operation], counter: itertools.count) -> None:
    """SET/GET on KEYS through replicas in turn until ``stop``; each operation goes into
    ``history``, with no response when its outcome is unknown."""
    rng = random.Random(index)
    addresses = [("127.0.0.1", port) for port in ports[index % 3:] + ports[:index % 3]]
    async with LowPaxosClient(addresses, 1, timeout_s=CLIENT_TIMEOUT_S) as client:
        for _ in range(100_000):  # bounded in count, and by ``stop``
            if stop.is_set():
                return
            key = rng.choice(KEYS)
            value = None
            if rng.random() < 0.5:
                op, arguments = "get", ("GET", key)
            else:
                op = "put"
                value = b"w%d-%d" % (index, next(counter))
                arguments = ("SET", key, value)
            invoke = time.monotonic_ns()
            try:
                reply = await client.execute(*arguments)
            except (ReplyError, ConnectionError, OSError, asyncio.TimeoutError):
                history.append(Operation(index, op, key, value, None, invoke, None, None))
                await asyncio.sleep(0.05)
                continue
            history.append(Operation(index, op, key, value, None, invoke, time.monotonic_ns(),
                                     reply if op == "get" else None))
            await asyncio.sleep(0.01)  # leave the fill and the transfer most of the machine


def test_follower_catches_up_a_10mb_store_by_transfer_through_loss_and_a_leader_crash(tmp_path):
    """A follower down while a 10 MB fill cuts the log many times restarts and catches up
    by chunked transfer with 5% of datagrams dropped, the leader SIGKILLed mid-transfer;
    acknowledged writes survive, the SET/GET history is linearizable, digests agree."""
    cluster = LocalCluster(tmp_path, 3, proxied=True, lifetime_s=240, protocol=BIG_PROTOCOL,
                           limits={"request_timeout_ms": 4000})
    proxy = UdpFaultProxy(cluster.udp_ports, cluster.bind_ports, lifetime_s=240, seed=7).start()
    history: list[Operation] = []
    log: list[str] = []
    evidence: dict = {}
    started = time.monotonic()
    try:
        cluster.start()
        leader = wait_for_leader(cluster)
        follower = (leader + 1) % 3
        other = 3 - leader - follower
        follower_db = database_path(cluster, follower)

        async def scenario() -> None:
            loop = asyncio.get_running_loop()

            def blocking(function, *arguments):
                return loop.run_in_executor(None, function, *arguments)

            stop = asyncio.Event()
            counter = itertools.count(1)
            workers = [asyncio.ensure_future(history_worker(
                i, cluster.resp_ports, stop, history, counter)) for i in range(WORKERS)]
            try:
                await asyncio.sleep(1)
                log.append(f"SIGKILL follower {follower}")
                await blocking(cluster.kill_replica, follower)
                down_meta = read_meta(follower_db)
                evidence["follower_commit_when_down"] = down_meta["commit_index"]
                cuts: list[int] = []
                fill_started = time.monotonic()
                await blocking(fill, cluster.resp_ports[leader], cuts)
                evidence["fill_s"] = round(time.monotonic() - fill_started, 1)
                evidence["cuts"] = cuts
                for replica_id in (leader, other):
                    fields = await blocking(info, cluster.resp_ports[replica_id])
                    evidence[f"log_start_{replica_id}"] = int(fields["log_start"])
                log.append(f"filled {FILL_KEYS} keys; loss {LOSS:.0%}; restart {follower}")
                proxy.set_loss(LOSS)
                await blocking(cluster.start_replica, follower)
                timeline = TransferTimeline(follower_db, started)
                evidence["timeline"] = timeline
                # Wait (bounded) until a good part of the image is staged, then kill the leader.
                deadline = time.monotonic() + 30
                seen = None
                while time.monotonic() < deadline:
                    seen = await blocking(timeline.sample)
                    if seen is not None and seen["staged_rows"] >= FILL_KEYS // 5:
                        break
                    await asyncio.sleep(0.02)
                assert seen is not None and seen["staged_rows"] >= FILL_KEYS // 5, \
                    f"no transfer in progress on {follower} within 30 s: {timeline.samples}"
                images_open = int((await blocking(info, cluster.resp_ports[leader]))
                                  .get("rows_images_open", -1))
                await blocking(cluster.kill_replica, leader)
                after_kill = await blocking(timeline.sample)
                evidence["at_kill"] = dict(seen, leader_images_open=images_open,
                                           still_in_progress=after_kill is not None)
                log.append(f"SIGKILL leader {leader} during the transfer "
                           f"({seen['staged_rows']} rows staged from {seen['source']})")
                restart_at = time.monotonic() + 2
                # The follower finishes its transfer and catches up (bounded); the old leader
                # restarts after 2 s.
                deadline = time.monotonic() + CATCH_UP_S_MAX
                while time.monotonic() < deadline:
                    if restart_at is not None and time.monotonic() >= restart_at:
                        log.append(f"restart {leader}")
                        await blocking(cluster.start_replica, leader, False)
                        restart_at = None
                    state = await blocking(timeline.sample)
                    asked = time.monotonic()
                    fields = await blocking(info, cluster.resp_ports[follower])
                    # How long the receiving replica took to answer INFO (or gave up, 3 s).
                    evidence["follower_info_s_max"] = round(max(
                        evidence.get("follower_info_s_max", 0), time.monotonic() - asked), 2)
                    applied = int(fields.get("applied_index", 0))
                    top = max([int((await blocking(info, port, 0.5)).get("commit_index", 0))
                               for port in cluster.resp_ports])
                    if restart_at is None and state is None and applied >= top - 64 and \
                            applied > evidence["at_kill"]["image_index"]:
                        break
                    await asyncio.sleep(0.1)
                else:
                    drops = {k: v for k, v in fields.items()
                             if k.startswith("core_drop") or k.startswith("transfer")}
                    raise AssertionError(f"{follower} did not catch up within {CATCH_UP_S_MAX} s "
                                         f"(applied {applied}, top {top}; {drops}): "
                                         f"{timeline.samples}")
                evidence["follower_info"] = {k: v for k, v in fields.items()
                                             if k.startswith("core_drop") or k in (
                                                 "snapshot_index", "log_start", "applied_index",
                                                 "transfers_installed")}
                evidence["caught_up_s"] = round(time.monotonic() - started, 1)
                log.append("heal")
                proxy.heal()
                await asyncio.sleep(2)
            finally:
                stop.set()
                await asyncio.gather(*workers, return_exceptions=True)
            # Healed and quiet: a final read of every key must see every acknowledged write.
            async with LowPaxosClient([("127.0.0.1", p) for p in cluster.resp_ports], 1,
                                      timeout_s=10) as client:
                for key in KEYS:
                    for _ in range(20):  # bounded retries while the cluster settles
                        invoke = time.monotonic_ns()
                        try:
                            value = await client.get(key)
                        except (ReplyError, ConnectionError, OSError, asyncio.TimeoutError):
                            await asyncio.sleep(0.5)
                            continue
                        history.append(Operation(99, "get", key, None, None, invoke,
                                                 time.monotonic_ns(), value))
                        break
                    else:
                        raise AssertionError(f"final read of {key} never succeeded")

        asyncio.run(scenario())

        # Every acknowledged fill key holds its value (MGET through the new leader).
        reader = redis.Redis(host="127.0.0.1", port=cluster.resp_ports[follower], protocol=2,
                             socket_timeout=30)
        keys = [f"fill:{i:05d}" for i in range(FILL_KEYS)]
        pipeline = reader.pipeline(transaction=False)
        for start in range(0, len(keys), 30):
            pipeline.mget(keys[start:start + 30])
        values = [value for reply in pipeline.execute() for value in reply]
        wrong = [key for key, value in zip(keys, values) if value != fill_value(key)]
        assert not wrong, f"{len(wrong)} acknowledged fill keys lost or wrong, e.g. {wrong[:3]}"

        digests = converged_digests(cluster, timeout_s=30)
        cluster.stop()
        check_stored_state(cluster, digests)
    finally:
        cluster.stop()
        proxy.stop()

    elapsed = time.monotonic() - started
    completed = [op for op in history if op.response is not None]
    writes = [op for op in completed if op.op == "put"]
    result = check_history(history, time_limit_s=60)
    timeline = evidence.pop("timeline")
    print(f"bigstore: {log}; evidence {evidence}; transfer streams {timeline.streams()}, "
          f"{timeline.restarts_from_nothing()} restarts from nothing; samples "
          f"{timeline.samples}; proxy lost {proxy.lost} of "
          f"{proxy.forwarded + proxy.dropped} datagrams; {len(history)} operations, "
          f"{len(completed)} completed, {len(writes)} acknowledged writes; digests {digests}; "
          f"linearizable={result.linearizable}; {elapsed:.0f} s")
    # The log was cut at least twice while the follower was down, past what it held.
    cut_points = [c for c in evidence["cuts"] if c > evidence["follower_commit_when_down"]]
    assert len(cut_points) >= 2, evidence["cuts"]
    assert min(evidence[f"log_start_{r}"] for r in (leader, other)) > \
        evidence["follower_commit_when_down"], evidence
    # The leader died while the transfer was under way, and the follower still finished it.
    assert evidence["at_kill"]["still_in_progress"], evidence["at_kill"]
    assert int(evidence["follower_info"]["snapshot_index"]) >= evidence["at_kill"]["image_index"]
    assert int(evidence["follower_info"]["transfers_installed"]) >= 1, evidence["follower_info"]
    assert proxy.lost > 0
    assert len(completed) >= 100, f"only {len(completed)} operations completed"
    assert len(writes) >= 30
    assert result.linearizable is True, result.explanation
    assert len(set(digests.values())) == 1, digests


# ------------------------------------------------- redis-benchmark, then convergence

# The issue asks for one run, -t set,get,mset -n 200000. Measured here (2 cores, shared):
# SET and GET at 200,000 take about 3 minutes together, but MSET runs one command per
# slot (a 10-key MSET of 100-byte values is over batch_bytes_max) at about 250/s, so
# 200,000 MSETs take about 800 s and the whole command about 16 minutes, over the
# 15-minute budget of `make test` by itself.
# `make stress` runs the full command (LOWPAXOS_STRESS=1: -t set,get,mset at
# 200,000); `make test` runs SET and GET at 100,000 and MSET at 10,000 to stay in budget.
BENCHMARK_FLAGS = ["-r", "1000000", "-d", "100", "-c", "50", "-P", "16"]
if os.environ.get("LOWPAXOS_STRESS") == "1":
    BENCHMARK_RUNS = [("set,get,mset", 200_000)]
    BENCHMARK_TIMEOUT_S = 3600
else:
    BENCHMARK_RUNS = [("set,get", 100_000), ("mset", 10_000)]
    BENCHMARK_TIMEOUT_S = 600


def test_redis_benchmark_leaves_every_replica_alive_and_converged(tmp_path):
    """redis-benchmark's SET, GET and MSET (BENCHMARK_RUNS: smaller in make test, the
    issue's 200,000 each under make stress), with 50
    connections, 16 pipelined and random keys of 100 bytes, complete against the leader;
    afterwards no replica exited, each answers PING, and all reach one kvs index and digest."""
    assert shutil.which("redis-benchmark") is not None, \
        "redis-benchmark missing: `make test` installs redis-tools"
    cluster = LocalCluster(tmp_path, 3, lifetime_s=len(BENCHMARK_RUNS) * BENCHMARK_TIMEOUT_S + 120)
    rates: dict[str, float] = {}
    seconds: dict[str, float] = {}
    try:
        cluster.start()
        leader = wait_for_leader(cluster)
        pids = cluster.pids()
        for tests, requests in BENCHMARK_RUNS:
            started = time.monotonic()
            run = subprocess.run(
                ["redis-benchmark", "-h", "127.0.0.1", "-p", str(cluster.resp_ports[leader]),
                 "-t", tests, "-n", str(requests), *BENCHMARK_FLAGS, "--csv"],
                capture_output=True, text=True, timeout=BENCHMARK_TIMEOUT_S)
            seconds[tests] = round(time.monotonic() - started)
            # redis-benchmark stops at the first error reply (such as TRYAGAIN) with status 1.
            assert run.returncode == 0, \
                f"redis-benchmark -t {tests}: {run.stderr[-2000:]} {run.stdout[-2000:]}"
            # --csv: a header, then "test","rps","avg_latency_ms",... per test.
            rows = [line.replace('"', "").split(",") for line in run.stdout.splitlines()]
            rates.update({row[0].split()[0]: float(row[1]) for row in rows[1:] if len(row) > 1})
        assert set(rates) == {"SET", "GET", "MSET"}, rates
        assert all(rate > 0 for rate in rates.values()), rates
        assert cluster.pids() == pids, f"a replica exited: {pids} -> {cluster.pids()}"
        assert all(ping(port, timeout_s=5) for port in cluster.resp_ports)
        fields = {i: info(port) for i, port in enumerate(cluster.resp_ports)}
        digests = converged_digests(cluster, timeout_s=60)
        cluster.stop()
        check_started = time.monotonic()
        check_stored_state(cluster, digests)
        check_s = time.monotonic() - check_started
    finally:
        cluster.stop()
    print(f"redis-benchmark {BENCHMARK_RUNS} {' '.join(BENCHMARK_FLAGS)}: {rates} requests/s, "
          f"{seconds} s; peak RSS kB {[fields[i].get('peak_rss_kb') for i in fields]}; "
          f"digests {digests}; stored state checked in {check_s:.1f} s")
