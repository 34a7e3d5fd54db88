"""SqliteStorage against DurableState.apply, the meaning of every durable record
(and against VRDurableState.apply for VR's records: the storage is one class over
each protocol's fold).

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
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from lowpaxos.core.api import Command
from lowpaxos.kvs import DATA, KINDS, REMOVED, MemoryRowStore, write_row
from lowpaxos.protocols.lowpaxos.durable import DurableFold, DurableState
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
from lowpaxos.protocols.vr import messages as vr
from lowpaxos.protocols.vr.durable import VRDurableFold, VRDurableState
from lowpaxos.runtime.storage import SqliteStorage, mirror_class

# Runtime keys are latin-1 (replica.check_key), so these include NUL and 0xff.
KEYS = ["a", "b", "c", "ab", "\x00", "\xff", "k\x00z", "zz"]
REPLICAS = 3


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
                ballot = Ballot(rng.randint(1, 4), rng.randrange(3))
                if roll < 0.6 or top == oracle.log_start:
                    top += 1
                    slot = top
                elif roll < 0.78:
                    # A re-accept: a held slot written again under a higher ballot (the
                    # next replica of the same round, or a later round).
                    slot = rng.randint(oracle.log_start + 1, top)
                    if slot in oracle.entries:
                        ballot = higher_ballot(rng, oracle.entries[slot].ballot)
                elif roll < 0.9:
                    slot = rng.randint(oracle.log_start + 1, top)  # any ballot (catch-up)
                else:
                    slot = rng.randint(0, oracle.log_start)  # below the cut: ignored
                command = Command(rng.randrange(5), rng.randrange(100), "put", rng.choice(KEYS),
                                  bytes([rng.randrange(256)]) * rng.randrange(4))
                entries.append(Entry(slot, ballot, (command,) if rng.random() < 0.8 else ()))
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


def higher_ballot(rng: random.Random, ballot: Ballot) -> Ballot:
    """A ballot above ``ballot``: half the time of the same round (a higher replica id)."""
    if ballot.replica < REPLICAS - 1 and rng.random() < 0.5:
        return Ballot(ballot.round, rng.randint(ballot.replica + 1, REPLICAS - 1))
    return Ballot(ballot.round + rng.randint(1, 2), rng.randrange(REPLICAS))


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
    # Slots rewritten under a higher ballot of the same round and of a later round, under
    # a lower one, and commit hints behind the commit point held (a no-op by max).
    held, kinds, commit = {}, set(), 0
    for record in records:
        if isinstance(record, SaveEntries):
            for entry in record.entries:
                if entry.slot in held and entry.ballot != held[entry.slot]:
                    old = held[entry.slot]
                    kinds.add("same round" if entry.ballot.round == old.round and entry.ballot > old
                              else "higher round" if entry.ballot > old else "lower")
                held[entry.slot] = entry.ballot
        elif isinstance(record, SaveCommit):
            kinds.add("commit behind" if record.commit_index < commit else "commit")
            commit = max(commit, record.commit_index)
    assert kinds == {"same round", "higher round", "lower", "commit behind", "commit"}, kinds


def test_one_definition_of_the_records():
    """The memory fold and the SQL storage run the same ``apply``: neither overrides it."""
    assert DurableState.apply is DurableFold.apply
    assert mirror_class(DurableFold).apply is DurableFold.apply


def random_vr_records(rng: random.Random, count: int) -> list:
    """``count`` VR records as a VR core with disk = "sync" could emit them: the view
    rises, a new log drops the old suffix first (drop_above), rows carry true digests,
    installs follow staged rows."""
    oracle = VRDurableState()
    top = 0  # the highest op held
    records = []
    while len(records) < count:
        choice = rng.random()
        store_index = oracle.store.index
        if choice < 0.03:
            record = vr.SaveStarted()
        elif choice < 0.12:
            view = oracle.view + rng.randint(0, 2)
            record = vr.SaveView(view, rng.randint(min(oracle.last_normal_view, view), view),
                                 rng.choice(["normal", "view-change", "recovering"]))
        elif choice < 0.42:
            drop_above = None
            if rng.random() < 0.3:
                # A new log (StartView, NewState): the suffix above this op is replaced.
                drop_above = rng.randint(max(oracle.log_start, oracle.commit), max(top, oracle.commit))
                top = drop_above
            entries = []
            for _ in range(rng.randint(1, 3)):
                roll = rng.random()
                if roll < 0.75 or top == oracle.log_start:
                    top += 1
                    op = top
                elif roll < 0.9:
                    op = rng.randint(oracle.log_start + 1, top)  # written again
                else:
                    op = rng.randint(0, oracle.log_start)  # below the cut: ignored
                command = Command(rng.randrange(5), rng.randrange(100), "put", rng.choice(KEYS),
                                  bytes([rng.randrange(256)]) * rng.randrange(4))
                entries.append(vr.Entry(op, (command,) * rng.randint(1, 2)))
            record = vr.SaveEntries(drop_above, tuple(entries))
        elif choice < 0.55:
            # A commit hint covers ops held (the core asserts it at restart); behind the
            # commit-number held it changes nothing.
            reach = store_index
            while reach + 1 in oracle.entries:
                reach += 1
            record = vr.SaveCommit(rng.randint(max(0, oracle.commit - 2), max(oracle.commit, reach)))
        elif choice < 0.72:
            index = rng.randint(store_index, max(store_index, oracle.commit))
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
            record = vr.SaveRows(index, work.digest, rng.randint(0, index), work.take_changes())
        elif choice < 0.8:
            record = vr.SaveTruncate(rng.randint(0, store_index))
        elif choice < 0.93:
            reset = rng.random() < 0.3
            work = MemoryRowStore() if reset else oracle.staging.copy()
            for _ in range(rng.randint(0, 5)):
                kind, key = rng.choice(KINDS), rng.choice(KEYS)
                if rng.random() < 0.8:
                    write_row(work, kind, key, bytes([rng.randrange(256)]) * rng.randrange(6),
                              rng.randint(0, 50))
                else:
                    write_row(work, kind, key, None, rng.randint(0, 50))
            transfer = None
            if rng.random() < 0.8:
                cursor = None if rng.random() < 0.3 else \
                    (rng.choice(KINDS), rng.choice(KEYS))
                transfer = vr.Transfer(rng.randrange(3), rng.randint(1, 1000),
                                       rng.getrandbits(128), cursor)
            record = vr.SaveStaged(transfer, reset, work.digest, work.take_changes())
        else:
            index = store_index + rng.randint(1, 6)
            record = vr.SaveInstall(index, oracle.staging.digest)
            top = max(top, index)
        oracle.apply(record)
        records.append(record)
    return records


VR_SCALARS = VRDurableFold.SCALARS


def loaded_vr_view(path: Path) -> dict:
    """What a restarted VR replica reads from the file, rows included."""
    storage = SqliteStorage(path, 1, protocol="vr")
    state = storage.load(verify_rows=True)
    view = {name: getattr(state, name) for name in VR_SCALARS}
    view.update(entries=state.entries, store_index=state.store_index,
                store=store_view(state.open_store()), staging=store_view(state.open_staging()))
    storage.close()
    return view


def vr_durable_view(durable: VRDurableState) -> dict:
    view = {name: getattr(durable, name) for name in VR_SCALARS}
    view.update(entries=durable.entries, store_index=durable.store_index,
                store=store_view(durable.open_store()), staging=store_view(durable.open_staging()))
    return view


def vr_fold(records) -> VRDurableState:
    durable = VRDurableState()
    for record in records:
        durable.apply(record)
    return durable


def test_generated_vr_records_use_every_type():
    """The VR generator makes every record type, new logs that drop a suffix, staged
    resets and installs, so the VR test below exercises every primitive."""
    records = random_vr_records(random.Random(0), 600)
    assert {type(record) for record in records} == set(vr.RECORD_TYPES)
    assert any(isinstance(r, vr.SaveEntries) and r.drop_above is not None for r in records)
    assert any(isinstance(r, vr.SaveStaged) and r.reset for r in records)
    assert any(isinstance(r, vr.SaveStaged) and r.transfer and r.transfer.cursor for r in records)
    durable = vr_fold(records)
    assert durable.log_start > 0 and durable.entries and durable.started


def test_one_definition_of_the_vr_records():
    """VR's memory fold and the SQL storage run the same ``apply``, named by the registry."""
    from lowpaxos.protocols.registry import PROTOCOLS

    assert PROTOCOLS["vr"].durable_fold is VRDurableFold
    assert VRDurableState.apply is VRDurableFold.apply
    assert mirror_class(VRDurableFold).apply is VRDurableFold.apply


@pytest.mark.parametrize("seed", range(8))
def test_reopened_vr_storage_equals_the_folded_records(tmp_path, seed):
    """VR records written in random transactions, with reopens in between, load exactly
    what folding them with VRDurableState.apply gives, rows and tombstones included."""
    rng = random.Random(seed)
    records = random_vr_records(rng, 300)
    path = tmp_path / "r.sqlite"
    storage = SqliteStorage(path, 1, protocol="vr")
    storage.load()
    done = 0
    for size in transaction_sizes(rng, len(records)):
        storage.write(records[done:done + size])
        done += size
        if rng.random() < 0.05:
            storage.close()
            assert loaded_vr_view(path) == vr_durable_view(vr_fold(records[:done]))
            storage = SqliteStorage(path, 1, protocol="vr")
            storage.load()
    storage.close()
    assert loaded_vr_view(path) == vr_durable_view(vr_fold(records))


def test_a_file_of_another_protocol_is_refused(tmp_path):
    """A LowPaxos file opened as VR (a cluster file changed under a data_dir) is refused
    with a message naming both protocols, and the other way round."""
    from lowpaxos.runtime.storage import StorageCorrupt

    for written, opened in (("lowpaxos", "vr"), ("vr", "lowpaxos")):
        path = tmp_path / f"{written}.sqlite"
        SqliteStorage(path, 0, protocol=written).load()
        with pytest.raises(StorageCorrupt, match=f"protocol '{written}', not '{opened}'"):
            SqliteStorage(path, 0, protocol=opened).load()


@pytest.mark.parametrize("rewrites", [
    [Ballot(1, 0), Ballot(1, 2)],                 # the same round, a higher replica
    [Ballot(1, 2), Ballot(3, 0)],                 # a later round
    [Ballot(1, 0), Ballot(1, 1), Ballot(2, 0)],   # twice
])
def test_a_slot_rewritten_under_a_higher_ballot_reads_back_rewritten(tmp_path, rewrites):
    """A follower re-accepting slot 2 under a higher ballot (each write its own
    transaction, the file reopened after each) reads back the last ballot and value."""
    path = tmp_path / "r.sqlite"
    records = [SaveEntries((Entry(1, Ballot(1, 0), ()), Entry(2, Ballot(1, 0), ())))]
    for number, ballot in enumerate(rewrites):
        command = Command(1, number + 1, "put", "key", b"value %d" % number)
        records.append(SaveEntries((Entry(2, ballot, (command,)),)))
    for count in range(1, len(records) + 1):
        storage = SqliteStorage(path, 1)
        storage.load()
        storage.write([records[count - 1]])
        storage.close()
        view = loaded_view(path)
        assert view["entries"][2] == fold(records[:count]).entries[2]
        assert view == durable_view(fold(records[:count]))


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


# The statements of a write a fault can hit: the transaction's bounds, a log entry
# (a re-accept rewrites one), the log cut, a KVS row, a meta row.
FAULT_POINTS = ["BEGIN", "INTO entries", "DELETE FROM entries", "INTO kv_", "INTO meta", "COMMIT"]


class FaultyConnection:
    """The storage's sqlite3 connection with one fault at the ``occurrence``-th statement
    containing ``point``: the process kills itself with SIGKILL before the statement
    runs ("kill"), or the statement raises the error SQLite reports when a read, write
    or fsync fails ("disk I/O error"), before it runs or after it ran ("error-before",
    "error-after"). Every other statement passes through."""

    def __init__(self, connection: sqlite3.Connection, point: str, occurrence: int,
                 action: str) -> None:
        assert point in FAULT_POINTS and action in ("kill", "error-before", "error-after")
        self.connection = connection
        self.point = point
        self.remaining = occurrence
        self.action = action
        self.fired: str | None = None  # the statement the fault hit

    @property
    def in_transaction(self) -> bool:
        return self.connection.in_transaction

    def execute(self, sql: str, *arguments):
        return self._run(self.connection.execute, sql, arguments)

    def executemany(self, sql: str, *arguments):
        return self._run(self.connection.executemany, sql, arguments)

    def _run(self, method, sql: str, arguments):
        hit = False
        if self.fired is None and self.point in sql:
            self.remaining -= 1
            hit = self.remaining == 0
        if hit:
            self.fired = sql
            if self.action == "kill":
                print(f"kill {sql}", flush=True)
                os.kill(os.getpid(), signal.SIGKILL)
            if self.action == "error-before":
                raise sqlite3.OperationalError("disk I/O error")
        result = method(sql, *arguments)
        if hit:
            raise sqlite3.OperationalError("disk I/O error")
        return result

    def __getattr__(self, name):
        return getattr(self.connection, name)


def writer(path: str, seed: int, count: int, fault: list[str] | None = None) -> None:
    """Write the records of ``seed`` in its transactions, printing the number of records
    committed after each commit, until killed (from outside, or by ``fault``: a point
    of FAULT_POINTS and an occurrence, where the process kills itself)."""
    rng = random.Random(seed)
    records = random_records(rng, count)
    storage = SqliteStorage(path, 1)
    storage.load()
    if fault is not None:
        storage.connection = FaultyConnection(storage.connection, fault[0], int(fault[1]), "kill")
    done = 0
    for size in transaction_sizes(rng, len(records)):
        storage.write(records[done:done + size])
        done += size
        print(done, flush=True)
    storage.close()


def boundaries_of(seed: int, count: int) -> tuple[list, list[int]]:
    """The records of ``seed`` and the record counts at which its transactions end."""
    rng = random.Random(seed)
    records = random_records(rng, count)
    boundaries, done = [], 0
    for size in transaction_sizes(rng, len(records)):
        done += size
        boundaries.append(done)
    return records, boundaries


@pytest.mark.parametrize("seed", range(len(FAULT_POINTS)))
def test_sigkill_inside_a_write_leaves_exactly_the_transactions_before_it(tmp_path, seed):
    """A writer process that kills itself (SIGKILL) just before a chosen statement of
    a transaction (its BEGIN, a log entry, the log cut, a KVS row, a meta row, its
    COMMIT) reopens as exactly the transactions it reported committed: the one it was
    in leaves nothing, and none before it is lost."""
    point = FAULT_POINTS[seed % len(FAULT_POINTS)]
    occurrence = random.Random(seed).randint(1, 12)
    path = tmp_path / "r.sqlite"
    process = subprocess.run(
        [sys.executable, __file__, "write", str(path), str(seed), "400", point, str(occurrence)],
        capture_output=True, text=True, timeout=120)
    assert process.returncode == -signal.SIGKILL, \
        f"the writer was not killed at {point!r} #{occurrence}: {process.stderr[-2000:]}"
    lines = process.stdout.splitlines()
    assert lines and lines[-1].startswith("kill ") and point in lines[-1], lines[-3:]
    reported = int(lines[-2]) if len(lines) >= 2 else 0  # records in committed transactions
    records, boundaries = boundaries_of(seed, 400)
    assert reported == 0 or reported in boundaries
    assert loaded_view(path) == durable_view(fold(records[:reported]))


@pytest.mark.parametrize("action", ["error-before", "error-after"])
@pytest.mark.parametrize("point", FAULT_POINTS)
def test_an_io_error_inside_a_write_leaves_whole_transactions(tmp_path, point, action):
    """A statement of a write that fails with a disk I/O error (before it runs, or after)
    makes ``write`` raise; the file reopens (as the runtime restarts: it exits on a failed
    write) with the transactions before it, plus the failed one only if its COMMIT ran.
    Writing goes on from the reopened file, and the end equals the fold of everything."""
    seed = FAULT_POINTS.index(point) * 2 + (action == "error-after")
    rng = random.Random(seed)
    records = random_records(rng, 150)
    path = tmp_path / "r.sqlite"
    storage = SqliteStorage(path, 1)
    storage.load()
    faulty = FaultyConnection(storage.connection, point, rng.randint(1, 4), action)
    storage.connection = faulty
    done = 0
    for size in transaction_sizes(rng, len(records)):
        try:
            storage.write(records[done:done + size])
        except sqlite3.OperationalError as error:
            assert str(error) == "disk I/O error" and faulty.fired is not None
            storage.close()
            committed = point == "COMMIT" and action == "error-after"
            expected = done + size if committed else done
            assert loaded_view(path) == durable_view(fold(records[:expected]))
            storage = SqliteStorage(path, 1)
            storage.load()
            if not committed:
                storage.write(records[done:done + size])
        done += size
    storage.close()
    assert faulty.fired is not None, f"no {point!r} statement to fail"
    assert loaded_view(path) == durable_view(fold(records))


@pytest.mark.parametrize("seed", range(4))
def test_sigkill_while_writing_leaves_a_committed_prefix(tmp_path, seed):
    """A writer process killed at a random point reopens as the records of a whole
    number of its transactions, no fewer than it reported committed."""
    path = tmp_path / "r.sqlite"
    process = subprocess.Popen(
        [sys.executable, __file__, "write", str(path), str(seed), "3000"],
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
    records, boundaries = boundaries_of(seed, 3000)
    view = loaded_view(path)
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
    writer(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5:7] or None)
