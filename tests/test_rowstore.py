"""Row store conformance: the same Hypothesis program of writes, hand-overs and reads
runs against MemoryRowStore (the reference, kvs.py) and SqliteRowStore (the runtime,
runtime/rowstore.py), each compared after every step with a model made of two dicts.

Each store runs in both roles it has in a replica: the KVS (changes persisted by
SaveRows, tombstones dropped below a horizon) and the staging area of a transfer
(SaveStaged, clear() to start over). The SQLite store is driven as replica.py drives
it: changes are taken into records, written by SqliteStorage, and acknowledged with
committed() only later, so reads run against every mix of pending, taken, written and
cached rows; its cache is tiny so that rows are evicted and read back from disk.
Images opened along the way must keep showing the state they opened on.
"""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, \
    run_state_machine_as_test

from lowpaxos.kvs import DATA, KINDS, REMOVED, SESSION, MemoryRowStore, write_row
from lowpaxos.protocols.lowpaxos.messages import SaveInstall, SaveRows, SaveStaged
from lowpaxos.runtime.rowstore import decode_key, encode_key
from lowpaxos.runtime.storage import SqliteStorage

# Keys that disagree in every way an encoding could get the order wrong: NUL, the
# latin-1 top, the first two-byte and three-byte code points, a lone surrogate (the
# simulator's str keys may hold one), the last BMP character and an astral one.
EDGE_CHARACTERS = ["a", "b", "\x00", "\x7f", "\x80", "\xff", "\u0100", "\u0800", "\ud800",
                   "\udfff", "\ue000", "\uffff", "\U00010000", "\U0010ffff"]
# A small set of keys, so that programs write, delete and read the same rows again.
KEYS = ["", "a", "ab", "b", "a\x00", "\x00", "\xff", "\u0100", "\ud800", "\U0001f600"]
keys = st.sampled_from(KEYS)
names = st.tuples(st.sampled_from(KINDS), keys)
ALL_NAMES = [(kind, key) for kind in KINDS for key in KEYS]
values = st.binary(max_size=40)
IMAGES_OPEN_MAX = 2


# ---------------------------------------------------------------- key order


@settings(max_examples=200)
@given(st.lists(st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF,
                                                 exclude_categories=())), max_size=30))
def test_key_encoding_orders_as_python_str(texts):
    """UTF-8 with surrogatepass keeps Python's str order under SQLite's BLOB (memcmp)
    order, surrogates and astral characters included, and decodes back."""
    connection = sqlite3.connect(":memory:")
    connection.execute("CREATE TABLE t(key BLOB PRIMARY KEY)")
    connection.executemany("INSERT OR IGNORE INTO t VALUES (?)", [(encode_key(t),) for t in texts])
    stored = [decode_key(blob) for blob, in connection.execute("SELECT key FROM t ORDER BY key")]
    assert stored == sorted(set(texts))
    for low in texts[:5]:
        above = [decode_key(blob) for blob, in connection.execute(
            "SELECT key FROM t WHERE key > ? ORDER BY key", (encode_key(low),))]
        assert above == sorted(t for t in set(texts) if t > low)


def test_edge_characters_are_in_code_point_order():
    """The edge characters of the conformance program sort the same both ways."""
    assert sorted(EDGE_CHARACTERS, key=encode_key) == sorted(EDGE_CHARACTERS)


# ---------------------------------------------------------------- harnesses


class MemoryHarness:
    """MemoryRowStore: nothing to persist; its image is its current state."""

    image_is_committed_state = False

    def __init__(self, tmp_path, role: str) -> None:
        self.store = MemoryRowStore()
        self.role = role

    def take(self, reset: bool) -> tuple:
        return self.store.take_changes()

    def write(self) -> None:
        pass

    def acknowledge(self) -> None:
        pass

    def close(self) -> None:
        pass


class SqliteHarness:
    """SqliteRowStore over a SqliteStorage, driven like replica.py's flush loop. Its
    cache holds every name, so a stale cached row shows."""

    image_is_committed_state = True
    cache_rows_max = 64

    def __init__(self, tmp_path, role: str) -> None:
        self.role = role
        self.storage = SqliteStorage(tmp_path / "rows.sqlite", 0,
                                     cache_rows_max=self.cache_rows_max,
                                     cache_bytes_max=self.cache_rows_max * 300,
                                     images_max=IMAGES_OPEN_MAX)
        state = self.storage.load()
        self.store = state.open_store() if role == "live" else state.open_staging()
        self.queued: list = []  # records taken, not yet written
        self.unacknowledged: list = []  # marks of written transactions not yet acknowledged

    def take(self, reset: bool) -> tuple:
        changes = self.store.take_changes()
        if self.role == "live":
            store = self.store
            self.queued.append(SaveRows(store.index, store.digest, store.tombstone_horizon, changes))
        else:
            self.queued.append(SaveStaged(None, reset, self.store.digest, changes))
        return changes

    def write(self) -> None:
        marks = self.storage.row_marks()
        self.storage.write(self.queued)
        self.queued = []
        self.unacknowledged.append(marks)

    def acknowledge(self) -> None:
        for marks in self.unacknowledged:
            self.storage.rows_committed(marks)
        self.unacknowledged = []

    def close(self) -> None:
        self.storage.close()


class TinyCacheSqliteHarness(SqliteHarness):
    """The same with a cache of three rows: nearly every read that the layers do not
    answer goes to disk, and rows are evicted all the time."""

    cache_rows_max = 3


class Model:
    """Rows and tombstones in two dicts, with MemoryRowStore's documented meaning."""

    def __init__(self) -> None:
        self.rows: dict[tuple[int, str], tuple[bytes, int]] = {}
        self.tombstones: dict[tuple[int, str], int] = {}
        self.digest = 0
        self.index = 0
        self.horizon = 0

    def copy(self) -> "Model":
        model = Model()
        model.rows, model.tombstones = dict(self.rows), dict(self.tombstones)
        model.digest, model.index, model.horizon = self.digest, self.index, self.horizon
        return model

    def fold(self, changes) -> None:
        for kind, key, value, version in changes:
            name = (kind, key)
            if value is not None:
                self.rows[name] = (value, version)
                self.tombstones.pop(name, None)
            elif version == REMOVED:
                self.rows.pop(name, None)
                self.tombstones.pop(name, None)
            else:
                self.rows.pop(name, None)
                self.tombstones[name] = version

    def drop_below(self, version: int) -> None:
        self.horizon = max(self.horizon, version)
        self.tombstones = {n: v for n, v in self.tombstones.items() if v >= version}

    def image_rows(self) -> list:
        return sorted((kind, key, value, version) for (kind, key), (value, version)
                      in self.rows.items())

    def image_tombstones(self) -> list:
        return sorted((kind, key, version) for (kind, key), version in self.tombstones.items())


def read_image(image, page: int = 3) -> tuple[list, list]:
    """Every row and tombstone of an image, in pages (as read_chunk walks it)."""
    rows, tombstones = [], []
    kind, key = DATA, None
    while batch := image.rows_after(kind, key, page):
        rows += batch
        kind, key = batch[-1][0], batch[-1][1]
    kind, key = DATA, None
    while batch := image.tombstones_after(kind, key, page):
        tombstones += batch
        kind, key = batch[-1][0], batch[-1][1]
    return rows, tombstones


def conformance_machine(harness_class, role: str, tmp_path):
    class RowStoreConformance(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            directory = Path(tempfile.mkdtemp(dir=tmp_path))
            self.harness = harness_class(directory, role)
            self.store = self.harness.store
            self.model = Model()  # what the store holds now
            self.disk = Model()  # what is written (the SQLite store's images show this)
            self.queued: list = []  # (reset, changes, index, digest, horizon) taken, unwritten
            self.slot = 0  # versions and indexes rise, as slots do in a replica
            self.cleared = False  # clear() since the last take (the staging reset flag)
            self.images: list = []  # (image, rows, tombstones, index, digest, horizon)

        def teardown(self) -> None:
            for image, *_ in self.images:
                image.close()
            self.harness.close()

        # ---- writes ----

        @rule(name=names, value=values)
        def put(self, name, value):
            self.slot += 1
            self.store.put(name[0], name[1], value, self.slot)
            self.model.rows[name] = (value, self.slot)
            self.model.tombstones.pop(name, None)
            # The digest is the core's business (kvs.write_row); a store only carries it.
            self.store.digest = self.model.digest = self.slot * 7919

        @rule(name=names)
        def delete(self, name):
            self.slot += 1
            self.store.delete(name[0], name[1], self.slot)
            self.model.rows.pop(name, None)
            self.model.tombstones[name] = self.slot

        @rule(name=names)
        def remove(self, name):
            self.store.remove(*name)
            self.model.rows.pop(name, None)
            self.model.tombstones.pop(name, None)

        @precondition(lambda self: role == "live")
        @rule(back=st.integers(0, 6))
        def drop_tombstones(self, back):
            version = max(0, self.slot - back)
            self.store.drop_tombstones_below(version)
            self.model.drop_below(version)

        @precondition(lambda self: role == "staging")
        @rule()
        def clear(self):
            self.store.clear()
            self.model = Model()
            self.cleared = True

        # ---- handing changes over, writing, acknowledging ----

        @rule()
        def take_changes(self):
            if role == "live":
                self.store.index = self.slot
                self.model.index = self.slot
            reset = self.cleared
            changes = self.harness.take(reset)
            self.cleared = False
            names_changed = [(kind, key) for kind, key, _, _ in changes]
            assert len(names_changed) == len(set(names_changed)), "one change per row"
            self.queued.append((reset, changes, self.store.index, self.store.digest,
                                self.store.tombstone_horizon))
            # Folding everything taken onto the disk gives exactly the store's state.
            expected = self.disk.copy()
            self._fold_queued(expected)
            assert expected.rows == self.model.rows
            assert expected.tombstones == self.model.tombstones

        def _fold_queued(self, target: Model) -> None:
            for reset, changes, index, digest, horizon in self.queued:
                if reset:
                    fresh = Model()
                    target.rows, target.tombstones = fresh.rows, fresh.tombstones
                target.fold(changes)
                target.digest = digest
                if role == "live":
                    target.index = index
                    target.drop_below(horizon)

        @rule()
        def write(self):
            self.harness.write()
            self._fold_queued(self.disk)
            self.queued = []

        @rule()
        def acknowledge(self):
            self.harness.acknowledge()

        @rule()
        def flush(self):
            """Take, write and acknowledge at once (a quick fsync with nothing else pending)."""
            self.take_changes()
            self.write()
            self.acknowledge()

        # ---- images ----

        @precondition(lambda self: len(self.images) < IMAGES_OPEN_MAX)
        @rule()
        def open_image(self):
            seen = self.disk if self.harness.image_is_committed_state else self.model
            image = self.store.image()
            self.images.append((image, seen.image_rows(), seen.image_tombstones(),
                                seen.index, seen.digest, seen.horizon))
            self._check_image(self.images[-1])

        @precondition(lambda self: self.images)
        @rule(pick=st.integers(0, 10))
        def close_image(self, pick):
            self.images.pop(pick % len(self.images))[0].close()

        def _check_image(self, entry) -> None:
            image, rows, tombstones, index, digest, horizon = entry
            assert read_image(image) == (rows, tombstones)
            assert image.digest == digest
            if role == "live":
                assert (image.index, image.tombstone_horizon) == (index, horizon)

        @invariant()
        def images_stay_unchanged(self):
            for entry in self.images:
                self._check_image(entry)

        # ---- reads ----

        @rule(name=names)
        def get(self, name):
            assert self.store.get(*name) == self.model.rows.get(name)

        @rule(kind=st.sampled_from(KINDS), after=st.none() | keys, limit=st.integers(0, 6))
        def scan(self, kind, after, limit):
            expected = sorted((key, value) for (k, key), (value, _) in self.model.rows.items()
                              if k == kind and (after is None or key > after))[:limit]
            assert self.store.scan(kind, after, limit) == expected

        @rule(low=st.none() | names, high=st.none() | names)
        def rows_between(self, low, high):
            expected = sorted(n for n in self.model.rows
                              if (low is None or n > low) and (high is None or n <= high))
            assert self.store.rows_between(low, high) == expected

        @invariant()
        def counts_and_rows_agree(self):
            for kind in KINDS:
                assert self.store.live_count(kind) == sum(1 for k, _ in self.model.rows if k == kind)
            for kind in KINDS:
                # In pages of two, as SCAN walks: a page must not come up short when the
                # layers delete rows that are still on disk.
                expected = sorted((key, value) for (k, key), (value, _) in self.model.rows.items()
                                  if k == kind)
                walked, after = [], None
                while page := self.store.scan(kind, after, 2):
                    walked += page
                    after = page[-1][0]
                    assert len(page) == 2 or len(walked) == len(expected)
                assert walked == expected
            for name in ALL_NAMES:
                assert self.store.get(*name) == self.model.rows.get(name)

    return RowStoreConformance


@pytest.mark.parametrize("role", ["live", "staging"])
@pytest.mark.parametrize("harness_class", [MemoryHarness, SqliteHarness, TinyCacheSqliteHarness],
                         ids=["memory", "sqlite", "sqlite_tiny_cache"])
def test_row_store_conformance(harness_class, role, tmp_path):
    """Both row stores agree with the two-dict model under the same random programs."""
    # At least 100 programs whatever the profile: one takes milliseconds, and the bugs
    # this finds (a stale cache row, a short scan page) need a particular order of steps.
    examples = max(100, settings.default.max_examples)
    run_state_machine_as_test(conformance_machine(harness_class, role, tmp_path),
                              settings=settings(settings.default, max_examples=examples))


# ------------------------------------------------------ install swaps stores


def test_install_swaps_store_objects_as_the_core_does(tmp_path):
    """The core's install_snapshot swaps its two store objects and clears the old KVS;
    every read stays right before the write, between write and acknowledgement, after
    it, after a new transfer into the old object, and after a reopen."""
    storage = SqliteStorage(tmp_path / "r.sqlite", 0, cache_rows_max=4)
    state = storage.load()
    live, staging = state.open_store(), state.open_staging()

    def flush(records):
        marks = storage.row_marks()
        storage.write(records)
        return marks

    for number in range(10):
        write_row(live, DATA, f"old{number}", b"o%d" % number, 1)
    live.index = 1
    marks = flush([SaveRows(1, live.digest, 0, live.take_changes())])
    storage.rows_committed(marks)
    image_before = live.image()
    for number in range(6):
        write_row(staging, DATA, f"new{number}", b"n%d" % number, 5, tombstone=False)
    staged = SaveStaged(None, True, staging.digest, staging.take_changes())
    # install_snapshot: the old store's unpersisted changes are dropped, the objects swap.
    write_row(live, DATA, "old0", b"never persisted", 2)
    live.take_changes()
    old, live = live, staging
    live.index = live.tombstone_horizon = 5
    staging = old
    staging.clear()
    records = [staged, SaveInstall(5, live.digest)]

    def check() -> None:
        assert [key for key, _ in live.scan(DATA, None, 100)] == [f"new{n}" for n in range(6)]
        assert live.get(DATA, "old3") is None and live.get(DATA, "new2") == (b"n2", 5)
        assert staging.scan(DATA, None, 100) == [] and staging.get(DATA, "old3") is None
        assert live.live_count(DATA) == 6 and staging.live_count(DATA) == 0

    check()
    marks = flush(records)
    check()
    storage.rows_committed(marks)
    check()
    image_after = live.image()
    assert (image_after.index, image_after.tombstone_horizon) == (5, 5)
    assert [row[1] for row in read_image(image_after)[0]] == [f"new{n}" for n in range(6)]
    # The image opened before the install still shows the old KVS.
    assert [row[1] for row in read_image(image_before)[0]] == [f"old{n}" for n in range(10)]
    image_before.close()
    image_after.close()
    # A new transfer stages into the old object, without a reset: its pair is empty on disk.
    write_row(staging, DATA, "next", b"x", 9, tombstone=False)
    storage.rows_committed(flush([SaveStaged(None, False, staging.digest, staging.take_changes())]))
    assert staging.scan(DATA, None, 100) == [("next", b"x")]
    storage.close()
    reopened = SqliteStorage(tmp_path / "r.sqlite", 0)
    state = reopened.load(verify_rows=True)
    assert state.store_index == 5
    assert [key for key, _ in state.open_store().scan(DATA, None, 100)] == \
        [f"new{n}" for n in range(6)]
    assert state.open_staging().scan(DATA, None, 100) == [("next", b"x")]
    reopened.close()


def test_cache_stays_within_its_bounds(tmp_path):
    """Reading more rows than the cache holds keeps it within rows and bytes, and the
    rows evicted read back from disk."""
    storage = SqliteStorage(tmp_path / "r.sqlite", 0, cache_rows_max=50, cache_bytes_max=20_000)
    store = storage.load().open_store()
    for number in range(500):
        write_row(store, DATA, f"k{number:04}", bytes(100), 1)
    store.index = 1
    records = [SaveRows(1, store.digest, 0, store.take_changes())]
    marks = storage.row_marks()
    storage.write(records)
    storage.rows_committed(marks)
    for number in range(500):
        assert store.get(DATA, f"k{number:04}") == (bytes(100), 1)
        assert len(store.cache) <= 50 and store.cache_bytes <= 20_000
    assert store.get(SESSION, "absent") is None
    assert store.stats()["overlay_rows"] == 0
    storage.close()
