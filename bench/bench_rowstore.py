"""Memory and disk of a replica's store of many rows (not a timed test).

    .venv/bin/python bench/bench_rowstore.py --keys 1000000 --value-bytes 100

``fill`` (a child process) writes the keys into a fresh database through
SqliteStorage the way the runtime does: KVS changes made with kvs.write_row on a
SqliteRowStore, taken in SaveRows records of ``--rows-per-record`` rows, written,
then acknowledged with rows_committed. ``load`` (another child, so its peak RSS
is its own) loads the file, builds a LowPaxos core from it, reads and writes
random keys through the core's KVS, walks an image of every row as a state
transfer would, and then writes while an image is open to show what that does to
the WAL. Each prints JSON; the parent prints both.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "impl"))

from lowpaxos.kvs import DATA, KeyValueStore, write_row  # noqa: E402
from lowpaxos.protocols.lowpaxos.messages import SaveRows, SaveTruncate  # noqa: E402
from lowpaxos.runtime.storage import SqliteStorage  # noqa: E402


def rss_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def peak_rss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def persist(storage: SqliteStorage, store, index: int) -> None:
    store.index = index
    # No log entries here: the log is cut at once, as a core cuts it behind the rows.
    records = [SaveRows(index, store.digest, store.tombstone_horizon, store.take_changes()),
               SaveTruncate(index)]
    marks = storage.row_marks()
    storage.write(records)
    storage.rows_committed(marks)


def fill(path: str, keys: int, value_bytes: int, rows_per_record: int) -> dict:
    started = time.perf_counter()
    storage = SqliteStorage(path, 0)
    store = storage.load().open_store()
    rng = random.Random(1)
    index = 0
    for number in range(keys):
        write_row(store, DATA, f"key:{number:012d}", rng.randbytes(value_bytes), index + 1)
        if (number + 1) % rows_per_record == 0:
            index += 1
            persist(storage, store, index)
    index += 1
    persist(storage, store, index)
    storage.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    storage.close()
    return {"phase": "fill", "keys": keys, "seconds": round(time.perf_counter() - started, 1),
            "database_mb": round(os.path.getsize(path) / 2**20, 1),
            "peak_rss_mb": round(peak_rss_kb() / 1024, 1)}


def load(path: str, keys: int, value_bytes: int, operations: int) -> dict:
    from lowpaxos.protocols.lowpaxos.config import LowPaxosConfig
    from lowpaxos.protocols.lowpaxos.core import LowPaxosReplica

    result: dict = {"phase": "load", "rss_mb_before_load": round(rss_kb() / 1024, 1)}
    started = time.perf_counter()
    storage = SqliteStorage(path, 0)
    state = storage.load()
    result["load_seconds"] = round(time.perf_counter() - started, 1)
    core = LowPaxosReplica(LowPaxosConfig(replicas=3), 0, random.Random(0), durable=state)
    kvs: KeyValueStore = core.kvs
    assert kvs.rows.live_count(DATA) == keys, kvs.rows.live_count(DATA)
    result["rss_mb_after_load"] = round(rss_kb() / 1024, 1)

    rng = random.Random(2)
    started = time.perf_counter()
    index = kvs.rows.index
    for number in range(operations):
        key = f"key:{rng.randrange(keys):012d}"
        if number % 4 == 0:
            write_row(kvs.rows, DATA, key, rng.randbytes(value_bytes), index + 1)
            if number % 1000 == 0:
                index += 1
                persist(storage, kvs.rows, index)
        else:
            assert kvs.get_value(key) is not None
    index += 1
    persist(storage, kvs.rows, index)
    result["random_operations"] = operations
    result["random_operations_per_second"] = round(operations / (time.perf_counter() - started))
    result["rss_mb_after_random_operations"] = round(rss_kb() / 1024, 1)
    result["row_stats"] = storage.row_stats()

    # Serve a whole transfer: walk an image of every row in pages, as read_chunk does.
    started = time.perf_counter()
    image = kvs.rows.image()
    kind, key, walked = DATA, None, 0
    while page := image.rows_after(kind, key, 64):
        walked += len(page)
        kind, key = page[-1][0], page[-1][1]
    assert walked == keys + 0, walked
    result["image_walk_seconds"] = round(time.perf_counter() - started, 1)
    result["rss_mb_after_image_walk"] = round(rss_kb() / 1024, 1)

    # Writes while the image is open: a checkpoint cannot pass its read transaction.
    wal = Path(path + "-wal")
    for round_number in range(200):
        for _ in range(50):
            write_row(kvs.rows, DATA, f"key:{rng.randrange(keys):012d}",
                      rng.randbytes(value_bytes), index + 1)
        index += 1
        persist(storage, kvs.rows, index)
    result["wal_mb_after_10000_writes_with_image_open"] = round(wal.stat().st_size / 2**20, 1)
    image.close()
    for _ in range(30):
        for _ in range(50):
            write_row(kvs.rows, DATA, f"key:{rng.randrange(keys):012d}",
                      rng.randbytes(value_bytes), index + 1)
        index += 1
        persist(storage, kvs.rows, index)
    result["wal_mb_after_image_closed_and_more_writes"] = round(wal.stat().st_size / 2**20, 1)

    started = time.perf_counter()
    storage.close()
    verifier = SqliteStorage(path, 0)
    verifier.load(verify_rows=True)
    verifier.close()
    result["load_with_verify_rows_seconds"] = round(time.perf_counter() - started, 1)
    result["database_mb"] = round(os.path.getsize(path) / 2**20, 1)
    result["peak_rss_mb"] = round(peak_rss_kb() / 1024, 1)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--value-bytes", type=int, default=100)
    parser.add_argument("--rows-per-record", type=int, default=10_000)
    parser.add_argument("--operations", type=int, default=200_000)
    parser.add_argument("--dir", default=None, help="where the database goes (default: a new temp dir)")
    parser.add_argument("--phase", choices=["fill", "load"], default=None, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.phase == "fill":
        print(json.dumps(fill(str(Path(arguments.dir) / "bench.sqlite"), arguments.keys,
                              arguments.value_bytes, arguments.rows_per_record)))
        return 0
    if arguments.phase == "load":
        print(json.dumps(load(str(Path(arguments.dir) / "bench.sqlite"), arguments.keys,
                              arguments.value_bytes, arguments.operations)))
        return 0
    directory = arguments.dir or tempfile.mkdtemp(prefix="lowpaxos-rowstore-")
    common = [sys.executable, __file__, "--dir", directory, "--keys", str(arguments.keys),
              "--value-bytes", str(arguments.value_bytes),
              "--rows-per-record", str(arguments.rows_per_record),
              "--operations", str(arguments.operations)]
    for phase in ("fill", "load"):
        output = subprocess.run(common + ["--phase", phase], check=True, capture_output=True,
                                text=True).stdout
        print(json.dumps(json.loads(output), indent=1))
    print(f"database left in {directory}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
