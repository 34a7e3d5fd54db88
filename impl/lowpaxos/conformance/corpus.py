"""Traces to check: simulator runs with faults, mutants' traces, a real cluster's.

* ``sim_trace``: one simulator run (lowpaxos.sim.run) with faults, written as
  NDJSON, with the small log-cut and state-transfer settings of ``lowpaxos sim
  --trace`` (``TRACE_PROTOCOL_OPTIONS``), so that runs cut their logs and a
  replica down or cut off for a while catches up by a state transfer;
  otherwise the core runs as configured by default.
* ``mutant_trace``: the same run in a copy of the tree with one patch of
  tests/mutants/ applied (tests/mutants/run.py's way), in a subprocess.
* ``runtime_trace``: a 3-process cluster on 127.0.0.1 (lowpaxos.runtime) with
  tracing on, a few client writes, then the per-replica files merged.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


@dataclass(frozen=True, slots=True)
class SimRun:
    """One simulator run to trace; the fault knobs are those of ``lowpaxos sim``."""

    seed: int
    ops: int = 60
    clients: int = 4
    loss: float = 0.02
    dup: float = 0.02
    reorder: float = 0.05
    crashes: int = 1
    partitions: int = 1
    safety_ticks: int = 300
    # (replica, first tick, ticks): cut one replica off from the others, besides the
    # random faults. Long enough (over 2 * election_ticks) and a leader steps down.
    isolate: tuple[int, int, int] | None = None
    # (replica, first tick, ticks): crash one replica and restart it that much later,
    # besides the random faults. Long enough and the others cut their logs past it,
    # so that it catches up by a state transfer.
    crash: tuple[int, int, int] | None = None
    protocol: str = "lowpaxos"
    disk: str = "sync"  # VR: "sync" or "none" (diskless replicas recover by §4.3)
    replicas: int = 3
    keys: int = 10  # the keys the clients share (few keys: EPaxos instances interfere often)

    def name(self) -> str:
        if self.protocol == "epaxos":
            return (f"epaxos-sim-seed{self.seed}-ops{self.ops}-n{self.replicas}"
                    + ("-isolated" if self.isolate else "") + ("-crashed" if self.crash else ""))
        if self.protocol != "lowpaxos":
            return (f"{self.protocol}-sim-seed{self.seed}-ops{self.ops}-disk-{self.disk}"
                    + ("-isolated" if self.isolate else "") + ("-crashed" if self.crash else ""))
        return (f"sim-seed{self.seed}-ops{self.ops}" + ("-isolated" if self.isolate else "")
                + ("-crashed" if self.crash else ""))


# The corpus `make conformance` regenerates and checks: several seeds, all faults.
FAULTY_RUNS = (
    SimRun(seed=1),
    SimRun(seed=2, crashes=2),
    SimRun(seed=3, partitions=2),
    SimRun(seed=4, loss=0.05, dup=0.05),
    SimRun(seed=5, ops=120, reorder=0.2),
    SimRun(seed=6, ops=150, clients=6, crashes=2, partitions=2),
    # The leader (replica 2 in this run) is cut off long enough to step down, and falls
    # behind the new leader's cut; the replica serving a state transfer (0) crashes in
    # the middle of it, and once it is back the receiver resumes from a newer image with
    # only the rows changed since. (With the crash 20 to 40 ticks longer, the receiver
    # is elected with its transfer still open: before ef56f08 the core's invariant check
    # failed there, see docs/conformance.md.)
    SimRun(seed=7, ops=100, crashes=0, partitions=0, safety_ticks=700, isolate=(2, 250, 320),
           crash=(0, 400, 60)),
    # Candidates behind a replica's cut are refused (Rejects marked lagging) and ask for
    # catch-up; two state transfers; a Reject of a higher ballot (HandleReject).
    SimRun(seed=8, crashes=2, partitions=2),
)
QUICK_RUNS = (SimRun(seed=1), SimRun(seed=2, crashes=2))

# VR runs, with checkpoints off (VR.tla keeps logs whole: VR_TRACE_OPTIONS), in both
# disk modes: crashes, partitions (view changes), diskless recovery, state transfer.
VR_TRACE_OPTIONS = {"snapshot_slots": 1_000_000, "log_slots_max": 1_000_008}
VR_RUNS = (
    # Diskless: the primary (0) is cut off long enough for a view change (view 1), then
    # replica 1 crashes and recovers by §4.3 (nonces, f + 1 responses with the primary's)
    # and a second view change follows; state transfer for the ops it lacks.
    SimRun(seed=11, protocol="vr", disk="none", ops=40, crashes=0, partitions=0,
           isolate=(0, 60, 250), crash=(1, 400, 80), safety_ticks=600),
    # The same faults with sync disks: the restarted replica comes back from its disk.
    SimRun(seed=12, protocol="vr", disk="sync", ops=40, crashes=0, partitions=0,
           isolate=(0, 60, 250), crash=(1, 400, 80), safety_ticks=600),
    # Diskless, the primary crashes: a view change, then it recovers in view 1.
    SimRun(seed=13, protocol="vr", disk="none", ops=40, crashes=0, partitions=1,
           crash=(0, 100, 80), safety_ticks=500),
    # Sync, random crashes (two may overlap: sync replicas survive that) and partitions.
    SimRun(seed=14, protocol="vr", disk="sync", ops=40, crashes=2, partitions=2),
    SimRun(seed=15, protocol="vr", disk="none", ops=40, crashes=0, partitions=0,
           crash=(0, 100, 150), safety_ticks=500),
)
# Random crashes are not used for diskless runs: two overlapping crashes break §4.3's
# assumption (at most f replicas down at once), which VR.tla's Crash enforces.
VR_QUICK_RUNS = (VR_RUNS[2],)

# EPaxos runs (spec/EPaxos.tla; lowpaxos sim --trace's settings: no collection, recovery
# after 20 ticks): two shared keys, so that instances interfere and take the slow path;
# command leaders crashed mid-protocol, so that others recover their instances by
# explicit prepare (TR §4.5) and the leader recovers its own after its restart.
EPAXOS_RUNS = (
    # No crash: fast and slow paths, loss and reordering (retried PreAccepts).
    SimRun(seed=21, protocol="epaxos", ops=30, keys=2, crashes=0, partitions=0),
    # Leader 2 crashes mid-protocol: recovery case 4 (Phase 1 again at the recovery
    # ballot with the held batch), case 1; a client's retry proposes its batch again.
    SimRun(seed=41, protocol="epaxos", ops=40, keys=2, crashes=0, partitions=0,
           crash=(2, 37, 120), safety_ticks=400, loss=0.05),
    # Leader 2 crashes: case 3 (a non-leader pre-accepted its initial value unchanged),
    # then the restarted leader recovers its own instance (case 1).
    SimRun(seed=44, protocol="epaxos", ops=40, keys=2, crashes=0, partitions=0,
           crash=(2, 58, 120), safety_ticks=400, loss=0.05),
    # Two random crashes and a partition: two replicas recover one instance at once,
    # both reach Phase 2 (case 5: NOP, then case 2: the accepted NOP of the higher
    # vballot); the leader's late PreAccept is Nacked; a NOP committed by case 1.
    SimRun(seed=57, protocol="epaxos", ops=40, keys=2, crashes=2, partitions=1, loss=0.08,
           safety_ticks=400),
    # 5 replicas (F = 2, fast quorum 4): leaders whose PreAccept times out with two
    # unchanged replies and no fast quorum take the slow path (PreAcceptTimeout, 7
    # times); a random crash and restart, three recoveries.
    SimRun(seed=92, protocol="epaxos", replicas=5, ops=40, keys=2, crashes=1, partitions=0,
           loss=0.05, safety_ticks=400),
)
EPAXOS_QUICK_RUNS = (EPAXOS_RUNS[0],)


def sim_trace(run: SimRun, path: Path) -> dict:
    """Run the simulator with ``run``'s faults and write its trace to ``path``."""
    from lowpaxos.protocols.registry import PROTOCOLS
    from lowpaxos.sim.cli import TRACE_PROTOCOL_OPTIONS, ndjson_writer, trace_meta_line
    from lowpaxos.sim.faults import Crash, FaultPlan, Partition
    from lowpaxos.sim.run import RunLimits
    from lowpaxos.sim.run import run as run_sim
    from lowpaxos.sim.simulator import SimOptions

    spec = PROTOCOLS[run.protocol]
    if run.protocol == "vr":
        config = spec.make_config(run.replicas, disk=run.disk, **VR_TRACE_OPTIONS)
    else:
        config = spec.make_config(run.replicas, **TRACE_PROTOCOL_OPTIONS.get(run.protocol, {}))
    tick_us = 1_000
    safety_us = run.safety_ticks * tick_us
    plan = FaultPlan.random(random.Random(f"faults:{run.seed}"), replicas=run.replicas,
                            window_us=safety_us,
                            tick_us=tick_us, crashes=run.crashes, partitions=run.partitions,
                            loss=run.loss, dup=run.dup, reorder=run.reorder)
    if run.isolate is not None:
        replica, start, ticks = run.isolate
        others = tuple(r for r in range(run.replicas) if r != replica)
        cut = Partition(start * tick_us, ((replica,), others), ticks * tick_us)
        plan = dataclasses.replace(plan, partitions=tuple(sorted(
            plan.partitions + (cut,), key=lambda p: (p.time_us, p.groups))))
    if run.crash is not None:
        replica, start, ticks = run.crash
        down = Crash(start * tick_us, replica, ticks * tick_us)
        plan = dataclasses.replace(plan, crashes=tuple(sorted(
            plan.crashes + (down,), key=lambda c: (c.time_us, c.replica))))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as file:
        meta = trace_meta_line(run.protocol, config, run.seed, "sim")
        if run.protocol == "vr":  # the disk mode, for the model's DisklessReplicas
            meta = json.dumps({"meta": {**json.loads(meta)["meta"], "disk": run.disk}},
                              sort_keys=True) + "\n"
        file.write(meta)
        options = SimOptions(replicas=run.replicas, clients=run.clients, ops=run.ops,
                             seed=run.seed, keys=run.keys,
                             tick_us=tick_us, client_timeout_us=50 * tick_us,
                             client_backoff_us=2 * tick_us, trace_events=ndjson_writer(file))
        limits = RunLimits(safety_us=safety_us, liveness_us_max=20_000 * tick_us,
                           settle_us_max=2_000 * tick_us, wall_s_max=120.0)
        return run_sim(spec, config, options, plan, limits, protocol=run.protocol)


def mutant_trace(patch: Path, run: SimRun, path: Path, timeout_s: float = 300.0) -> tuple[bool, str]:
    """Write the trace of ``run`` with ``patch`` applied to a copy of the tree.
    False and the reason when the patch does not apply or the run fails."""
    with tempfile.TemporaryDirectory(prefix=f"mutant-{patch.stem}-") as tmp:
        tree = Path(tmp)
        for folder in ("impl",):
            shutil.copytree(REPO / folder, tree / folder,
                            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        applied = subprocess.run(["patch", "-p1", "--quiet", "-i", str(patch.resolve())], cwd=tree,
                                 capture_output=True, text=True)
        if applied.returncode != 0:
            return False, f"patch does not apply: {applied.stdout}{applied.stderr}"
        env = dict(os.environ)
        env["PYTHONPATH"] = str(tree / "impl")  # the copy shadows the editable install
        code = ("import sys, json; from pathlib import Path\n"
                "from lowpaxos.conformance.corpus import SimRun, sim_trace\n"
                "run = SimRun(**json.loads(sys.argv[1]))\n"
                "sim_trace(run, Path(sys.argv[2]))\n")
        arguments = json.dumps({name: getattr(run, name) for name in run.__slots__})
        try:
            done = subprocess.run([sys.executable, "-c", code, arguments, str(path)], cwd=tree,
                                  env=env, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return False, f"mutant run took longer than {timeout_s:.0f} s"
        if done.returncode != 0 and not path.exists():
            return False, done.stderr[-2000:]
        return True, done.stderr[-500:] if done.returncode != 0 else ""


def runtime_trace(path: Path, writes: int = 20, timeout_s: float = 60.0,
                  restart: bool = True, protocol: str = "lowpaxos") -> Path:
    """Start 3 replicas on 127.0.0.1 with tracing, write ``writes`` keys through RESP
    (with ``restart``, replica 1 is stopped after a third of them and started again
    after two thirds), stop them, and merge their trace files into ``path``.

    The stop is a SIGTERM: a SIGKILL may lose the tail of the replica's trace file,
    and a message whose send is not in the trace can never conform."""
    from lowpaxos.conformance.trace import load_runtime_traces
    from lowpaxos.runtime.launcher import LocalCluster

    deadline = time.monotonic() + timeout_s
    with tempfile.TemporaryDirectory(prefix="lowpaxos-conformance-cluster-") as tmp:
        directory = Path(tmp)
        if protocol == "vr":  # checkpoints off (VR_TRACE_OPTIONS), the runtime's sync disks
            cluster = LocalCluster(directory, 3, trace=True, lifetime_s=timeout_s + 30,
                                   protocol_name="vr", protocol=dict(VR_TRACE_OPTIONS))
        elif protocol == "epaxos":  # the simulator's trace settings (TRACE_PROTOCOL_OPTIONS)
            from lowpaxos.sim.cli import TRACE_PROTOCOL_OPTIONS

            cluster = LocalCluster(directory, 3, trace=True, lifetime_s=timeout_s + 30,
                                   protocol_name="epaxos",
                                   protocol=dict(TRACE_PROTOCOL_OPTIONS.get("epaxos", {})))
        else:
            cluster = LocalCluster(directory, 3, trace=True, lifetime_s=timeout_s + 30)
        try:
            cluster.start()
            if restart:
                third = max(1, writes // 3)
                _resp_writes(cluster, range(0, third), deadline)
                cluster.kill_replica(1, signal.SIGTERM)
                _resp_writes(cluster, range(third, 2 * third), deadline)
                cluster.start_replica(1)
                _resp_writes(cluster, range(2 * third, writes), deadline)
            else:
                _resp_writes(cluster, range(writes), deadline)
            time.sleep(0.3)  # let the last heartbeats carry the commit point to followers
        finally:
            cluster.stop()
        files = sorted((directory / "trace").glob("replica-*.ndjson"))
        if len(files) != 3:
            raise RuntimeError(f"expected 3 trace files, found {len(files)} in {directory}")
        meta = ({"protocol": "vr", "disk": "sync"} if protocol == "vr"
                else {"protocol": protocol} if protocol != "lowpaxos" else None)
        return load_runtime_traces(files, path, meta)


def _resp_writes(cluster, keys: range, deadline: float) -> None:
    """SET k_i v_i through RESP for i in ``keys``, trying the replicas in turn until one
    (the leader) answers OK."""
    import socket

    def command(port: int, *parts: bytes) -> bytes:
        payload = b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)
        with socket.create_connection(("127.0.0.1", port), timeout=2.0) as sock:
            sock.sendall(payload)
            return sock.recv(4096)

    for index in keys:
        for _attempt in range(200):  # bounded: ~10 s per write at most
            if time.monotonic() > deadline:
                raise RuntimeError("the cluster did not take the writes in time")
            port = cluster.resp_ports[_attempt % len(cluster.resp_ports)]
            try:
                reply = command(port, b"SET", b"k%d" % index, b"v%d" % index)
            except OSError:
                reply = b""
            if reply.startswith(b"+OK"):
                break
            time.sleep(0.05)
        else:
            raise RuntimeError(f"write {index} was never acknowledged")
