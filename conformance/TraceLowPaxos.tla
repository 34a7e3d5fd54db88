--------------------------- MODULE TraceLowPaxos ---------------------------
(***************************************************************************)
(* Trace validation of LowPaxos: is a logged run of the implementation a  *)
(* behaviour of spec/LowPaxos.tla? The method is that of Cirstea, Kuppe,  *)
(* Loillier and Merz, "Validating Traces of Distributed Programs Against  *)
(* TLA+ Specifications" (2024): the trace is a constant sequence of       *)
(* events, a counter l says how much of it the spec has explained, and    *)
(* each step of TraceNext is a step of the spec's own action named by     *)
(* event l, constrained to reach the state the event logged. What the     *)
(* event does not log (which message of the network was handled, which    *)
(* value or target a nondeterministic choice took, the variables no       *)
(* replica writes to its trace) the spec's action chooses, and TLC        *)
(* searches all the choices. The trace conforms when TLC reaches a state  *)
(* with l = Len(TraceLog) + 1: its search depth is then Len(TraceLog) + 1.*)
(*                                                                         *)
(* lowpaxos.conformance generates a copy of this module with the trace    *)
(* written in as a definition of TraceLog (and of TraceValues, TraceNoOp  *)
(* for the constants); see docs/conformance.md for the fields of an event.*)
(*                                                                         *)
(* Network messages are never consumed in LowPaxos.tla (a set that only   *)
(* grows, so duplication is free), so a message the implementation lost   *)
(* is one the trace never delivers: LoseMessage is never needed here.     *)
(***************************************************************************)
EXTENDS LowPaxos, Sequences, TLC

\* The function of a sequence of <<key, value>> pairs (keys distinct).
FcnOf(pairs) ==
    [x \in {pairs[i][1] : i \in DOMAIN pairs} |->
        pairs[CHOOSE i \in DOMAIN pairs : pairs[i][1] = x][2]]

CONSTANT TraceLog   \* the events, one record per line of the trace file

VARIABLE l          \* the next event to explain (1-based)

traceVars == <<vars, l>>


\* The logged message x describes the network message m: every field x
\* logs has m's value. An Accept's recipients are a set; when the trace
\* knows only some of them, x has "targets" (each must be a recipient)
\* instead of "to". type and from are compared first, which is cheap.
Describes(m, x) ==
    /\ m.type = x.type
    /\ m.from = x.from
    /\ \A f \in DOMAIN x \ {"targets"} : f \in DOMAIN m /\ m[f] = x[f]
    /\ "targets" \in DOMAIN x => "to" \in DOMAIN m /\ x.targets \subseteq m.to

\* Every message the event logged as sent is in the network afterwards (a
\* complete record is looked up; a partial one is searched for).
Sent(e) ==
    \A i \in DOMAIN e.sends :
        LET x == e.sends[i] IN
        IF "targets" \in DOMAIN x THEN \E m \in msgs' : Describes(m, x) ELSE x \in msgs'

\* The logged replica reaches the logged state; the event logs only the log
\* slots that changed (delta), the others keep their entries. Slots at or
\* below the logged cut are not compared: the implementation has dropped
\* them, and the spec drops them at the TruncateLog or InstallSnapshot step,
\* whose logStart is checked (lowpaxos.conformance.tlagen says why the line
\* of a handler whose step cut the log expects the cut from before it).
Reached(e) ==
    /\ role'[e.r] = e.role
    /\ promised'[e.r] = e.promised
    /\ commitIndex'[e.r] = e.commit
    /\ logStart'[e.r] = e.logStart
    /\ LET want == e.delta @@ log[e.r] IN
       \A s \in (e.cut + 1)..MaxSlot : log'[e.r][s] = want[s]

\* A HandlePromise whose step ends in BecomeLeader logs two lines: its own,
\* with the state before the election (the promise is counted, which no
\* logged variable shows), and BecomeLeader's, with the state after it. The
\* spec's HandlePromise takes both in one step, so the first line's state
\* (e.pre, fields as in Reached) is compared with the state before the step.
ReachedBefore(r, p) ==
    /\ role[r] = p.role
    /\ promised[r] = p.promised
    /\ commitIndex[r] = p.commit
    /\ logStart[r] = p.logStart
    /\ LET want == p.delta @@ log[r] IN
       \A s \in (p.cut + 1)..MaxSlot : log[r][s] = want[s]

\* The choice a logged send shows (the last slot of a catch-up reply, the
\* image index of chunks or of a request for more), when the event logs one:
\* the same message may already be in the network, so Sent alone would let
\* the spec's step send any other one besides.
Pinned(e) == IF e.pin > 0 THEN {e.pin} ELSE Slots

\* The spec action the event names, at the event's replica, with the
\* message the event handled (one of those the log describes) and, for
\* Propose, the value the event put in the slot.
Take(e) ==
    \/ e.k = "StartElection" /\ StartElection(e.r)
    \/ e.k = "HandlePrepare" /\ \E m \in msgs : Describes(m, e.msg) /\ HandlePrepareMessage(e.r, m)
    \/ e.k = "HandlePromise" /\ \E m \in msgs : Describes(m, e.msg) /\ HandlePromiseMessage(e.r, m)
    \/ e.k = "HandleReject" /\ \E m \in msgs : Describes(m, e.msg) /\ HandleRejectMessage(e.r, m)
    \/ e.k = "Propose" /\ e.val \in Values
                       /\ \E targets \in ThriftyTargets(e.r) : ProposeValue(e.r, e.val, targets)
    \/ e.k = "RetryAccept" /\ RetryAccept(e.r, e.slot)
    \/ e.k = "HandleAccept" /\ \E m \in msgs : Describes(m, e.msg) /\ HandleAcceptMessage(e.r, m)
    \/ e.k = "HandleAccepted" /\ \E m \in msgs : Describes(m, e.msg) /\ HandleAcceptedMessage(e.r, m)
    \/ e.k = "SendHeartbeat" /\ SendHeartbeat(e.r)
    \/ e.k = "HandleHeartbeat" /\ \E m \in msgs : Describes(m, e.msg) /\ HandleHeartbeatMessage(e.r, m)
    \/ e.k = "RequestCatchup" /\ RequestCatchup(e.r)
    \/ e.k = "HandleCatchupRequest" /\ \E m \in msgs, n \in Pinned(e) :
                                           Describes(m, e.msg) /\ HandleCatchupRequestMessage(e.r, m, n)
    \/ e.k = "HandleCatchupReply" /\ \E m \in msgs : Describes(m, e.msg)
                                                   /\ HandleCatchupReplyMessage(e.r, m)
    \/ e.k = "TruncateLog" /\ TruncateLogAt(e.r, e.slot)
    \/ e.k = "RequestSnapshot" /\ \E i \in Pinned(e) : RequestSnapshotAt(e.r, i)
    \/ e.k = "HandleSnapshotRequest" /\ \E m \in msgs, i \in Pinned(e) :
                                            Describes(m, e.msg) /\ HandleSnapshotRequestMessage(e.r, m, i)
    \/ e.k = "HandleSnapshotChunk" /\ \E m \in msgs : Describes(m, e.msg)
                                                    /\ HandleSnapshotChunkMessage(e.r, m)
    \* The index installed is the logged commit index (the state check pins it).
    \/ e.k = "InstallSnapshot" /\ InstallSnapshotAt(e.r, e.commit)
    \/ e.k = "StepDown" /\ StepDown(e.r)
    \/ e.k = "Crash" /\ Crash(e.r)
    \* A line no spec variable shows: the simulator's Crash (the spec's Crash
    \* is taken at the Restart), and a BecomeLeader that the spec's
    \* HandlePromise on the line before already took (its state is compared).
    \* A line the checker found unreachable before the replay ("Unreachable":
    \* a slot no Propose made, a BecomeLeader out of place) has no step.
    \/ e.k = "Skip" /\ UNCHANGED vars

\* The same action with every choice open (any message, any value): the
\* divergence report looks for the successor closest to the logged state.
TakeAny(e) ==
    \/ e.k = "StartElection" /\ StartElection(e.r)
    \/ e.k = "HandlePrepare" /\ HandlePrepare(e.r)
    \/ e.k = "HandlePromise" /\ HandlePromise(e.r)
    \/ e.k = "HandleReject" /\ HandleReject(e.r)
    \/ e.k = "Propose" /\ Propose(e.r)
    \/ e.k = "RetryAccept" /\ \E s \in Slots : RetryAccept(e.r, s)
    \/ e.k = "HandleAccept" /\ HandleAccept(e.r)
    \/ e.k = "HandleAccepted" /\ HandleAccepted(e.r)
    \/ e.k = "SendHeartbeat" /\ SendHeartbeat(e.r)
    \/ e.k = "HandleHeartbeat" /\ HandleHeartbeat(e.r)
    \/ e.k = "RequestCatchup" /\ RequestCatchup(e.r)
    \/ e.k = "HandleCatchupRequest" /\ HandleCatchupRequest(e.r)
    \/ e.k = "HandleCatchupReply" /\ HandleCatchupReply(e.r)
    \/ e.k = "TruncateLog" /\ TruncateLog(e.r)
    \/ e.k = "RequestSnapshot" /\ RequestSnapshot(e.r)
    \/ e.k = "HandleSnapshotRequest" /\ HandleSnapshotRequest(e.r)
    \/ e.k = "HandleSnapshotChunk" /\ HandleSnapshotChunk(e.r)
    \/ e.k = "InstallSnapshot" /\ InstallSnapshot(e.r)
    \/ e.k = "StepDown" /\ StepDown(e.r)
    \/ e.k = "Crash" /\ Crash(e.r)
    \/ e.k = "Skip" /\ UNCHANGED vars

TraceInit == Init /\ l = 1

TraceNext ==
    /\ l <= Len(TraceLog)
    /\ LET e == TraceLog[l] IN
         /\ "pre" \in DOMAIN e => ReachedBefore(e.r, e.pre)
         /\ Take(e)
         /\ e.check => Reached(e)
         /\ Sent(e)
    /\ l' = l + 1

TraceSpec == TraceInit /\ [][TraceNext]_traceVars

\* Every state the replay reaches is a state of LowPaxos.tla, and the checker
\* has TLC check the spec's own safety invariants in each (Agreement and
\* CommittedPrefixesAgree: lowpaxos.conformance.lowpaxos_format says which).
\* Since every line's logged state is compared with the spec state, an unsafe
\* logged state is caught too: a trace of a run that spec and code share is
\* rejected where it becomes unsafe (possible only when the spec's
\* assumptions fail, e.g. quorums that do not intersect, or in a broken
\* variant of the spec).

\* Violated exactly when the whole trace is explained (for a reader running
\* TLC by hand; the checker reads the search depth instead).
TraceIncomplete == l <= Len(TraceLog)

-----------------------------------------------------------------------------
(* For the divergence report (lowpaxos.conformance.check): how far a spec  *)
(* state is from the state an event logged, counted in fields.            *)

\* want: [role, promised, commit, logStart, cut, log] with log a function on
\* Slots (compared above the logged cut only, as Reached does).
Distance(r, want) ==
    LET differs == {f \in {"role", "promised", "commitIndex", "logStart"} :
                      CASE f = "role" -> role[r] # want.role
                        [] f = "promised" -> promised[r] # want.promised
                        [] f = "commitIndex" -> commitIndex[r] # want.commit
                        [] f = "logStart" -> logStart[r] # want.logStart}
        slots == {s \in Slots : s > want.cut /\ log[r][s] # want.log[s]}
    IN Cardinality(differs) + Cardinality(slots)

\* The actions of LowPaxos's Next, by name (LoseMessage, always enabled while a
\* message is in flight, is left out).
EnabledAt(a, r) ==
    CASE a = "StartElection" -> ENABLED StartElection(r)
      [] a = "HandlePrepare" -> ENABLED HandlePrepare(r)
      [] a = "HandlePromise" -> ENABLED HandlePromise(r)
      [] a = "HandleReject" -> ENABLED HandleReject(r)
      [] a = "Propose" -> ENABLED Propose(r)
      [] a = "RetryAccept" -> ENABLED (\E s \in Slots : RetryAccept(r, s))
      [] a = "HandleAccept" -> ENABLED HandleAccept(r)
      [] a = "HandleAccepted" -> ENABLED HandleAccepted(r)
      [] a = "SendHeartbeat" -> ENABLED SendHeartbeat(r)
      [] a = "HandleHeartbeat" -> ENABLED HandleHeartbeat(r)
      [] a = "RequestCatchup" -> ENABLED RequestCatchup(r)
      [] a = "HandleCatchupRequest" -> ENABLED HandleCatchupRequest(r)
      [] a = "HandleCatchupReply" -> ENABLED HandleCatchupReply(r)
      [] a = "TruncateLog" -> ENABLED TruncateLog(r)
      [] a = "RequestSnapshot" -> ENABLED RequestSnapshot(r)
      [] a = "HandleSnapshotRequest" -> ENABLED HandleSnapshotRequest(r)
      [] a = "HandleSnapshotChunk" -> ENABLED HandleSnapshotChunk(r)
      [] a = "InstallSnapshot" -> ENABLED InstallSnapshot(r)
      [] a = "StepDown" -> ENABLED StepDown(r)
      [] a = "Crash" -> ENABLED Crash(r)

ActionNames == {"StartElection", "HandlePrepare", "HandlePromise", "HandleReject",
                "Propose", "RetryAccept", "HandleAccept", "HandleAccepted",
                "SendHeartbeat", "HandleHeartbeat", "RequestCatchup",
                "HandleCatchupRequest", "HandleCatchupReply", "TruncateLog",
                "RequestSnapshot", "HandleSnapshotRequest", "HandleSnapshotChunk",
                "InstallSnapshot", "StepDown", "Crash"}

EnabledActions == {p \in ActionNames \X Replicas : EnabledAt(p[1], p[2])}
=============================================================================
