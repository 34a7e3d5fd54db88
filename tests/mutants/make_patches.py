"""Regenerate tests/mutants/*.patch from (name, file, old, new, description) after the
code they mutate has moved. Each old text must occur exactly once.

Usage: python tests/mutants/make_patches.py [NAME ...]  (no names: every patch)."""
import difflib, pathlib, sys
root = pathlib.Path(__file__).resolve().parents[2]
C = "impl/lowpaxos/protocols/lowpaxos/core.py"
K = "impl/lowpaxos/kvs.py"
D = "impl/lowpaxos/protocols/lowpaxos/durable.py"
M = "impl/lowpaxos/protocols/lowpaxos/messages.py"
VC = "impl/lowpaxos/protocols/vr/core.py"
EC = "impl/lowpaxos/protocols/epaxos/core.py"
MUTANTS = [
 ("accept_lower_ballot", C, "        if ballot < self.promised:\n            self._drop(\"stale_ballot\")",
  "        if False and ballot < self.promised:\n            self._drop(\"stale_ballot\")",
  "An acceptor takes an Accept (or heartbeat) below its promised ballot."),
 ("quorum_one_short", C, "len(self.acks[slot]) >= self.config.quorum_phase2", "len(self.acks[slot]) >= self.config.quorum_phase2 - 1",
  "The leader commits a slot with one ack fewer than a phase-2 quorum."),
 ("leader_accept_not_persisted", C, "                command_size_bytes(c) for c in entry.batch)\n        effects.persist.append(SaveEntries(tuple(entries)))",
  "                command_size_bytes(c) for c in entry.batch)",
  "The leader counts its own accept toward the quorum and replies without persisting it."),
 ("stale_leader_commits", C, "        if self.role is not Role.LEADER or message.ballot != self.promised:\n            # Counting",
  "        if self.role is not Role.LEADER:\n            # Counting",
  "A leader counts Accepted replies of an older ballot, so a deposed ballot's acks commit after a newer phase 1."),
 ("skip_noop_fill", C, "            batch = best[slot].batch if slot in best else ()\n            recovered.append(Entry(slot, ballot, batch))",
  "            if slot in best:\n                recovered.append(Entry(slot, ballot, best[slot].batch))",
  "A new leader re-proposes reported values but leaves gaps unfilled instead of proposing no-ops."),
 ("retried_request_runs_twice", K, "        if latest is not None and command.request_id <= latest[0]:", "        if False:",
  "The KVS executes a request again when it is committed a second time."),
 ("phase1_takes_lowest_ballot", C, "if current is None or entry.ballot > current.ballot:", "if current is None or entry.ballot < current.ballot:",
  "A new leader takes the lowest-ballot value a promise reported instead of the highest."),
 ("promise_not_persisted", C, "            self.promised = ballot\n            effects.persist.append(SavePromise(ballot))", "            self.promised = ballot",
  "A replica promises a ballot without making the promise durable; after a restart it forgets it."),
 ("follower_commits_any_ballot", C, "            if entry is None or entry.ballot != ballot:\n                break", "            if entry is None:\n                break",
  "A follower takes its own entry as committed whatever ballot it was accepted in."),
 ("install_without_digest_check", C, "        if self.staging.digest != transfer.digest:", "        if False:",
  "A receiver installs the staged rows of a transfer without checking them against the image digest."),
 ("staged_rows_written_live", D, "                self.staging.apply_changes(rows)", "                self.store.apply_changes(rows)",
  "Staged transfer rows are written into the live store, so a crash mid-transfer leaves a half state installed."),
 ("catchup_lowers_ballot", C, "            if current is not None and current.batch == entry.batch and current.ballot > entry.ballot:", "            if False:",
  "Catch-up overwrites an entry accepted in a higher ballot with the same value in a lower one."),

 # ---- Issue 12, point 1: bug classes that survived make test (two or three variants each).
 # (a) phase 1 keeps the wrong value.
 ("phase1_last_promise_wins", C,
  "                current = best.get(entry.slot)\n                if current is None or entry.ballot > current.ballot:\n                    best[entry.slot] = entry",
  "                best[entry.slot] = entry",
  "(a) A new leader keeps, per slot, the value of the last promise it processed instead of the highest-ballot one."),
 ("phase1_keeps_own_value", C, "if current is None or entry.ballot > current.ballot:", "if current is None:",
  "(a) A new leader keeps the first value it saw per slot (its own log's, its promise is counted first), whatever the ballots."),
 ("phase1_takes_longest_log", C,
  "        for promise in self.promises.values():\n            for entry in promise.entries:\n                if entry.slot <= self.commit_index:",
  "        longest = max(self.promises.values(), key=lambda p: max((e.slot for e in p.entries), default=0))\n        for promise in (longest,):\n            for entry in promise.entries:\n                if entry.slot <= self.commit_index:",
  "(a) A new leader adopts the log of the promise that reaches furthest (Raft's up-to-date rule without its vote check), ignoring per-slot ballots."),
 # (b) a re-accept under a higher ballot changes memory, not disk.
 ("reaccept_not_persisted", C,
  "            self.log[message.slot] = Entry(message.slot, message.ballot, message.batch)\n            effects.persist.append(SaveEntries((self.log[message.slot],)))",
  "            held = message.slot in self.log\n            self.log[message.slot] = Entry(message.slot, message.ballot, message.batch)\n            if not held:\n                effects.persist.append(SaveEntries((self.log[message.slot],)))",
  "(b) A follower persists an Accept only for a slot it did not hold: re-accepting a slot under a higher ballot changes memory, not disk."),
 ("reaccept_same_value_not_persisted", C,
  "            self.log[message.slot] = Entry(message.slot, message.ballot, message.batch)\n            effects.persist.append(SaveEntries((self.log[message.slot],)))",
  "            held = self.log.get(message.slot)\n            self.log[message.slot] = Entry(message.slot, message.ballot, message.batch)\n            if held is None or held.batch != message.batch:\n                effects.persist.append(SaveEntries((self.log[message.slot],)))",
  "(b) A follower skips the write when a re-accept keeps the value: the higher ballot lives in memory only."),
 ("catchup_overwrite_not_persisted", C,
  "        if taken:\n            for entry in taken:\n                self.log[entry.slot] = entry\n            effects.persist.append(SaveEntries(tuple(taken)))",
  "        if taken:\n            fresh = tuple(entry for entry in taken if entry.slot not in self.log)\n            for entry in taken:\n                self.log[entry.slot] = entry\n            effects.persist.append(SaveEntries(fresh))",
  "(b) Catch-up persists only slots the replica did not hold: an overwritten entry of another ballot stays on disk."),
 # (c) catch-up hands on slots above the serving replica's commit point.
 ("catchup_serves_open_slots", C,
  ("        last = min(self.commit_index, message.from_slot - 1 + self.config.log_slots_max)\n        for slot in range(message.from_slot, last + 1):\n            entry = self.log[slot]",
   "        effects.send.append((source, CatchupReply(self.promised, tuple(entries), self.commit_index)))"),
  ("        last = min(max(self.log, default=0), message.from_slot - 1 + self.config.log_slots_max)\n        for slot in range(message.from_slot, last + 1):\n            entry = self.log.get(slot)\n            if entry is None:\n                break",
   "        effects.send.append((source, CatchupReply(self.promised, tuple(entries),\n                                                  max([self.commit_index] + [e.slot for e in entries]))))"),
  "(c) Catch-up serves the whole log, open slots too, and reports its end as committed."),
 ("catchup_serves_to_leader_commit", C,
  ("        last = min(self.commit_index, message.from_slot - 1 + self.config.log_slots_max)\n        for slot in range(message.from_slot, last + 1):\n            entry = self.log[slot]",
   "        effects.send.append((source, CatchupReply(self.promised, tuple(entries), self.commit_index)))"),
  ("        last = min(self.leader_commit_seen, message.from_slot - 1 + self.config.log_slots_max)\n        for slot in range(message.from_slot, last + 1):\n            entry = self.log.get(slot)\n            if entry is None:\n                break",
   "        effects.send.append((source, CatchupReply(self.promised, tuple(entries),\n                                                  max(self.commit_index, self.leader_commit_seen))))"),
  "(c) Catch-up serves up to the commit point the leader announced, from entries this replica has not committed itself."),
 # (d) off by one at the log cut.
 ("prepare_lagging_off_by_one", C, "        if message.commit_index < self.log_start:", "        if message.commit_index < self.log_start - 1:",
  "(d) A replica promises to a candidate one slot behind its cut, so the promise lacks the cut slot the candidate needs."),
 ("catchup_transfer_off_by_one", C, "        if message.from_slot <= self.log_start:", "        if message.from_slot < self.log_start:",
  "(d) Catch-up from exactly the cut slot is served from the log (which no longer holds it) instead of by a state transfer."),
 # (e) ballots compared by round alone.
 ("ballot_order_by_round", M,
  "class Ballot(NamedTuple):\n    round: int\n    replica: int\n",
  "class Ballot(NamedTuple):\n    round: int\n    replica: int\n\n    def __lt__(self, other):\n        return self.round < other.round\n\n    def __le__(self, other):\n        return self.round <= other.round\n\n    def __gt__(self, other):\n        return self.round > other.round\n\n    def __ge__(self, other):\n        return self.round >= other.round\n",
  "(e) Ballots order by round alone: two candidates of one round both gather promises and both lead."),
 ("follower_filter_by_round", C,
  "        ballot = message.ballot\n        if ballot.replica != source:\n            self._drop(\"not_ballot_owner\")\n            return False\n        if ballot < self.promised:",
  "        ballot = message.ballot\n        if ballot.replica != source:\n            self._drop(\"not_ballot_owner\")\n            return False\n        if ballot.round < self.promised.round:",
  "(e) A follower compares a leader's ballot with its promise by round alone, so it takes Accepts from a deposed leader of the same round."),
 # ---- Issue 12, point 1, storage and runtime (helper h6): a re-accept that reaches
 # memory but not the storage layer's SQL, and sends before the batch's write returned;
 # a per-record commit shows the crash tests of test_storage_crash.py can fail.
 ("storage_reaccept_ignored", "impl/lowpaxos/runtime/storage.py",
  "        self.connection.executemany(f\"INSERT OR REPLACE INTO entries VALUES ({self.entry_marks})\", rows)",
  "        self.connection.executemany(f\"INSERT OR IGNORE INTO entries VALUES ({self.entry_marks})\", rows)",
  "(b) The storage's SQL keeps the first entry written to a slot: a re-accept under a higher ballot changes memory, not disk."),
 ("storage_reaccept_by_round", "impl/lowpaxos/runtime/storage.py",
  "        self.connection.executemany(f\"INSERT OR REPLACE INTO entries VALUES ({self.entry_marks})\", rows)",
  "        self.connection.executemany(\n            \"INSERT INTO entries VALUES (?, ?, ?, ?, ?) ON CONFLICT(slot) DO UPDATE SET\"\n            \" ballot_round = excluded.ballot_round, ballot_replica = excluded.ballot_replica,\"\n            \" batch = excluded.batch, checksum = excluded.checksum\"\n            \" WHERE excluded.ballot_round > entries.ballot_round\", rows)",
  "(b) The storage's SQL rewrites a slot only under a higher round: a re-accept under a higher ballot of the same round (another replica) stays in memory."),
 ("storage_reaccept_keeps_ballot", "impl/lowpaxos/runtime/storage.py",
  "        self.connection.executemany(f\"INSERT OR REPLACE INTO entries VALUES ({self.entry_marks})\", rows)",
  "        self.connection.executemany(\n            \"INSERT INTO entries VALUES (?, ?, ?, ?, ?) ON CONFLICT(slot) DO UPDATE SET\"\n            \" batch = excluded.batch\", rows)",
  "(b) The storage's SQL updates a rewritten slot's value but keeps its first ballot (and checksum): the higher ballot lives in memory only."),
 ("storage_commit_per_record", "impl/lowpaxos/runtime/storage.py",
  "            for record in records:\n                state.apply(record)\n",
  "            for record in records:\n                state.apply(record)\n                c.execute(\"COMMIT\")\n                c.execute(\"BEGIN IMMEDIATE\")\n",
  "The storage commits after each record instead of once per batch, so a crash inside a write leaves part of a batch."),
 # ---- VR in the runtime's storage (helper h9): SQL primitives of VR's fold.
 ("storage_vr_drop_above_off_by_one", "impl/lowpaxos/runtime/storage.py",
  "        self.connection.execute(\"DELETE FROM entries WHERE slot > ?\", (slot,))",
  "        self.connection.execute(\"DELETE FROM entries WHERE slot >= ?\", (slot,))",
  "A VR StartView/NewState log replaces the suffix above drop_above on disk from drop_above itself: the op at drop_above is lost from the file, not from memory."),
 ("storage_vr_transfer_cursor_lost", "impl/lowpaxos/protocols/vr/durable.py",
  "            return [value.source, value.image_index, value.digest.to_bytes(16, \"big\"),\n                    _lists(value.cursor)]",
  "            return [value.source, value.image_index, value.digest.to_bytes(16, \"big\"),\n                    None]",
  "VR's stored transfer forgets its cursor: a replica restarted during a row transfer resumes from the start with staged rows it believes it lacks."),
 ("runtime_send_before_write", "impl/lowpaxos/runtime/replica.py",
  "                    await loop.run_in_executor(self.storage_thread, self.storage.write, records)",
  "                    loop.run_in_executor(self.storage_thread, self.storage.write, records)",
  "(f) The runtime starts a batch's storage write and sends its datagrams without waiting for the write to return."),
 ("runtime_late_batches_sent", "impl/lowpaxos/runtime/replica.py",
  "                self.storage.rows_committed(row_marks)\n            for effects, sends, events in groups:",
  "                self.storage.rows_committed(row_marks)\n            groups, self.pending = groups + self.pending, []\n            for effects, sends, events in groups:",
  "(f) After a group commit the runtime also sends the batches the core returned during the fsync, whose records were never written."),
 ("runtime_reply_before_write", "impl/lowpaxos/runtime/replica.py",
  "        self.pending.append((effects, sends, events))",
  "        for reply in effects.reply:\n            self.deliver_reply(reply)\n        self.pending.append((effects, sends, events))",
  "(f) The runtime answers clients as soon as the core returns a batch, before its records are written."),
 ("runtime_write_failure_ignored", "impl/lowpaxos/runtime/replica.py",
  "                    self.log.error(\"storage_write_failed\", error=repr(error))\n                    os._exit(EXIT_STORAGE_FAILED)",
  "                    self.log.error(\"storage_write_failed\", error=repr(error))",
  "(f) A replica whose storage write failed logs it and goes on sending the batch instead of stopping."),
 # ---- VR Revisited (issue 8, helper h11): the six bug classes of the issue, killed by the
 # generic tests (stateful machine and hostile seeds, both disk modes) or tests/test_vr_core.py.
 # view-change log choice (§4.2 step 3)
 ("vr_view_change_by_op_number", VC,
  "        return max(candidates, key=lambda r: (candidates[r].last_normal_view,\n                                              candidates[r].op, -r))",
  "        return max(candidates, key=lambda r: (candidates[r].op, -r))",
  "VR: the new primary takes the DoViewChange log with the largest op-number, ignoring the last normal view."),
 ("vr_view_change_by_last_normal_view_only", VC,
  "        return max(candidates, key=lambda r: (candidates[r].last_normal_view,\n                                              candidates[r].op, -r))",
  "        return max(candidates, key=lambda r: (candidates[r].last_normal_view, -r))",
  "VR: the new primary takes a log of the largest last normal view, but not the longest of them (lowest replica id)."),
 # recovery quorum (§4.3 step 3)
 ("vr_recovery_quorum_one_short", VC,
  "        if len(self.recovery_responses) < self.config.quorum:\n            return",
  "        if len(self.recovery_responses) < self.config.quorum - 1:\n            return",
  "VR: a recovering replica completes with f RecoveryResponses instead of f + 1, so it may miss the latest view."),
 ("vr_recovery_without_primary", VC,
  "        if primary is None or primary.view != latest or not primary.primary:\n            return  # wait for the latest view's primary (a retry asks again)",
  "        if primary is None or primary.view != latest or not primary.primary:\n            primary = max(self.recovery_responses.values(), key=lambda m: (m.primary, m.view))",
  "VR: a recovering replica does not wait for the latest view's primary: with f + 1 backup responses it takes an empty log."),
 # nonce ignored (§4.3)
 ("vr_nonce_ignored", VC,
  "        if self.status is not Status.RECOVERING or message.nonce != self.nonce:",
  "        if self.status is not Status.RECOVERING:",
  "VR: a recovering replica counts RecoveryResponses to any nonce, old recoveries' answers included."),
 # commit-number ahead of the log (§4.1 step 7, §5.2)
 ("vr_commit_from_old_view_log", VC,
  ("        if self.awaiting_state():\n            return self._drop(\"awaiting_state\")\n        self.truncate_hint",
   "        assert not self.awaiting_state(), \"only a log of this view may be committed from it\"\n"),
  ("        self.truncate_hint", ""),
  "VR: a backup that joined a view without its log executes up to the new primary's commit-number from its old view's log, and acknowledges it."),
 ("vr_primary_commit_one_short", VC,
  "        held = min(holders[self.config.quorum - 1], self.op)",
  "        held = min(holders[self.config.quorum - 2], self.op)",
  "VR: the primary's commit-number runs ahead of what f + 1 logs hold (one PrepareOK short)."),
 # client table (§4.1 step 2)
 ("vr_client_table_resends_no_result", VC,
  "            # §4.1 step 2: the latest request, executed: resend its reply from the table.\n            effects.reply.append(ClientReply(command.client_id, command.request_id,\n                                             ReplyStatus.OK, result, self.replica_id))",
  "            # §4.1 step 2: the latest request, executed: resend its reply from the table.\n            effects.reply.append(ClientReply(command.client_id, command.request_id,\n                                             ReplyStatus.OK, None, self.replica_id))",
  "VR: the client table answers a retry of an executed request without its recorded result."),
 # state transfer (§5.2)
 ("vr_get_state_serves_open_ops", VC,
  ("        last = self.op if whole else self.commit\n",
   "            entries = [e for e in entries if e.op <= self.commit]\n"),
  ("        last = self.op\n", ""),
  "VR: GetState from a replica not normal in the asker's view serves its uncommitted ops as committed ones."),
 ("vr_join_view_truncates_log", VC,
  "        self._leave_primary()\n        self.view = view\n        if self.status is not Status.NORMAL:\n            self._set_status(Status.NORMAL, action)\n        self._reset_view_change()\n        self._persist_view(effects)",
  "        self._leave_primary()\n        for held in [o for o in self.log if o > self.commit]:\n            del self.log[held]\n        self.op = self.commit\n        if self.sync:\n            effects.persist.append(SaveEntries(self.commit, ()))\n        self.view = view\n        if self.status is not Status.NORMAL:\n            self._set_status(Status.NORMAL, action)\n        self.last_normal_view = view\n        self._reset_view_change()\n        self._persist_view(effects)",
  "VR: the state-transfer pitfall (§5.2 read literally): a replica joining a later view by a Prepare truncates its log to its commit-number and is normal in that view at once."),
 # ---- EPaxos (issue 9, helper h6): the classes, docs/testing.md "EPaxos mutants".
 ("epaxos_slow_path_deps_not_merged", EC,
  "        deps = list(instance.deps)\n        for reply in replies:\n            deps = [max(a, b) for a, b in zip(deps, reply.deps)]",
  "        deps = list(instance.deps)",
  "EPaxos: the slow path keeps the leader's own deps instead of the union over the majority's replies (SOSP §4.3 Phase 1 step 13)."),
 ("epaxos_fast_path_on_disagreement", EC,
  "            agree = all(r.unchanged and (r.seq, r.deps) == drive.initial for r in replies)",
  "            agree = True",
  "EPaxos: the leader takes the fast path on any 2F - 1 replies, whatever attributes they report."),
 ("epaxos_fast_path_on_equal_seq", EC,
  "            agree = all(r.unchanged and (r.seq, r.deps) == drive.initial for r in replies)",
  "            agree = all(r.seq == drive.initial[0] for r in replies)",
  "EPaxos: the fast path is taken when the replies' seq equals the leader's, whatever their deps."),
 ("epaxos_single_ballot", EC,
  ("            instance.ballot = ballot\n            effects.persist.append(SaveInstance(instance.record()))\n        drive = Drive(",
   "        elif message.ballot > instance.ballot:\n            instance.ballot = message.ballot\n"),
  ("            instance.ballot = instance.vballot = ballot\n            effects.persist.append(SaveInstance(instance.record()))\n        drive = Drive(",
   "        elif message.ballot > instance.ballot:\n            instance.ballot = instance.vballot = message.ballot\n"),
  "EPaxos: one ballot variable per instance, as the published recovery (Sutra 2019): a promise also becomes the ballot of the value held, so a fast-path witness no longer looks pre-accepted at the initial ballot."),
 ("epaxos_preaccept_reply_not_persisted", EC,
  "        instance = self._set(inst, PREACCEPTED, message.ballot, message.ballot, message.batch,\n                             seq, deps, unchanged, effects)",
  "        instance = self._set(inst, PREACCEPTED, message.ballot, message.ballot, message.batch,\n                             seq, deps, unchanged, Effects())",
  "EPaxos: an acceptor answers PreAcceptOK without persisting the pre-accepted value (the reference implementation's durability bug)."),
 ("epaxos_execute_by_arrival", EC,
  "                for member in component:\n                    self._execute(member, effects)",
  "                for member in sorted(component, key=lambda m: (self.instances[m].commit_tick, m)):\n                    self._execute(member, effects)",
  "EPaxos: inside a strongly connected component, instances execute in the order they were committed here, not by (seq, replica, instance)."),
 ("epaxos_read_ignores_writes", EC,
  "        for key in reads:\n            merge(self.write_inst.get(key, zero))",
  "        for key in reads:\n            pass",
  "EPaxos: a read takes no dependency on the writes of its key (a read that does not interfere with a write)."),
 ("epaxos_recovery_ignores_accepted", EC,
  "        if accepted:\n            chosen = max(accepted, key=lambda r: r.vballot)",
  "        if False:\n            chosen = max(accepted, key=lambda r: r.vballot)",
  "EPaxos: recovery skips case 2: an accepted value (perhaps committed on the slow path) is not re-proposed."),
 ("epaxos_recovery_lowest_vballot", EC,
  "            chosen = max(accepted, key=lambda r: r.vballot)",
  "            chosen = min(accepted, key=lambda r: r.vballot)",
  "EPaxos: recovery case 2 re-proposes the accepted value of the lowest vballot instead of the highest."),
 ("epaxos_fast_quorum_one_short", EC,
  "        self.fast_peers_needed = max(config.fast_quorum_size - 1, 0)",
  "        self.fast_peers_needed = max(config.fast_quorum_size - 2, 0)",
  "EPaxos: the fast quorum is one replica too small (for N = 3 the leader alone)."),
 ("epaxos_fast_commit_after_promise", EC,
  ("        if drive is not None and drive.ballot != instance.ballot:\n            self._abandon(drive)\n        self._watch(inst)",
   "        instance = self.instances[drive.inst]\n        if instance.ballot != drive.ballot:\n            return self._abandon(drive)  # we promised a higher ballot: never commit here"),
  ("        self._watch(inst)",
   "        instance = self.instances[drive.inst]"),
  "EPaxos: a command leader that promised a recoverer a higher ballot goes on and commits its instance on the fast path."),
 ("epaxos_slow_commit_one_short", EC,
  "        if len(drive.replies) >= self.f:\n            self._commit(",
  "        if len(drive.replies) >= self.f - 1:\n            self._commit(",
  "EPaxos: Phase 2 commits with one AcceptOK fewer than F (for N = 3, the leader's own accept alone)."),
 ("epaxos_collect_one_peer_left_out", EC,
  "        target = [min([self.executed[r]] + [self.peer_executed[p][r] for p in self.peers])",
  "        target = [min([self.executed[r]] + [self.peer_executed[p][r] for p in self.peers[1:]])",
  "EPaxos: collection leaves one peer out of the minimum: instances are dropped before every replica executed them."),
]
out = root / "tests/mutants"
chosen = set(sys.argv[1:])
unknown = chosen - {m[0] for m in MUTANTS}
assert not unknown, f"no such mutant: {sorted(unknown)}"
for name, path, old, new, desc in MUTANTS:
    if chosen and name not in chosen:
        continue
    text = (root / path).read_text()
    # One replacement, or several (tuples of equal length) for a bug that spans lines
    # in more than one place; each old text must occur exactly once.
    olds, news = (old, new) if isinstance(old, tuple) else ((old,), (new,))
    assert len(olds) == len(news), name
    mutated = text
    for before, after in zip(olds, news):
        assert mutated.count(before) == 1, (name, before[:60], mutated.count(before))
        mutated = mutated.replace(before, after)
    diff = difflib.unified_diff(text.splitlines(True), mutated.splitlines(True), f"a/{path}", f"b/{path}")
    (out / f"{name}.patch").write_text(f"# {desc}\n" + "".join(diff))
print(len(MUTANTS))
