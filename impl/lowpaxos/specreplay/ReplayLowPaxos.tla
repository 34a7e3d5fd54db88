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
(*  - RetryAccept only while some replica has not acknowledged the slot    *)
(*    (the core resends to those only, so to nobody once all have);        *)
(*  - a catch-up reply holds every committed entry the request asks for     *)
(*    (the core's byte bound is never reached by these values);           *)
(*  - RequestCatchup at a follower that follows a leader and has heard a   *)
(*    commit index above its own from it (ghost variables follows, seen),   *)
(*    which is when the core's catch-up timer asks;                        *)
(*  - a log cut (TruncateLog) is the core's cut policy applied at the spec's *)
(*    moment with the spec's slot as its hint (the adapter drives it);      *)
(*  - a replica serves a state transfer with an image of its current rows, *)
(*    whose index is RowsIndex (the last slot that ran a command, or the    *)
(*    index it last installed or restarted at), and only when that image    *)
(*    is newer than the requester's commit index (the core drops the       *)
(*    request otherwise);                                                  *)
(*  - an image is one chunk (the replay's store is a few rows), so the     *)
(*    chunk that starts a transfer also ends it: HandleSnapshotChunk and    *)
(*    InstallSnapshot are one replay step (InstallStep). Alone, the spec's  *)
(*    HandleSnapshotChunk changes no variable;                             *)
(*  - each walk draws a mix (Mixes): caps on elections, crashes and lost   *)
(*    messages, whether logs are cut, and weights that repeat the phase-2, *)
(*    commit, catch-up and transfer steps among the actions TLC draws from; *)
(*  - no step that changes nothing (see Changes).                          *)
(***************************************************************************)
EXTENDS LowPaxos, Sequences

CONSTANTS
    Depth,       \* steps per printed behaviour
    Mixes        \* the walk mixes, a sequence of records (see MixTable); one is drawn per walk

VARIABLES
    hist,     \* the steps so far, as tuples (see Record)
    follows,  \* ghost: the replica follows a leader (the core's leader_hint is set)
    seen,     \* ghost: the highest commit index a followed leader announced to it
    floor,    \* ghost: the index r last installed an image at or restarted at (its rows' index)
    budget,   \* <<elections, crashes, losses, ignored deliveries>> so far
    mix       \* the walk's mix: an index into Mixes

ghostVars == <<follows, seen, floor>>
counters == <<budget, mix>>

(***************************************************************************)
(* Mixes. TLC's simulation draws, at each step, one of the actions of the   *)
(* next-state relation (a disjunct, one per value of a quantifier over a    *)
(* constant set) among the enabled ones, then one of its successors. A      *)
(* weight w repeats an action w times (\E w \in 1..MaxWeight, enabled for   *)
(* w <= its weight), so that it is drawn w times as often. Repeating a mix   *)
(* in Mixes draws it more often (one initial state per index).              *)
(*  - "elections": up to MaxRound elections per replica, no cuts: phase 1   *)
(*    with competing candidates, the mix of the first replay model;        *)
(*  - "phase2": three elections, one at a time, when nobody leads, and     *)
(*    faults (crash, loss, step-down) only after a first commit; then      *)
(*    proposals, accepts, commits learned by heartbeats, catch-up, log     *)
(*    cuts and state transfers, with a new leader after a step-down;       *)
(*  - "recovery": four elections, one at a time, phase 1 and 2, step-downs *)
(*    and one crash only (no heartbeats, retries, catch-up, losses or      *)
(*    cuts; weight 0: never drawn), a leader steps down only once it       *)
(*    has proposed: leaders that propose in one slot without knowing of    *)
(*    each other, and candidates that must recover, from reports of        *)
(*    different ballots and values, the value of the highest ballot.       *)
(***************************************************************************)
MaxWeight == 4
Kinds == {"StartElection", "HandlePrepare", "HandlePromise", "HandleReject", "Propose",
          "RetryAccept", "HandleAccept", "HandleAccepted", "SendHeartbeat", "HandleHeartbeat",
          "RequestCatchup", "HandleCatchupRequest", "HandleCatchupReply", "TruncateLog",
          "InstallSnapshot", "Crash", "StepDown", "LoseMessage", "Ignore"}
Uniform == [k \in Kinds |-> 1]
ElectionsMix == [name |-> "elections", elections |-> 3 * MaxRound, crashes |-> 2, losses |-> 2,
                 ignores |-> 2,
                 faultsAfter |-> 0, calm |-> FALSE, proposeFirst |-> FALSE, cuts |-> FALSE,
                 weight |-> Uniform]
Phase2Mix == [name |-> "phase2", elections |-> 3, crashes |-> 1, losses |-> 2, faultsAfter |-> 1,
              ignores |-> 3,
              calm |-> TRUE, proposeFirst |-> FALSE, cuts |-> TRUE,
              weight |-> [Uniform EXCEPT !["Propose"] = 2, !["HandleAccept"] = 3,
                                         !["HandleAccepted"] = 3, !["SendHeartbeat"] = 2,
                                         !["HandleHeartbeat"] = 3, !["RequestCatchup"] = 4,
                                         !["HandleCatchupRequest"] = 4,
                                         !["HandleCatchupReply"] = 4, !["InstallSnapshot"] = 4]]
RecoveryMix == [name |-> "recovery", elections |-> 4, crashes |-> 1, losses |-> 0, faultsAfter |-> 0,
                ignores |-> 2,
                calm |-> TRUE, proposeFirst |-> TRUE, cuts |-> FALSE,
                weight |-> [k \in Kinds |->
                              CASE k \in {"Propose", "HandlePrepare", "HandlePromise"} -> 3
                                [] k \in {"StepDown"} -> 2
                                [] k \in {"StartElection", "HandleAccept", "HandleAccepted",
                                          "HandleReject", "Crash", "Ignore"} -> 1
                                [] OTHER -> 0]]
\* The default table: what the CI profile and make spec-replay draw from; and
\* one mix alone (lowpaxos spec-replay run --mix NAME).
MixTable == <<ElectionsMix, Phase2Mix, Phase2Mix, RecoveryMix, RecoveryMix>>
OnlyElections == <<ElectionsMix>>
OnlyPhase2 == <<Phase2Mix>>
OnlyRecovery == <<RecoveryMix>>

M == Mixes[mix]
W(kind, w) == w <= M.weight[kind]
\* Faults (crash, loss, step-down) only once some replica has committed M.faultsAfter
\* slots: a walk that loses its first Prepare or its first leader ends early.
FaultsOn == \E r \in Replicas : commitIndex[r] >= M.faultsAfter

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

Keep == UNCHANGED <<ghostVars, counters>>
Unfollow(r) == /\ follows' = [follows EXCEPT ![r] = FALSE]
               /\ UNCHANGED <<seen, floor, counters>>

\* The index of r's KVS rows, so of the image it serves: the last committed slot
\* that ran a command (a NoOp runs none), or where it last installed an image or
\* restarted (the rows it reopens are as of its commit index then).
RowsIndex(r) ==
    Max({floor[r]} \cup {s \in 1..commitIndex[r] : s <= Len(applied[r]) /\ applied[r][s] # NoOp})

ReplayInit ==
    /\ Init
    /\ hist = <<>>
    /\ follows = [r \in Replicas |-> FALSE]
    /\ seen = [r \in Replicas |-> 0]
    /\ floor = [r \in Replicas |-> 0]
    /\ budget = <<0, 0, 0, 0>>
    /\ mix \in 1..Len(Mixes)

\* calm: one election at a time, when nobody leads or campaigns.
StartElectionStep(r) ==
    /\ budget[1] < M.elections
    /\ M.calm => \A q \in Replicas : role[q] = "follower"
    /\ role[r] # "leader"
    /\ promised[r][1] + 1 <= MaxRound
    /\ StartElection(r)
    /\ promised'[r][1] = promised[r][1] + 1
    /\ follows' = [follows EXCEPT ![r] = FALSE]
    /\ budget' = [budget EXCEPT ![1] = @ + 1]
    /\ UNCHANGED <<seen, floor, mix>>
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

\* The core resends to the replicas that have not acknowledged the slot: none when
\* all have (a slot behind a gap that is not yet committed), so it sends nothing.
RetryAcceptStep(r, s) ==
    /\ acks[r][s] # Replicas
    /\ RetryAccept(r, s)
    /\ Keep
    /\ Record("RetryAccept", r, s)

\* A follower that takes m's ballot follows its sender and learns its commit index.
Follow(r, m) ==
    IF GreaterEq(m.bal, promised[r])
    THEN /\ follows' = [follows EXCEPT ![r] = TRUE]
         /\ seen' = [seen EXCEPT ![r] = IF m.commitIndex > @ THEN m.commitIndex ELSE @]
         /\ UNCHANGED <<floor, counters>>
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

\* A reply holds every committed entry asked for; below the cut, the image is
\* the one of l's current rows, sent only when newer than what was asked for.
HandleCatchupRequestStep(l, m) ==
    /\ IF m.type = "CatchupRequest" /\ m.commitIndex < logStart[l]
       THEN /\ RowsIndex(l) > m.commitIndex
            /\ HandleCatchupRequestMessage(l, m, RowsIndex(l))
       ELSE HandleCatchupRequestMessage(l, m, commitIndex[l])
    /\ Keep
    /\ Record("HandleCatchupRequest", l, Enc(m))

HandleCatchupReplyStep(r, m) ==
    /\ HandleCatchupReplyMessage(r, m)
    /\ Keep
    /\ Record("HandleCatchupReply", r, Enc(m))

TruncateLogStep(r, i) ==
    /\ M.cuts
    /\ TruncateLogAt(r, i)
    /\ Keep
    /\ Record("TruncateLog", r, i)

\* HandleSnapshotChunk(r, m) (which changes no variable of the spec) and then
\* InstallSnapshot of m's image, as the core takes a one-chunk image: the step
\* is recorded once, as InstallSnapshot with the chunk handled.
InstallStep(r, m) ==
    /\ m \in msgs
    /\ m.type = "SnapshotChunk"
    /\ m.to = r
    /\ role[r] # "leader"
    /\ InstallSnapshotAt(r, m.index)
    /\ floor' = [floor EXCEPT ![r] = m.index]
    /\ UNCHANGED <<follows, seen, counters>>
    /\ Record("InstallSnapshot", r, Enc(m))

CrashStep(r) ==
    /\ FaultsOn
    /\ budget[2] < M.crashes
    /\ Crash(r)
    /\ follows' = [follows EXCEPT ![r] = FALSE]
    /\ seen' = [seen EXCEPT ![r] = commitIndex'[r]]
    /\ floor' = [floor EXCEPT ![r] = commitIndex'[r]]
    /\ budget' = [budget EXCEPT ![2] = @ + 1]
    /\ UNCHANGED mix
    /\ Record("Crash", r, commitIndex'[r])

StepDownStep(r) ==
    /\ FaultsOn
    /\ M.proposeFirst => \E s \in Slots : log[r][s].bal = promised[r]
    /\ StepDown(r)
    /\ Unfollow(r)
    /\ Record("StepDown", r, <<>>)

LoseMessageStep(m) ==
    /\ FaultsOn
    /\ budget[3] < M.losses
    /\ m \in msgs
    \* LoseMessage is \E m2 \in msgs : msgs' = msgs \ {m2} /\ ...: this m.
    /\ LoseMessage
    /\ msgs' = msgs \ {m}
    /\ UNCHANGED <<ghostVars, mix>>
    /\ budget' = [budget EXCEPT ![3] = @ + 1]
    /\ hist' = Append(hist, <<"LoseMessage", 0, Enc(m), {}, <<>>>>)

\* A message delivered to a replica for which the spec takes no step that changes
\* anything (a stale Accepted at a leader, a Promise of another ballot, a Reject
\* not above the promise, a duplicate): the core must change nothing the spec
\* has and take no spec action (replayed as "Ignore", at most M.ignores a walk).
Handles(r, m) ==
    CASE m.type = "Prepare" -> HandlePrepareMessage(r, m)
      [] m.type = "Promise" -> HandlePromiseMessage(r, m)
      [] m.type = "Reject" -> HandleRejectMessage(r, m)
      [] m.type = "Accept" -> HandleAcceptMessage(r, m)
      [] m.type = "Accepted" -> HandleAcceptedMessage(r, m)
      [] m.type = "Heartbeat" -> HandleHeartbeatMessage(r, m)
      [] OTHER -> FALSE
Addressed(r, m) ==
    /\ m.from # r
    /\ m.type \in {"Promise", "Reject", "Accepted"} => m.to = r
    /\ m.type = "Accept" => r \in m.to

IgnoreStep(r, m) ==
    /\ budget[4] < M.ignores
    /\ m.type \in {"Prepare", "Promise", "Reject", "Accept", "Accepted", "Heartbeat"}
    /\ Addressed(r, m)
    /\ ~ENABLED (Handles(r, m) /\ Changes)
    /\ UNCHANGED <<vars, ghostVars, mix>>
    /\ budget' = [budget EXCEPT ![4] = @ + 1]
    /\ hist' = Append(hist, <<"Ignore", r, Enc(m), {}, Vars(r)>>)

\* One disjunct per action and weight (see Mixes).
ReplayNext ==
    \/ \E w \in 1..MaxWeight, r \in Replicas :
          W("StartElection", w) /\ StartElectionStep(r)
    \/ \E w \in 1..MaxWeight, r \in Replicas :
          W("HandlePrepare", w) /\ \E m \in msgs : HandlePrepareStep(r, m)
    \/ \E w \in 1..MaxWeight, r \in Replicas :
          W("HandlePromise", w) /\ \E m \in msgs : HandlePromiseStep(r, m)
    \/ \E w \in 1..MaxWeight, r \in Replicas :
          W("HandleReject", w) /\ \E m \in msgs : HandleRejectStep(r, m)
    \/ \E w \in 1..MaxWeight, r \in Replicas :
          W("Propose", w) /\ \E v \in Values, targets \in ThriftyTargets(r) : ProposeStep(r, v, targets)
    \/ \E w \in 1..MaxWeight, r \in Replicas, s \in Slots :
          W("RetryAccept", w) /\ RetryAcceptStep(r, s)
    \/ \E w \in 1..MaxWeight, r \in Replicas :
          W("HandleAccept", w) /\ \E m \in msgs : HandleAcceptStep(r, m)
    \/ \E w \in 1..MaxWeight, r \in Replicas :
          W("HandleAccepted", w) /\ \E m \in msgs : HandleAcceptedStep(r, m)
    \/ \E w \in 1..MaxWeight, r \in Replicas :
          W("SendHeartbeat", w) /\ SendHeartbeatStep(r)
    \/ \E w \in 1..MaxWeight, r \in Replicas :
          W("HandleHeartbeat", w) /\ \E m \in msgs : HandleHeartbeatStep(r, m)
    \/ \E w \in 1..MaxWeight, r \in Replicas :
          W("RequestCatchup", w) /\ RequestCatchupStep(r)
    \/ \E w \in 1..MaxWeight, l \in Replicas :
          W("HandleCatchupRequest", w) /\ \E m \in msgs : HandleCatchupRequestStep(l, m)
    \/ \E w \in 1..MaxWeight, r \in Replicas :
          W("HandleCatchupReply", w) /\ \E m \in msgs : HandleCatchupReplyStep(r, m)
    \/ \E w \in 1..MaxWeight, r \in Replicas, i \in Slots :
          W("TruncateLog", w) /\ TruncateLogStep(r, i)
    \/ \E w \in 1..MaxWeight, r \in Replicas :
          W("InstallSnapshot", w) /\ \E m \in msgs : InstallStep(r, m)
    \/ \E w \in 1..MaxWeight, r \in Replicas :
          W("Crash", w) /\ CrashStep(r)
    \/ \E w \in 1..MaxWeight, r \in Replicas :
          W("StepDown", w) /\ StepDownStep(r)
    \/ \E w \in 1..MaxWeight :
          W("LoseMessage", w) /\ \E m \in msgs : LoseMessageStep(m)
    \/ \E w \in 1..MaxWeight, r \in Replicas :
          W("Ignore", w) /\ \E m \in msgs : IgnoreStep(r, m)

ReplaySpec == ReplayInit /\ [][ReplayNext]_<<vars, hist, ghostVars, counters>>

\* Printed once per behaviour, when it has Depth steps, with the walk's mix.
Dump == Len(hist) = Depth => PrintT(<<"SPECREPLAY", hist, M.name>>)
=============================================================================
