"""SqliteStorage against DurableState.apply, the meaning of every durable record.

Random but well-formed sequences of all seven records (promises, entries, commits, KVS
rows, log cuts, staged transfer rows and installs with the staged digest) are written
in random transactions and reopened; what ``load()`` gives, the rows read back through
``open_store()``/``open_staging()`` included, must equal folding the same records with
DurableState.apply. A process killed with SIGKILL while it writes must reopen as a
prefix of its records at a transaction boundary, with every transaction it reported
committed present. A transaction that fails half-way leaves nothing behind.

Run as a script (``python tests/test_storage_crash.py write FILE SEED``) this module
is the writer that the SIGKILL test kills.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from lowpaxos.core.api import Command
from lowpaxos.kvs import DATA, KINDS, REMOVED, MemoryRowStore, write_row
from lowpaxos.protocols.lowpaxos.durable import DurableState
from lowpaxos.protocols.lowpaxos.messages import (
    Ballot,
    Entry,
    SaveCommit,
    SaveEntries,
    SaveInstall,
    SavePromise,
    SaveRows,
    SaveStaged,
    SaveTruncate,
    Transfer,
)
from lowpaxos.runtime.storage import SqliteStorage

# Runtime keys are latin-1 (replica.check_key), so these include NUL and 0xff.
KEYS = ["a", "b", "c", "ab", "\x00", "\xff", "k\x00z", "zz"]


def random_records(rng: random.Random, count: int) -> list:
    """``count`` records as a LowPaxos core could emit them: promises rise, commits
    cover held entries, rows carry true digests, installs follow staged rows."""
    oracle = DurableState()  # consulted to keep every record well-formed
    top = 0  # the highest slot held; slots (log_start, top] are all held
    records = []
    while len(records) < count:
        choice = rng.random()
        store_index = oracle.store.index
        if choice < 0.08:
            record = SavePromise(Ballot(oracle.promised.round + rng.randint(0, 2), rng.randrange(3)))
            if record.ballot < oracle.promised:
                record = SavePromise(oracle.promised)
        elif choice < 0.35:
            entries = []
            for _ in range(rng.randint(1, 3)):
                roll = rng.random()
                if roll < 0.7 or top == oracle.log_start:
                    top += 1
                    slot = top
                elif roll < 0.9:
                    slot = rng.randint(oracle.log_start + 1, top)  # a slot written again
                else:
                    slot = rng.randint(0, oracle.log_start)  # below the cut: ignored
                command = Command(rng.randrange(5), rng.randrange(100), "put", rng.choice(KEYS),
                                  bytes([rng.randrange(256)]) * rng.randrange(4))
                entries.append(Entry(slot, Ballot(rng.randint(1, 4), rng.randrange(3)),
                                     (command,) if rng.random() < 0.8 else ()))
            record = SaveEntries(tuple(entries))
        elif choice < 0.5:
            record = SaveCommit(rng.randint(max(0, oracle.commit_index - 2), top))
        elif choice < 0.7:
            index = rng.randint(store_index, max(store_index, oracle.commit_index))
            work = oracle.store.copy()
            for _ in range(rng.randint(0, 4)):
                kind, key = rng.choice(KINDS), rng.choice(KEYS)
                roll = rng.random()
                if roll < 0.6:
                    write_row(work, kind, key, bytes([rng.randrange(256)]) * rng.randrange(6), index)
                elif roll < 0.9:
                    write_row(work, kind, key, None, index)
                else:
                    write_row(work, kind, key, None, index, tombstone=False)
            horizon = rng.randint(0, index)
            record = SaveRows(index, work.digest, horizon, work.take_changes())
        elif choice < 0.78:
            record = SaveTruncate(rng.randint(0, store_index))
        elif choice < 0.93:
            reset = rng.random() < 0.3
            work = MemoryRowStore() if reset else oracle.staging.copy()
            for _ in range(rng.randint(0, 5)):
                kind, key = rng.choice(KINDS), rng.choice(KEYS)
                roll = rng.random()
                if roll < 0.7:
                    write_row(work, kind, key, bytes([rng.randrange(256)]) * rng.randrange(6),
                              rng.randint(0, 50))
                elif roll < 0.85:
                    write_row(work, kind, key, None, 0, tombstone=False)
                else:
                    write_row(work, kind, key, None, rng.randint(0, 50))  # a staged tombstone
            transfer = None
            if rng.random() < 0.8:
                split = None if rng.random() < 0.5 else (rng.choice(KINDS), rng.choice(KEYS))
                cursor = None if rng.random() < 0.3 else \
                    (rng.randrange(2), rng.choice(KINDS), rng.choice([None, *KEYS]))
                transfer = Transfer(rng.randrange(3), rng.randint(1, 1000),
                                    rng.getrandbits(128), rng.randint(0, 50), split, cursor)
            record = SaveStaged(transfer, reset, work.digest, work.take_changes())
        else:
            index = store_index + rng.randint(1, 6)
            record = SaveInstall(index, oracle.staging.digest)
            top = max(top, index)
        oracle.apply(record)
        records.append(record)
    return records


def transaction_sizes(rng: random.Random, count: int) -> list[int]:
    sizes = []
    while sum(sizes) < count:
        sizes.append(min(rng.randint(1, 6), count - sum(sizes)))
    return sizes


def loaded_view(path: Path) -> dict:
    """Everything a restarted replica reads from the file, rows included."""
    storage = SqliteStorage(path, 1)
    state = storage.load(verify_rows=True)
    view = {"promised": state.promised, "entries": state.entries,
            "commit_index": state.commit_index, "log_start": state.log_start,
            "transfer": state.transfer, "store_index": state.store_index,
            "store": store_view(state.open_store()), "staging": store_view(state.open_staging())}
    storage.close()
    return view


def durable_view(durable: DurableState) -> dict:
    """The same from the reference fold."""
    return {"promised": durable.promised, "entries": durable.entries,
            "commit_index": durable.commit_index, "log_start": durable.log_start,
            "transfer": durable.transfer, "store_index": durable.store_index,
            "store": store_view(durable.open_store()), "staging": store_view(durable.open_staging())}


def store_view(store) -> dict:
    image = store.image()
    rows = image.rows_after(DATA, None, 10_000)
    tombstones = image.tombstones_after(DATA, None, 10_000)
    view = {"index": store.index, "digest": store.digest, "horizon": store.tombstone_horizon,
            "image": (image.index, image.digest, image.tombstone_horizon),
            "rows": rows, "tombstones": tombstones,
            "counts": [store.live_count(kind) for kind in KINDS],
            "gets": [store.get(kind, key) for kind in KINDS for key in KEYS],
            "scan": [store.scan(kind, None, 100) for kind in KINDS]}
    image.close()
    return view


def fold(records) -> DurableState:
    durable = DurableState()
    for record in records:
        durable.apply(record)
    return durable


def test_generated_records_use_every_type():
    """The generator makes every record type, installs and cuts included, so the tests
    below exercise every branch of write()."""
    records = random_records(random.Random(0), 600)
    assert {type(record) for record in records} == {
        SavePromise, SaveEntries, SaveCommit, SaveRows, SaveTruncate, SaveStaged, SaveInstall}
    assert any(isinstance(r, SaveStaged) and r.reset for r in records)
    assert any(isinstance(r, SaveRows) and any(row[3] == REMOVED for row in r.rows) for r in records)


@pytest.mark.parametrize("seed", range(12))
def test_reopened_storage_equals_the_folded_records(tmp_path, seed):
    """Records written in random transactions, with reopens in between, load exactly
    what folding them with DurableState.apply gives, rows and tombstones included."""
    rng = random.Random(seed)
    records = random_records(rng, 300)
    path = tmp_path / "r.sqlite"
    storage = SqliteStorage(path, 1)
    storage.load()
    done = 0
    for size in transaction_sizes(rng, len(records)):
        storage.write(records[done:done + size])
        done += size
        if rng.random() < 0.05:
            storage.close()
            assert loaded_view(path) == durable_view(fold(records[:done]))
            storage = SqliteStorage(path, 1)
            storage.load()
    storage.close()
    assert loaded_view(path) == durable_view(fold(records))


@pytest.mark.parametrize("seed", range(4))
def test_a_failed_transaction_leaves_nothing_behind(tmp_path, seed):
    """A write that fails after some of its records were folded rolls back whole: the
    file and the in-memory mirrors stay at the previous transaction, and writing goes
    on from there."""
    rng = random.Random(seed)
    records = random_records(rng, 200)
    path = tmp_path / "r.sqlite"
    storage = SqliteStorage(path, 1)
    storage.load()
    done = 0
    for size in transaction_sizes(rng, len(records)):
        if rng.random() < 0.2:
            with pytest.raises(TypeError, match="not a LowPaxos durable record"):
                storage.write(records[done:done + size] + ["not a record"])
        storage.write(records[done:done + size])
        done += size
    storage.close()
    assert loaded_view(path) == durable_view(fold(records))


# ------------------------------------------------------------------- SIGKILL


def writer(path: str, seed: int) -> None:
    """Write the records of ``seed`` in its transactions, printing the number of records
    committed after each commit, until killed."""
    rng = random.Random(seed)
    records = random_records(rng, 3000)
    storage = SqliteStorage(path, 1)
    storage.load()
    done = 0
    for size in transaction_sizes(rng, len(records)):
        storage.write(records[done:done + size])
        done += size
        print(done, flush=True)
    storage.close()


@pytest.mark.parametrize("seed", range(4))
def test_sigkill_while_writing_leaves_a_committed_prefix(tmp_path, seed):
    """A writer process killed at a random point reopens as the records of a whole
    number of its transactions, no fewer than it reported committed."""
    path = tmp_path / "r.sqlite"
    process = subprocess.Popen(
        [sys.executable, __file__, "write", str(path), str(seed)],
        stdout=subprocess.PIPE, text=True)
    try:
        stop_after = random.Random(seed).randint(5, 150)  # transactions reported
        reported = 0
        for _ in range(stop_after):
            line = process.stdout.readline()
            if not line:
                break
            reported = int(line)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL, "the writer was killed, not finished"
    rng = random.Random(seed)
    records = random_records(rng, 3000)
    view = loaded_view(path)
    boundaries, done = [], 0
    for size in transaction_sizes(rng, len(records)):
        done += size
        boundaries.append(done)
    durable, folded = DurableState(), 0
    for boundary in boundaries:
        for record in records[folded:boundary]:
            durable.apply(record)
        folded = boundary
        if boundary >= reported and durable_view(durable) == view:
            return
    pytest.fail(f"the reopened file is no transaction boundary at or after record {reported}")


if __name__ == "__main__":
    assert sys.argv[1] == "write", sys.argv
    writer(sys.argv[2], int(sys.argv[3]))
