--------------------------- MODULE ReplayLowPaxos ---------------------------
(***************************************************************************)
(* Behaviours of spec/LowPaxos.tla for spec-driven test generation          *)
(* (lowpaxos.specreplay, docs/spec-replay.md).                              *)
(*                                                                         *)
(* ReplayNext takes the spec's own steps (HandleXMessage(r, m),             *)
(* ProposeValue(r, v, targets), ...) with the existential parameters bound  *)
(* here, and appends to the history variable hist what a replay needs: the  *)
(* action, the replica, its parameters, the messages the step added to the  *)
(* network and the replica's variables after the step. TLC's simulation    *)
(* mode prints hist once a behaviour has Depth steps (Dump).                *)
(*                                                                         *)
(* Where the spec leaves a choice that the core makes by a fixed rule, the  *)
(* step is restricted to the core's choice (each restriction is listed in   *)
(* docs/spec-replay.md, "Where the replay narrows the spec"):               *)
(*  - StartElection takes the next round above the promise, not any higher  *)
(*    one, and never at a leader (a leader's tick does not campaign);       *)
(*  - a leader ignores Prepares above its ballot (the check-quorum lease    *)
(*    in handle_prepare): the promise and lagging branches need a          *)
(*    non-leader;                                                          *)
(*  - a catch-up reply holds every committed entry the request asks for     *)
(*    (the core's byte bound is never reached by these values);           *)
(*  - RequestCatchup at a follower that follows a leader and has heard a   *)
(*    commit index above its own from it (ghost variables follows, seen),   *)
(*    which is when the core's catch-up timer asks;                        *)
(*  - at most MaxCrashes crashes and MaxLosses lost messages per behaviour; *)
(*  - no step that changes nothing (see Changes).                          *)
(* The log cut and the state transfer are not replayed (CutReplicas = {}). *)
(***************************************************************************)
EXTENDS LowPaxos, Sequences

CONSTANTS
    Depth,       \* steps per printed behaviour
    MaxCrashes,  \* crashes per behaviour, at most
    MaxLosses    \* lost messages per behaviour, at most

VARIABLES
    hist,     \* the steps so far, as tuples (see Record)
    follows,  \* ghost: the replica follows a leader (the core's leader_hint is set)
    seen,     \* ghost: the highest commit index a followed leader announced to it
    faults    \* <<crashes, losses>> so far

ghostVars == <<follows, seen>>

\* Messages as tuples (the Python side reads them by position).
Enc(m) ==
    CASE m.type = "Prepare" -> <<"Prepare", m.from, m.bal, m.commitIndex>>
      [] m.type = "Promise" -> <<"Promise", m.from, m.to, m.bal,
                                 {<<e.slot, e.bal, e.val>> : e \in m.entries}, m.commitIndex>>
      [] m.type = "Reject" -> <<"Reject", m.from, m.to, m.bal, m.lagging>>
      [] m.type = "Accept" -> <<"Accept", m.from, m.to, m.bal, m.slot, m.val, m.commitIndex>>
      [] m.type = "Accepted" -> <<"Accepted", m.from, m.to, m.bal, m.slot>>
      [] m.type = "Heartbeat" -> <<"Heartbeat", m.from, m.bal, m.commitIndex>>
      [] m.type = "CatchupRequest" -> <<"CatchupRequest", m.from, m.commitIndex>>
      [] m.type = "CatchupReply" -> <<"CatchupReply", m.from, m.to,
                                      {<<e.slot, e.bal, e.val>> : e \in m.entries}, m.commitIndex>>
      [] m.type = "SnapshotChunk" -> <<"SnapshotChunk", m.from, m.to, m.index>>
      [] m.type = "SnapshotRequest" -> <<"SnapshotRequest", m.from, m.index>>

\* Replica r's variables: role, promised, log (slot 1..MaxSlot as <<ballot, value>>),
\* commitIndex, logStart, who promised (candidate), nextSlot, acks per slot.
Vars(r) ==
    <<role[r], promised[r], [s \in Slots |-> <<log[r][s].bal, log[r][s].val>>],
      commitIndex[r], logStart[r], {p.from : p \in promises[r]}, nextSlot[r],
      [s \in Slots |-> acks[r][s]]>>

\* A step that changes no variable of a replica and sends nothing new (a
\* duplicate delivered again, a heartbeat resent) is left out: the network
\* keeps every message, so such steps would fill most of a random walk.
Changes == <<replicaVars, msgs>>' # <<replicaVars, msgs>>

\* Record comes last in each step, after the action has bound the primed variables.
Record(name, r, param) ==
    /\ Changes
    /\ hist' = Append(hist, <<name, r, param, {Enc(m) : m \in msgs' \ msgs}, Vars(r)'>>)

Keep == UNCHANGED <<ghostVars, faults>>
Unfollow(r) == /\ follows' = [follows EXCEPT ![r] = FALSE]
               /\ UNCHANGED <<seen, faults>>

ReplayInit ==
    /\ Init
    /\ hist = <<>>
    /\ follows = [r \in Replicas |-> FALSE]
    /\ seen = [r \in Replicas |-> 0]
    /\ faults = <<0, 0>>

StartElectionStep(r) ==
    /\ role[r] # "leader"
    /\ promised[r][1] + 1 <= MaxRound
    /\ StartElection(r)
    /\ promised'[r][1] = promised[r][1] + 1
    /\ Unfollow(r)
    /\ Record("StartElection", r, <<>>)

HandlePrepareStep(r, m) ==
    /\ HandlePrepareMessage(r, m)
    /\ role[r] = "leader" => ~Greater(m.bal, promised[r])
    /\ IF promised'[r] # promised[r] THEN Unfollow(r) ELSE Keep
    /\ Record("HandlePrepare", r, Enc(m))

HandlePromiseStep(r, m) ==
    /\ HandlePromiseMessage(r, m)
    /\ Keep
    /\ Record("HandlePromise", r, Enc(m))

HandleRejectStep(r, m) ==
    /\ HandleRejectMessage(r, m)
    /\ Unfollow(r)
    /\ Record("HandleReject", r, Enc(m))

ProposeStep(r, v, targets) ==
    /\ role[r] = "leader"
    /\ ProposeValue(r, v, targets)
    /\ Keep
    /\ Record("Propose", r, <<v, targets>>)

RetryAcceptStep(r, s) ==
    /\ RetryAccept(r, s)
    /\ Keep
    /\ Record("RetryAccept", r, s)

\* A follower that takes m's ballot follows its sender and learns its commit index.
Follow(r, m) ==
    IF GreaterEq(m.bal, promised[r])
    THEN /\ follows' = [follows EXCEPT ![r] = TRUE]
         /\ seen' = [seen EXCEPT ![r] = IF m.commitIndex > @ THEN m.commitIndex ELSE @]
         /\ UNCHANGED faults
    ELSE Keep

HandleAcceptStep(r, m) ==
    /\ HandleAcceptMessage(r, m)
    /\ Follow(r, m)
    /\ Record("HandleAccept", r, Enc(m))

HandleAcceptedStep(r, m) ==
    /\ HandleAcceptedMessage(r, m)
    /\ Keep
    /\ Record("HandleAccepted", r, Enc(m))

SendHeartbeatStep(r) ==
    /\ SendHeartbeat(r)
    /\ Keep
    /\ Record("SendHeartbeat", r, <<>>)

HandleHeartbeatStep(r, m) ==
    /\ HandleHeartbeatMessage(r, m)
    /\ Follow(r, m)
    /\ Record("HandleHeartbeat", r, Enc(m))

RequestCatchupStep(r) ==
    /\ role[r] = "follower"
    /\ follows[r]
    /\ commitIndex[r] < seen[r]
    /\ RequestCatchup(r)
    /\ Keep
    /\ Record("RequestCatchup", r, <<>>)

HandleCatchupRequestStep(l, m) ==
    /\ HandleCatchupRequestMessage(l, m, commitIndex[l])
    /\ Keep
    /\ Record("HandleCatchupRequest", l, Enc(m))

HandleCatchupReplyStep(r, m) ==
    /\ HandleCatchupReplyMessage(r, m)
    /\ Keep
    /\ Record("HandleCatchupReply", r, Enc(m))

CrashStep(r) ==
    /\ faults[1] < MaxCrashes
    /\ Crash(r)
    /\ follows' = [follows EXCEPT ![r] = FALSE]
    /\ seen' = [seen EXCEPT ![r] = commitIndex'[r]]
    /\ faults' = <<faults[1] + 1, faults[2]>>
    /\ Record("Crash", r, commitIndex'[r])

StepDownStep(r) ==
    /\ StepDown(r)
    /\ Unfollow(r)
    /\ Record("StepDown", r, <<>>)

LoseMessageStep(m) ==
    /\ faults[2] < MaxLosses
    /\ m \in msgs
    \* LoseMessage is \E m2 \in msgs : msgs' = msgs \ {m2} /\ ...: this m.
    /\ LoseMessage
    /\ msgs' = msgs \ {m}
    /\ UNCHANGED ghostVars
    /\ faults' = <<faults[1], faults[2] + 1>>
    /\ hist' = Append(hist, <<"LoseMessage", 0, Enc(m), {}, <<>>>>)

ReplayNext ==
    \/ \E r \in Replicas : StartElectionStep(r)
    \/ \E r \in Replicas : \E m \in msgs : HandlePrepareStep(r, m)
    \/ \E r \in Replicas : \E m \in msgs : HandlePromiseStep(r, m)
    \/ \E r \in Replicas : \E m \in msgs : HandleRejectStep(r, m)
    \/ \E r \in Replicas : \E v \in Values, targets \in ThriftyTargets(r) : ProposeStep(r, v, targets)
    \/ \E r \in Replicas, s \in Slots : RetryAcceptStep(r, s)
    \/ \E r \in Replicas : \E m \in msgs : HandleAcceptStep(r, m)
    \/ \E r \in Replicas : \E m \in msgs : HandleAcceptedStep(r, m)
    \/ \E r \in Replicas : SendHeartbeatStep(r)
    \/ \E r \in Replicas : \E m \in msgs : HandleHeartbeatStep(r, m)
    \/ \E r \in Replicas : RequestCatchupStep(r)
    \/ \E l \in Replicas : \E m \in msgs : HandleCatchupRequestStep(l, m)
    \/ \E r \in Replicas : \E m \in msgs : HandleCatchupReplyStep(r, m)
    \/ \E r \in Replicas : CrashStep(r)
    \/ \E r \in Replicas : StepDownStep(r)
    \/ \E m \in msgs : LoseMessageStep(m)


ReplaySpec == ReplayInit /\ [][ReplayNext]_<<vars, hist, ghostVars, faults>>

\* Printed once per behaviour, when it has Depth steps.
Dump == Len(hist) = Depth => PrintT(<<"SPECREPLAY", hist>>)
=============================================================================
