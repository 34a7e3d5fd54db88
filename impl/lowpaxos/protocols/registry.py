"""The protocols a driver can run, by name. Drivers use only this table, so a new
protocol (VR, EPaxos) plugs in here without changing the simulator or the runtime."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable

from lowpaxos.core.api import Core


@dataclass(frozen=True)
class ProtocolSpec:
    name: str
    # (config, replica_id, rng, durable or None, trace) -> a core
    make_core: Callable[[Any, int, random.Random, Any, bool], Core]
    # () -> an empty durable state with .apply(record) and .copy()
    new_durable: Callable[[], Any]
    # (replicas, **options) -> a validated config
    make_config: Callable[..., Any]
    message_types: tuple[type, ...]
    record_types: tuple[type, ...]
    # The meaning of the durable records over primitives (``apply``), which new_durable's
    # class inherits and the runtime's SQLite storage (runtime/storage.py) inherits too,
    # with the scalar and entry encodings the storage needs (durable.py of the protocol).
    durable_fold: type
    # config -> whether the core persists its KVS rows. False (VR's disk = "none"): the
    # rows live in memory only, and a driver gives the core an in-memory row store.
    rows_durable: Callable[[Any], bool]


def _lowpaxos() -> ProtocolSpec:
    from lowpaxos.protocols.lowpaxos.config import LowPaxosConfig
    from lowpaxos.protocols.lowpaxos.core import LowPaxosReplica
    from lowpaxos.protocols.lowpaxos.durable import DurableFold, DurableState
    from lowpaxos.protocols.lowpaxos.messages import MESSAGE_TYPES, RECORD_TYPES

    def make_config(replicas: int, **options: Any) -> LowPaxosConfig:
        return LowPaxosConfig(replicas=replicas, **options).validate()

    def make_core(config, replica_id, rng, durable=None, trace=False):
        return LowPaxosReplica(config, replica_id, rng, durable, trace)

    return ProtocolSpec("lowpaxos", make_core, DurableState, make_config, MESSAGE_TYPES,
                        RECORD_TYPES, DurableFold, lambda config: True)


def _vr() -> ProtocolSpec:
    from lowpaxos.protocols.vr import wire  # noqa: F401 - registers VR's messages in the codec
    from lowpaxos.protocols.vr.config import VRConfig
    from lowpaxos.protocols.vr.core import VRReplica
    from lowpaxos.protocols.vr.durable import VRDurableFold, VRDurableState
    from lowpaxos.protocols.vr.messages import MESSAGE_TYPES, RECORD_TYPES

    def make_config(replicas: int, **options: Any) -> VRConfig:
        return VRConfig(replicas=replicas, **options).validate()

    def make_core(config, replica_id, rng, durable=None, trace=False):
        return VRReplica(config, replica_id, rng, durable, trace)

    return ProtocolSpec("vr", make_core, VRDurableState, make_config, MESSAGE_TYPES,
                        RECORD_TYPES, VRDurableFold, lambda config: config.disk == "sync")


def _epaxos() -> ProtocolSpec:
    from lowpaxos.protocols.epaxos import wire  # noqa: F401 - registers EPaxos's messages
    from lowpaxos.protocols.epaxos.config import EPaxosConfig
    from lowpaxos.protocols.epaxos.core import EPaxosReplica
    from lowpaxos.protocols.epaxos.durable import EPaxosDurableFold, EPaxosDurableState
    from lowpaxos.protocols.epaxos.messages import MESSAGE_TYPES, RECORD_TYPES

    def make_config(replicas: int, **options: Any) -> EPaxosConfig:
        return EPaxosConfig(replicas=replicas, **options).validate()

    def make_core(config, replica_id, rng, durable=None, trace=False):
        return EPaxosReplica(config, replica_id, rng, durable, trace)

    return ProtocolSpec("epaxos", make_core, EPaxosDurableState, make_config, MESSAGE_TYPES,
                        RECORD_TYPES, EPaxosDurableFold, lambda config: True)


PROTOCOLS: dict[str, ProtocolSpec] = {"lowpaxos": _lowpaxos(), "vr": _vr(), "epaxos": _epaxos()}
