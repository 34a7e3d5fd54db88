"""What an EPaxos replica keeps across a crash, folded from its persist records.

That is every instance it holds (status, both ballots, batch, seq, deps,
unchanged: SaveInstance, written before any reply or commit that depends on it
leaves), the KVS rows with the executed frontier they cover (SaveRows), and the
collected frontier below which instances have left the log (SaveCollect: every
replica has executed them and the rows cover them).

``EPaxosDurableFold.apply`` is the meaning of every record, written once, over
primitives that decide nothing (write these entries, drop the entries between two
keys). ``EPaxosDurableState`` supplies them in memory (the simulator's disk); the
runtime's SQLite storage (runtime/storage.py) supplies them in SQL from the same
fold, with the scalar and entry encodings given here. An instance is stored under
``instance_key((R, i)) = R << 40 | i``, so one replica's instances are a key range.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lowpaxos.kvs import MemoryRowStore
from lowpaxos.protocols.epaxos.config import REPLICAS_MAX
from lowpaxos.protocols.epaxos.messages import (
    STATUS_NAMES,
    Ballot,
    InstanceRecord,
    SaveCollect,
    SaveInstance,
    SaveRows,
    instance_key,
    instance_of_key,
)


def vector(values: tuple[int, ...], length: int) -> tuple[int, ...]:
    """A frontier vector of ``length``; the empty tuple is all zeros (a fresh disk)."""
    return tuple(values) + (0,) * (length - len(values))


class EPaxosDurableFold:
    """The meaning of every EPaxos durable record (``apply``), over primitives.

    A subclass has the fields named in ``SCALARS`` and ``store``: a row set with
    ``index``, ``digest`` and the methods ``apply_changes(rows)`` and
    ``drop_tombstones_below(version)``, and supplies the primitives below.
    """

    # What the runtime's storage keeps for this fold (runtime/storage.py): one meta row
    # per scalar; the store's index is the count of executed instances its rows hold
    # (``executed_count``, the COMMIT_FIELD); ``log_start`` stays 0 (instances leave the
    # log per replica, below ``collected``, not at one cut).
    SCALARS = ("executed", "executed_count", "collected", "log_start")
    ENTRY_COLUMNS: tuple[str, ...] = (
        ("status", "ballot_round", "ballot_replica", "vballot_round", "vballot_replica",
         "seq", "unchanged", "known", "deps_count")
        + tuple(f"dep{r}" for r in range(REPLICAS_MAX)))
    COMMIT_FIELD = "executed_count"

    executed: tuple[int, ...]
    executed_count: int
    collected: tuple[int, ...]
    log_start: int

    def put_entries(self, entries: list[InstanceRecord]) -> None:
        """Hold each record under its instance key, replacing what the key held."""
        raise NotImplementedError

    def drop_entries_between(self, low: int, high: int) -> None:
        """Forget every entry whose key k has low < k <= high."""
        raise NotImplementedError

    def apply(self, record) -> None:
        match record:
            case SaveInstance(record=instance):
                replica, number = instance.inst
                if number <= vector(self.collected, replica + 1)[replica]:
                    return  # collected: executed everywhere, nothing to keep
                self.put_entries([instance])
            case SaveRows(executed=executed, executed_count=count, digest=digest,
                          tombstone_horizon=horizon, rows=rows):
                held = vector(self.executed, len(executed))
                assert len(held) == len(executed), "one frontier length"
                assert all(new >= old for new, old in zip(executed, held)), \
                    "the executed frontier only moves forward"
                assert count >= self.executed_count, "the executed count only rises"
                self.store.apply_changes(rows)
                self.store.index = count
                self.store.digest = digest
                self.store.drop_tombstones_below(horizon)
                self.executed = tuple(executed)
                self.executed_count = count
            case SaveCollect(collected=collected):
                held = vector(self.collected, len(collected))
                executed = vector(self.executed, len(collected))
                assert all(c <= e for c, e in zip(collected, executed)), \
                    "only instances the saved rows cover are collected"
                for replica, (old, new) in enumerate(zip(held, collected)):
                    if new > old:
                        self.drop_entries_between(instance_key((replica, old)),
                                                  instance_key((replica, new)))
                self.collected = tuple(max(old, new) for old, new in zip(held, collected))
            case _:
                raise TypeError(f"not an EPaxos durable record: {record!r}")

    # Encodings for the runtime's storage (msgpack values; no meaning decided here).

    @staticmethod
    def scalar_to_stored(name: str, value: Any) -> Any:
        if name in ("executed", "collected"):
            return list(value)
        return value

    @staticmethod
    def scalar_from_stored(name: str, value: Any) -> Any:
        """The field from its stored value; ValueError or TypeError for a wrong shape."""
        if name in ("executed", "collected"):
            if not isinstance(value, list) or len(value) > REPLICAS_MAX or not all(
                    isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
                raise ValueError(f"{name} is not a frontier vector")
            return tuple(value)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise TypeError(f"{name} is not a non-negative integer")
        return value

    @staticmethod
    def entry_to_stored(record: InstanceRecord) -> tuple[int, tuple[int, ...], Any]:
        """(instance key, the ENTRY_COLUMNS values, the batch: () when unknown)."""
        deps = tuple(record.deps) + (0,) * (REPLICAS_MAX - len(record.deps))
        columns = (STATUS_NAMES.index(record.status), record.ballot.round,
                   record.ballot.replica, record.vballot.round, record.vballot.replica,
                   record.seq, int(record.unchanged), int(record.batch is not None),
                   len(record.deps)) + deps
        return instance_key(record.inst), columns, record.batch if record.batch is not None else ()

    @staticmethod
    def entry_from_stored(key: int, columns: tuple[int, ...], batch: Any) -> InstanceRecord:
        (status, ballot_round, ballot_replica, vballot_round, vballot_replica, seq, unchanged,
         known, deps_count) = columns[:9]
        if not 0 <= status < len(STATUS_NAMES) or not 0 <= deps_count <= REPLICAS_MAX:
            raise ValueError("instance columns out of range")
        return InstanceRecord(instance_of_key(key), STATUS_NAMES[status],
                              Ballot(ballot_round, ballot_replica),
                              Ballot(vballot_round, vballot_replica),
                              tuple(batch) if known else None, seq,
                              tuple(columns[9:9 + deps_count]), bool(unchanged))


@dataclass
class EPaxosDurableState(EPaxosDurableFold):
    executed: tuple[int, ...] = ()
    executed_count: int = 0
    collected: tuple[int, ...] = ()
    log_start: int = 0
    entries: dict[int, InstanceRecord] = field(default_factory=dict)
    store: MemoryRowStore = field(default_factory=MemoryRowStore)

    # The primitives of EPaxosDurableFold, in memory.

    def put_entries(self, entries: list[InstanceRecord]) -> None:
        for entry in entries:
            self.entries[instance_key(entry.inst)] = entry

    def drop_entries_between(self, low: int, high: int) -> None:
        for key in [key for key in self.entries if low < key <= high]:
            del self.entries[key]

    @property
    def store_index(self) -> int:
        return self.store.index

    def open_store(self) -> MemoryRowStore:
        return self.store.copy()

    def open_staging(self) -> MemoryRowStore:
        return MemoryRowStore()

    def copy(self) -> "EPaxosDurableState":
        return EPaxosDurableState(self.executed, self.executed_count, self.collected,
                                  self.log_start, dict(self.entries), self.store.copy())
