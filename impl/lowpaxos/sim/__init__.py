"""The deterministic simulator: one seed, one run (see simulator.py for the design)."""

from lowpaxos.sim.faults import Crash, FaultPlan, Partition
from lowpaxos.sim.run import RunLimits, run
from lowpaxos.sim.simulator import InFlight, OperationRecord, SimOptions, Simulator
from lowpaxos.sim.topology import Topology

__all__ = [
    "Crash",
    "FaultPlan",
    "InFlight",
    "OperationRecord",
    "Partition",
    "RunLimits",
    "SimOptions",
    "Simulator",
    "Topology",
    "run",
]
