"""The multi-key and string commands and pipelining against a real 3-process cluster on
127.0.0.1, through redis-py, redis-cli, raw sockets and redis-benchmark. Every process
started here is stopped by the fixture."""

from __future__ import annotations

import random
import re
import shutil
import socket
import subprocess
import threading

import pytest
import redis

from lowpaxos.runtime import resp
from lowpaxos.runtime.launcher import ping

from tests.runtime_helpers import client, started_cluster


BENCHMARK_TIMEOUT_S = 240


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    yield from started_cluster(tmp_path_factory.mktemp("commands-cluster"),
                               limits={"value_bytes_max": 1024}, lifetime_s=600)


def cli(cluster, replica_id, *arguments) -> str:
    assert shutil.which("redis-cli") is not None, "redis-cli missing: `make test` installs it"
    return subprocess.run(["redis-cli", "-p", str(cluster.resp_ports[replica_id]), *arguments],
                          capture_output=True, text=True, timeout=30, check=True).stdout.strip()


def test_new_commands_through_redis_py_on_every_replica(cluster):
    """MSET, MGET, SETNX, GETDEL, APPEND, STRLEN and DBSIZE answer as Redis does through
    the leader and through followers, and a write through one is read through another."""
    for replica_id in range(3):
        r = client(cluster, replica_id)
        other = client(cluster, (replica_id + 1) % 3)
        p = f"new{replica_id}:"
        assert r.mset({p + "a": b"1", p + "b": b"2"}) is True
        assert other.mget([p + "a", p + "absent", p + "b"]) == [b"1", None, b"2"]
        assert r.setnx(p + "a", b"x") is False
        assert r.setnx(p + "c", b"x") is True
        assert r.append(p + "c", b"yz") == 3
        assert other.strlen(p + "c") == 3
        assert r.strlen(p + "absent") == 0
        assert r.getdel(p + "c") == b"xyz"
        assert other.getdel(p + "c") is None
        assert r.exists(p + "a", p + "a", p + "absent") == 2
        size = r.dbsize()
        r.set(p + "d", b"1")
        assert other.dbsize() == size + 1


def test_new_commands_through_redis_cli(cluster):
    """redis-cli runs each new command, and following SCAN's cursors with it lists
    exactly the matching keys. (Not redis-cli --scan: it reads cursors with strtoull, and
    ours exceed 64 bits for keys over 7 bytes; docs/runtime.md, Known limits.)"""
    assert cli(cluster, 1, "MSET", "cli:a", "1", "cli:b", "2") == "OK"
    assert cli(cluster, 2, "MGET", "cli:a", "cli:none", "cli:b").splitlines() == ["1", "", "2"]
    assert cli(cluster, 1, "SETNX", "cli:a", "3") == "0"
    assert cli(cluster, 1, "APPEND", "cli:a", "23") == "3"
    assert cli(cluster, 0, "STRLEN", "cli:a") == "3"
    assert cli(cluster, 0, "GETDEL", "cli:b") == "2"
    assert int(cli(cluster, 2, "DBSIZE")) >= 1
    client(cluster, 0).mset({f"cliscan:{i}": b"v" for i in range(30)})
    listed, cursor = [], "0"
    for _ in range(30):  # 30 keys at COUNT 4 take at most 9 pages (other keys interleave)
        cursor, *keys = cli(cluster, 2, "SCAN", cursor, "MATCH", "cliscan:*", "COUNT", "4").split("\n")
        listed += [key for key in keys if key]
        if cursor == "0":
            break
    assert sorted(listed) == sorted(f"cliscan:{i}" for i in range(30))


def test_errors_of_new_commands(cluster):
    """An odd MSET, a bad cursor and an oversized MSET value get clear errors and store
    nothing. (MSET's total bound is unreachable here: 31 pairs within arguments_max;
    test_runtime_commands covers it.)"""
    r = client(cluster, 1)
    with pytest.raises(redis.ResponseError, match="wrong number of arguments for 'mset'"):
        r.execute_command("MSET", "err:a", "1", "err:b")
    with pytest.raises(redis.ResponseError, match="invalid cursor"):
        r.execute_command("SCAN", "abc")
    with pytest.raises(redis.ResponseError, match="value of 1025 bytes refused"):
        r.mset({"err:c": b"1", "err:d": b"x" * 1025})
    assert r.mget(["err:a", "err:c", "err:d"]) == [None, None, None]


def test_mset_is_atomic_to_concurrent_mget(cluster):
    """While one client MSETs ten keys to the same new value again and again, a concurrent
    MGET of the ten keys (through another replica) always sees ten equal values."""
    keys = [f"atomic:{i}" for i in range(10)]
    writer = client(cluster, 0)
    writer.mset({key: b"0" for key in keys})
    rounds = 150
    seen: list[list[bytes]] = []
    stop = threading.Event()

    def read() -> None:
        reader = client(cluster, 1)
        while not stop.is_set() and len(seen) < 10 * rounds:  # bounded either way
            seen.append(reader.mget(keys))

    thread = threading.Thread(target=read)
    thread.start()
    try:
        for value in range(1, rounds + 1):
            writer.mset({key: b"%d" % value for key in keys})
    finally:
        stop.set()
        thread.join(timeout=60)
    assert len(seen) > 10, "the reader ran alongside the writer"
    assert {len(set(values)) for values in seen} == {1}, "an MGET saw half an MSET"
    assert len({values[0] for values in seen}) > 2, "the reader saw the values move"


def test_scan_returns_every_key_exactly_once(cluster):
    """scan_iter with MATCH and COUNT over a few hundred keys (and others that do not
    match) yields each matching key exactly once; COUNT above 1000 is accepted."""
    r = client(cluster, 2)
    names = [f"scan:{i}" for i in range(300)]
    for start in range(0, len(names), 25):
        r.mset({name: b"v" for name in names[start:start + 25]})
    r.mset({f"other:{i}": b"v" for i in range(30)})  # MSET takes 31 pairs: arguments_max 64
    listed = [key.decode() for key in r.scan_iter(match="scan:*", count=23)]
    assert len(listed) == len(set(listed)) == 300
    assert set(listed) == set(names)
    cursor, keys = r.scan(0, match="scan:1*", count=5000)
    assert cursor == 0 or keys, "a page with COUNT clamped to 1000"


def exchange(sock: socket.socket, data: bytes, replies_expected: int) -> list:
    """Send ``data`` and read ``replies_expected`` replies (raw RESP values)."""
    sock.sendall(data)
    parser = resp.ReplyParser()
    out = []
    while len(out) < replies_expected:  # bounded by the socket timeout
        chunk = sock.recv(65536)
        assert chunk, "the replica closed the connection"
        parser.feed(chunk)
        while len(out) < replies_expected and (reply := parser.next_reply()) is not None:
            out.append(reply)
    return out


def mixed_program(rng: random.Random, prefix: str, count: int) -> list[list[str]]:
    keys = [f"{prefix}{name}" for name in "abcde"]
    program = []
    for _ in range(count):
        key, other = rng.choice(keys), rng.choice(keys)
        value = str(rng.randrange(1000))
        program.append(rng.choice([
            ["SET", key, value], ["GET", key], ["SETNX", key, value], ["GETDEL", key],
            ["APPEND", key, value], ["STRLEN", key], ["MGET", key, other],
            ["MSET", key, value, other, value + "x"], ["DEL", key], ["EXISTS", key, other],
            ["INCR", prefix + "n"], ["CAS", key, value, value + "y"], ["PING"],
            ["GET"], ["SCAN", "0", "MATCH", prefix + "*", "COUNT", "1000"],
        ]))
    return program


def test_pipeline_of_200_mixed_commands_equals_one_by_one(cluster):
    """200 mixed commands sent in one write on one connection (through a follower) get
    the same replies as the same commands on fresh keys sent one at a time."""
    rng = random.Random(7)
    program = mixed_program(rng, "pipe1:", 200)
    twin = [[part.replace("pipe1:", "pipe2:") for part in command] for command in program]
    before = client(cluster, 1).info().get("pipeline_waits", 0)
    with socket.create_connection(("127.0.0.1", cluster.resp_ports[1]), timeout=30) as sock:
        pipelined = exchange(sock, b"".join(resp.encode_command(c) for c in program), 200)
    with socket.create_connection(("127.0.0.1", cluster.resp_ports[1]), timeout=30) as sock:
        one_by_one = [exchange(sock, resp.encode_command(c), 1)[0] for c in twin]

    def normalized(reply):
        return repr(reply).replace("pipe2:", "pipe1:")

    assert [normalized(r) for r in pipelined] == [normalized(r) for r in one_by_one]
    assert client(cluster, 1).info()["pipeline_waits"] > before, "commands waited for earlier ones"


def test_redis_benchmark_with_pipelining(cluster):
    """redis-benchmark -P 16 (SET, GET, MSET; 10 connections) finishes within its timeout
    with nonzero rates, and every replica still answers PING afterwards."""
    assert shutil.which("redis-benchmark") is not None, "redis-benchmark missing (redis-tools)"
    result = subprocess.run(
        ["redis-benchmark", "-p", str(cluster.resp_ports[0]), "-t", "set,get,mset",
         "-n", "5000", "-r", "100000", "-d", "100", "-c", "10", "-P", "16", "-q"],
        capture_output=True, text=True, timeout=BENCHMARK_TIMEOUT_S)
    assert result.returncode == 0, result.stderr
    # -q prints progress lines ending in \r, then one final line per test.
    rates = dict(re.findall(r"^(\S+?)(?: \(10 keys\))?: ([0-9.]+) requests per second",
                            result.stdout.replace("\r", "\n"), re.MULTILINE))
    assert set(rates) >= {"SET", "GET", "MSET"}, result.stdout
    assert all(float(rate) > 0 for rate in rates.values()), rates
    for port in cluster.resp_ports:
        assert ping(port, timeout_s=5)
