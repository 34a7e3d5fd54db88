------------------------------- MODULE TraceVR -------------------------------
(***************************************************************************)
(* Trace validation of the VR Revisited core against spec/VR.tla, in the  *)
(* manner of conformance/TraceLowPaxos.tla (Cirstea, Kuppe, Loillier and  *)
(* Merz 2024): the trace is a constant sequence of records, l counts the  *)
(* events explained, and each step is the spec's own action named by      *)
(* event l at the logged replica, constrained to reach the logged state.  *)
(*                                                                         *)
(* lowpaxos.conformance.vr_format writes a copy of this module with the   *)
(* trace as the definition of TraceLog. docs/conformance.md ("VR") lists  *)
(* the mapping; the points where the core's step is not literally one of  *)
(* VR.tla's actions are marked MAPPED below, each with its reason.        *)
(*                                                                         *)
(* The spec's abstraction is kept: messages are compared on their header  *)
(* (view, op-number, commit-number, sender, receiver) and on the length   *)
(* of the log they carry, never on the suffix the core sends in place of  *)
(* the whole log (VR.tla's header says why the two say the same); the     *)
(* logged post-state is compared in full (view, status, last-normal view, *)
(* the whole log, commit-number). Traces are taken with checkpoints and   *)
(* log cuts off (snapshot_slots larger than the run), which VR.tla does   *)
(* not model: a trace that cuts its log is rejected before the replay.    *)
(***************************************************************************)
EXTENDS VR, Sequences, TLC

CONSTANT TraceLog   \* the events, one record per line of the trace file

VARIABLE l          \* the next event to explain (1-based)

traceVars == <<vars, l>>

\* The length of the log a message carries (its op-number in the core).
CarriedLen(m) ==
    CASE m.type \in {"DoViewChange", "StartView", "RecoveryResponse"} -> Len(m.log)
      [] m.type = "NewState" -> m.after + Len(m.entries)
      [] OTHER -> 0

\* The logged message x describes the network message m: the fields x logs
\* have m's values, and "len" is the length of the log m carries.
Describes(m, x) ==
    /\ m.type = x.type
    /\ m.from = x.from
    /\ \A f \in DOMAIN x \ {"len"} : f \in DOMAIN m /\ m[f] = x[f]
    /\ "len" \in DOMAIN x => CarriedLen(m) = x.len

\* The logged replica reaches the logged state, all of it.
Reached(e) ==
    /\ view'[e.r] = e.st.view
    /\ status'[e.r] = e.st.status
    /\ last_normal_view'[e.r] = e.st.lnv
    /\ log'[e.r] = e.st.log
    /\ commit'[e.r] = e.st.commit

\* MAPPED, collect-only receives. VR.tla reads what a replica has received
\* from the network (its header), so a receive that only collects a message
\* (a PrepareOK that commits nothing new, a StartViewChange short of f, a
\* Commit that moves nothing, a RecoveryResponse short of a quorum) changes
\* no variable there; the core logs it, and here it is a stuttering step,
\* with the message required to be in the network and the state unchanged.
\* For RecoveryResponse VR.tla is stricter than the core: its nonce is one
\* per incarnation, so responses to an earlier Recovery of the same
\* incarnation count towards the quorum and force recovery; the core draws a
\* fresh nonce at each StartRecovery (core.start_recovery) and counts only
\* the responses to the latest, so it may wait where the spec must act.
\* Waiting changes nothing, and the state check still pins every step.
Collect(r, x) ==
    /\ \E m \in msgs : Describes(m, x)
    /\ UNCHANGED vars

\* MAPPED, a Prepare for an op the backup already holds (a retry or a
\* duplicate): the core learns the commit-number it carries, as far as its
\* log goes, and changes nothing else; VR.tla's HandlePrepare takes only the
\* next op. The step is HandleCommit's effect on the same header (a Prepare
\* of view v with commit-number k is sent by v's primary having committed
\* k, as a Commit of v with k would be), checked against the held op.
DuplicatePrepare(r, m) ==
    /\ m.type = "Prepare"
    /\ status[r] # "recovering"
    /\ InView(r)
    /\ m.view = view[r]
    /\ m.op <= Len(log[r])
    /\ log[r][m.op] = m.val
    /\ ApplyCommitted(r, log[r], Max({commit[r], Min(m.commit, Len(log[r]))}))
    /\ UNCHANGED <<view, status, last_normal_view, log, nonce, msgs, requested, committedOps>>

\* MAPPED, RetryPrepare (not in VR.tla): the primary sends the Prepares of
\* its uncommitted ops from e.slot on again, with its current commit-number:
\* each is ProposeValue's message for a held op with a fresher commit-number.
RetryPrepareFrom(p, from) ==
    /\ IsPrimary(p)
    /\ from > commit[p] /\ from <= Len(log[p])
    /\ msgs' = msgs \cup {[type |-> "Prepare", view |-> view[p], op |-> n, val |-> log[p][n],
                           commit |-> commit[p], from |-> p] : n \in from..Len(log[p])}
    /\ UNCHANGED <<replicaVars, applied, requested, committedOps>>

\* MAPPED, the PrepareOK a backup sends besides the spec's (in answer to a
\* Commit or a duplicate Prepare, or after NewState): a PrepareOK(v, n) from
\* r says that r holds ops 1..n of v's log (VR.tla's AckedBy), so it is
\* added when that is true of r's state, and only then.
AckTrue(r, v, n) == InView(r) /\ view[r] = v /\ n <= Len(log[r])
Acks(e) ==
    /\ \A i \in DOMAIN e.acks : AckTrue(e.r, e.acks[i][1], e.acks[i][2])
    /\ msgs' = msgs \cup {[type |-> "PrepareOK", view |-> e.acks[i][1], op |-> e.acks[i][2],
                           from |-> e.r] : i \in DOMAIN e.acks}
    /\ UNCHANGED <<replicaVars, applied, requested, committedOps>>

Receive(e, A(_, _)) == \E m \in msgs : Describes(m, e.msg) /\ A(e.r, m)

HandlePrepareOrDuplicate(r, m) == HandlePrepareMessage(r, m) \/ DuplicatePrepare(r, m)

Take(e) ==
    CASE e.k = "Propose" -> ProposeValue(e.r, e.val)
      [] e.k = "HandlePrepare" -> Receive(e, HandlePrepareOrDuplicate)
      [] e.k = "HandlePrepareOK" -> Receive(e, HandlePrepareOKMessage) \/ Collect(e.r, e.msg)
      [] e.k = "RetryPrepare" -> RetryPrepareFrom(e.r, e.slot)
      [] e.k = "SendCommit" -> SendCommit(e.r)
      [] e.k = "HandleCommit" -> Receive(e, HandleCommitMessage) \/ Collect(e.r, e.msg)
      [] e.k = "StartViewChange" -> StartViewChange(e.r)
      [] e.k = "HandleStartViewChange" -> Receive(e, HandleStartViewChangeMessage)
                                          \/ Collect(e.r, e.msg)
      [] e.k = "HandleDoViewChange" -> Receive(e, HandleDoViewChangeMessage)
      [] e.k = "StartView" -> StartView(e.r)
      [] e.k = "HandleStartView" -> Receive(e, HandleStartViewMessage)
      [] e.k = "RequestState" -> RequestState(e.r)
      [] e.k = "HandleGetState" -> Receive(e, HandleGetStateMessage)
      [] e.k = "HandleNewState" -> Receive(e, HandleNewStateMessage)
      [] e.k = "StartRecovery" -> StartRecovery(e.r)
      [] e.k = "HandleRecovery" -> Receive(e, HandleRecoveryMessage)
      [] e.k = "HandleRecoveryResponse" -> Receive(e, HandleRecoveryResponseMessage)
                                           \/ Collect(e.r, e.msg)
      \* MAPPED: a HandleRecoveryResponse whose step recovered; the core logs it
      \* with the state from before (its _trace comes first), so the state is
      \* not compared here: the replica must recover, and its next line pins how.
      [] e.k = "Recovered" -> Receive(e, HandleRecoveryResponseMessage)
                              /\ status'[e.r] = "normal"
      \* A restart: the spec's Crash (diskless: recovering with a fresh nonce;
      \* sync: a lagging commit hint), or, for a sync replica that comes back
      \* as it was, no change (VR.tla: "a crash that loses nothing changes no
      \* variable"). The logged state decides which.
      [] e.k = "Restart" -> Crash(e.r) \/ (e.r \notin DisklessReplicas /\ UNCHANGED vars)
      \* MAPPED: the synthetic PrepareOK sends of the line before.
      [] e.k = "Acks" -> Acks(e)
      \* A line rejected before the replay (a log cut, a snapshot event): no step.
      [] e.k = "Unreachable" -> FALSE
      \* The simulator's Crash line (the spec's Crash is taken at the Restart).
      [] OTHER -> UNCHANGED vars

TraceInit == Init /\ l = 1

TraceNext ==
    /\ l <= Len(TraceLog)
    /\ LET e == TraceLog[l] IN
         /\ Take(e)
         /\ e.check => Reached(e)
    /\ l' = l + 1

TraceSpec == TraceInit /\ [][TraceNext]_traceVars

TraceIncomplete == l <= Len(TraceLog)
=============================================================================
