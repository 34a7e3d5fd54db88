"""Hypothesis explores crash, partition, loss, duplication and reordering schedules
against a simulated LowPaxos cluster, checking safety after every step and, at the
end, liveness on a healed network and linearizability of what clients saw.

The sync rules drive the deterministic simulator (impl/lowpaxos/sim); a failure
prints the program of rules that reproduces it.
"""

from __future__ import annotations

import dataclasses
from collections import Counter

from hypothesis import event, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from lowpaxos.check.linearizability import Operation, check_history
from lowpaxos.protocols.registry import PROTOCOLS
from lowpaxos.sim.simulator import SimOptions, Simulator

REPLICAS = 3
TICK_US = 1_000
LIVENESS_US_MAX = 60_000_000


class LowPaxosCluster(RuleBasedStateMachine):
    """One simulated cluster per example; rules are faults and the passage of time."""

    def __init__(self) -> None:
        super().__init__()
        spec = PROTOCOLS["lowpaxos"]
        # A small log, window and cut interval, so that truncation, state transfers and
        # back-pressure happen within a short run; values and chunks sized so that the
        # state is many chunks (about one row per chunk) and transfers get interrupted.
        config = spec.make_config(REPLICAS, window_slots=4, snapshot_slots=8,
                                  log_slots_max=24, pending_commands_max=16,
                                  batch_bytes_max=300, transfer_chunk_bytes=64,
                                  transfer_window=2, invariant_full_scan_steps=1)
        self.sim = Simulator(spec, config, SimOptions(replicas=REPLICAS, clients=4, ops=10_000,
                                                      keys=12, value_bytes=40, seed=0,
                                                      tick_us=TICK_US))
        self.ops_budget_open = True
        # Every value any replica ever held committed at a slot; it must never change.
        self.chosen: dict[int, tuple] = {}

    # ---- the passage of time and the workload ----

    @rule(events=st.integers(1, 60))
    def run_events(self, events):
        for _ in range(events):
            if not self.sim.step():
                break

    @rule(ms=st.integers(1, 400))
    def advance_time(self, ms):
        self.sim.run_until(self.sim.now_us + ms * 1000, events_max=20_000)

    # ---- the network by hand ----

    @precondition(lambda self: self.sim.pending_messages())
    @rule(pick=st.integers(0, 10_000))
    def deliver_out_of_order(self, pick):
        pending = self.sim.pending_messages()
        self.sim.deliver_now(pending[pick % len(pending)].msg_id)

    @precondition(lambda self: self.sim.pending_messages())
    @rule(pick=st.integers(0, 10_000))
    def drop_message(self, pick):
        pending = self.sim.pending_messages()
        self.sim.drop(pending[pick % len(pending)].msg_id)

    @precondition(lambda self: self.sim.pending_messages())
    @rule(pick=st.integers(0, 10_000))
    def duplicate_message(self, pick):
        pending = self.sim.pending_messages()
        self.sim.duplicate(pending[pick % len(pending)].msg_id)

    @rule(isolated=st.integers(0, REPLICAS - 1))
    def partition(self, isolated):
        rest = tuple(r for r in range(REPLICAS) if r != isolated)
        self.sim.partition(((isolated,), rest))

    @rule()
    def heal(self):
        self.sim.heal()

    # ---- replicas ----

    @rule(replica=st.integers(0, REPLICAS - 1))
    def crash(self, replica):
        self.sim.crash(replica)

    @rule(replica=st.integers(0, REPLICAS - 1))
    def restart(self, replica):
        self.sim.restart(replica)

    # ---- safety after every step ----

    @invariant()
    def committed_slots_agree_and_never_change(self):
        for core in self.sim.cores():
            if core is None:
                continue
            core.check_invariants()
            for slot in range(core.log_start + 1, core.commit_index + 1):
                batch = core.log[slot].batch
                known = self.chosen.setdefault(slot, batch)
                assert known == batch, (
                    f"slot {slot}: replica {core.replica_id} committed {batch!r}, "
                    f"but {known!r} was committed there before"
                )

    def teardown(self) -> None:
        """Liveness on a healed network, then every acknowledged write is everywhere
        and the history is linearizable."""
        sim = self.sim
        sim.end_faults()
        # Stop issuing new work: the clients finish what is outstanding.
        sim.options = dataclasses.replace(sim.options, ops=sim.ops_issued)
        finished = sim.run_until_quiet(sim.now_us + LIVENESS_US_MAX, events_max=3_000_000,
                                       wall_s_max=120)
        assert finished, "clients did not finish on a healed network"
        settled = sim.run_while(lambda: len(set(sim.kvs_digests())) != 1,
                                sim.now_us + LIVENESS_US_MAX, events_max=1_000_000,
                                wall_s_max=60)
        assert settled, f"replicas did not converge: {sim.kvs_digests()}"
        self.committed_slots_agree_and_never_change()
        history = [
            Operation(r.client_id, r.op, r.key, r.value, r.expected, r.invoke_us,
                      r.response_us, r.result)
            for r in sim.history
        ]
        verdict = check_history(history, time_limit_s=60)
        assert verdict.linearizable is True, verdict.explanation
        # What the schedule reached, for `pytest --hypothesis-show-statistics`.
        drops = Counter()
        for core in sim.cores():
            drops.update(core.drop_counts())
        installs = sum(core.transfers_installed for core in sim.cores())
        event(f"transfers installed (replicas): {installs}")
        for reason in ("stale_chunk", "chunk_not_next", "transfer_overtaken"):
            event(f"{reason}: {'yes' if drops[reason] else 'no'}")


TestLowPaxosCluster = LowPaxosCluster.TestCase
