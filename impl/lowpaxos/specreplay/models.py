"""The replay models by protocol: the TLA+ model beside this file and the adapter
that drives that protocol's cores. VR and EPaxos add a line each."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from lowpaxos.specreplay.generate import Model


@dataclass(frozen=True)
class ReplayModel:
    model: Model
    adapter: Callable  # seed -> adapter


def _lowpaxos() -> ReplayModel:
    from lowpaxos.specreplay.lowpaxos_adapter import LowPaxosAdapter

    return ReplayModel(Model("ReplayLowPaxos.tla", "ReplayLowPaxos.cfg"), LowPaxosAdapter)


MODELS: dict[str, Callable[[], ReplayModel]] = {"lowpaxos": _lowpaxos}
