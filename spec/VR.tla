---------------------------------- MODULE VR ----------------------------------
(***************************************************************************)
(* Viewstamped Replication Revisited (Liskov and Cowling, MIT-CSAIL-TR-    *)
(* 2012-021) at the level of messages, written in the house style of      *)
(* spec/LowPaxos.tla: a set-of-messages network, crash and restart with    *)
(* what is durable, and action names that are the names of the handlers    *)
(* of the Python core (impl/lowpaxos/protocols/vr/, docs/vr.md) and of the *)
(* events in its traces.                                                   *)
(*                                                                         *)
(* Covered: normal operation (§4.1), view changes (§4.2), recovery with    *)
(* the nonce protocol (§4.3), state transfer (§5.2), and crash/restart in  *)
(* both disk modes of the core: DisklessReplicas lose everything in a      *)
(* crash and recover by §4.3 (at most f replicas down or recovering at    *)
(* once, the paper's assumption); the others ("sync") write view, status, *)
(* last-normal view and log before sending and restart from them.         *)
(*                                                                         *)
(* Abstractions, see docs/spec.md:                                         *)
(*  - an op holds one value; in the core it holds a batch, one value to   *)
(*    the protocol;                                                        *)
(*  - the network is a set of messages, never consumed: any message may   *)
(*    be delivered any number of times, in any order, or never;           *)
(*    LoseMessage removes one to bound the model;                          *)
(*  - what a replica has received is read from the network: the primary  *)
(*    counts the PrepareOKs in it, a replica the StartViewChanges, the new *)
(*    primary the DoViewChanges, a recovering replica the                  *)
(*    RecoveryResponses. A message in the network is one the replica may  *)
(*    have received, so this allows every behaviour of a replica that     *)
(*    keeps them in volatile sets (it allows more: a replica that         *)
(*    restarted may count messages it received before; that is safe, each *)
(*    message is a fact about its sender), and the receive steps that     *)
(*    only collect change no variable;                                     *)
(*  - the nonce of §4.3 is a per-replica counter raised by every diskless *)
(*    crash: it is fresh for each incarnation, which is all the protocol  *)
(*    asks of it, and MaxRecoveries bounds it;                             *)
(*  - messages carry whole logs where the core sends the suffix above the *)
(*    commit-number (§5.3): the committed prefix is the same everywhere   *)
(*    (CommittedPrefixesAgree), so the suffix and the whole log say the   *)
(*    same;                                                                *)
(*  - checkpoints, log truncation and the chunked row transfer of the     *)
(*    core are not modelled: logs are kept whole;                          *)
(*  - client tables and replies are not modelled beyond this: a primary   *)
(*    does not append a value its log already holds (a retried request is *)
(*    answered from the client table, not run again);                     *)
(*  - timers are not modelled: any enabled action may happen at any time. *)
(***************************************************************************)
EXTENDS Naturals, FiniteSets, Sequences, TLC

CONSTANTS
    Replicas,          \* replica ids 1..N, N = 2f + 1
    Values,            \* client operations (one value stands for a batch)
    NoOp,              \* only for the refinement mapping: VR never writes it
    MaxView,           \* views are 0..MaxView
    MaxOp,             \* op-numbers are 1..MaxOp
    MaxMessages,       \* state constraint: at most this many messages in flight
    DisklessReplicas,  \* replicas with disk = "none"; the others have disk = "sync"
    MaxRecoveries,     \* a diskless replica crashes at most this many times
    LaggingCommitHint  \* a sync replica may restart with a commit-number below its own

N == Cardinality(Replicas)
F == (N - 1) \div 2

ASSUME Replicas = 1..N /\ N % 2 = 1
ASSUME NoOp \notin Values
ASSUME MaxView \in Nat /\ MaxOp \in Nat \ {0} /\ MaxMessages \in Nat
ASSUME DisklessReplicas \subseteq Replicas /\ MaxRecoveries \in Nat
ASSUME LaggingCommitHint \in BOOLEAN

Views == 0..MaxView
Ops == 0..MaxOp

\* §4: the primary of view v is replica v mod N (our ids start at 1).
Primary(v) == (v % N) + 1

\* Logs of at most MaxOp values.
Logs == UNION {[1..n -> Values] : n \in Ops}

Statuses == {"normal", "view-change", "recovering"}

VARIABLES
    view,             \* durable (sync): the view-number, the latest view known
    status,           \* durable (sync): normal, view-change or recovering
    last_normal_view, \* durable (sync): the latest view whose log this log is
    log,              \* durable (sync): the log; the op-number is its length
    commit,           \* a hint on disk (sync): ops 1..commit are committed
    nonce,            \* the nonce of the current incarnation (diskless)
    msgs,             \* the network
    applied,          \* history: the values each replica has executed, in op order
    requested,        \* history: the values that reached a primary from a client
    committedOps      \* history: [op, val, view] for each op a primary committed,
                      \* with the view of the first commit of that value there

replicaVars == <<view, status, last_normal_view, log, commit, nonce>>
vars == <<replicaVars, msgs, applied, requested, committedOps>>

\* The op-number of §4: the number of the last op in the log.
op == [r \in Replicas |-> Len(log[r])]

Message ==
         [type : {"Prepare"}, view : Views, op : 1..MaxOp, val : Values, commit : Ops,
          from : Replicas]
    \cup [type : {"PrepareOK"}, view : Views, op : 1..MaxOp, from : Replicas]
    \cup [type : {"Commit"}, view : Views, commit : Ops, from : Replicas]
    \cup [type : {"StartViewChange"}, view : Views, from : Replicas]
    \cup [type : {"DoViewChange"}, view : Views, log : Logs, last_normal_view : Views,
          commit : Ops, from : Replicas]
    \cup [type : {"StartView"}, view : Views, log : Logs, commit : Ops, from : Replicas]
    \cup [type : {"GetState"}, view : Views, op : Ops, from : Replicas]
    \cup [type : {"NewState"}, view : Views, after : Ops, entries : Logs, commit : Ops,
          from : Replicas, to : Replicas]
    \cup [type : {"Recovery"}, from : Replicas, nonce : 0..MaxRecoveries]
    \cup [type : {"RecoveryResponse"}, view : Views, nonce : 0..MaxRecoveries,
          primary : BOOLEAN, log : Logs, commit : Ops, from : Replicas, to : Replicas]

TypeOK ==
    /\ view \in [Replicas -> Views]
    /\ status \in [Replicas -> Statuses]
    /\ last_normal_view \in [Replicas -> Views]
    /\ log \in [Replicas -> Logs]
    /\ commit \in [Replicas -> Ops]
    /\ nonce \in [Replicas -> 0..MaxRecoveries]
    /\ msgs \subseteq Message
    /\ \A r \in Replicas : applied[r] \in Seq(Values) /\ Len(applied[r]) <= MaxOp
    /\ requested \subseteq Values
    /\ committedOps \subseteq [op : 1..MaxOp, val : Values, view : Views]

-----------------------------------------------------------------------------
(* Helpers.                                                                *)

Max(S) == CHOOSE x \in S : \A y \in S : x >= y
Min(a, b) == IF a <= b THEN a ELSE b
Range(s) == {s[i] : i \in DOMAIN s}

Send(m) == msgs' = msgs \cup {m}

\* r takes part in its view: normal, and its log is that view's log. A
\* replica that joined a later view from a Prepare or a Commit is normal in
\* it with last_normal_view below it until NewState brings the view's log
\* (§5.2); it accepts no Prepare and serves no state meanwhile.
InView(r) == status[r] = "normal" /\ last_normal_view[r] = view[r]

IsPrimary(r) == InView(r) /\ Primary(view[r]) = r

\* r, whose log is now newLog, moves its commit-number to newCommit and
\* executes the ops that passes, in op order (§4.1 step 7). A replica that
\* re-executes ops (after a diskless crash, or a restart with a lagging
\* commit hint) overwrites its history with what it executed again, so the
\* refinement mapping sees a different value. A commit-number past the end
\* of the log (only a broken variant gets there) executes only what the log
\* holds; CommittedPrefixesAgree reports it. (The new log and commit come
\* as arguments, not primed: TLC builds the function lazily.)
ApplyCommitted(r, newLog, newCommit) ==
    /\ commit' = [commit EXCEPT ![r] = newCommit]
    /\ IF Min(newCommit, Len(newLog)) <= commit[r] THEN UNCHANGED applied
       ELSE applied' = [applied EXCEPT ![r] =
              [s \in 1..Max({Len(applied[r]), Min(newCommit, Len(newLog))}) |->
                 IF s > commit[r] /\ s <= newCommit /\ s <= Len(newLog) THEN newLog[s]
                 ELSE applied[r][s]]]

\* A message of view v is news of a later view to r: v is above r's view,
\* or it is r's view and r is still changing views (the view has started).
LaterView(r, v) == v > view[r] \/ (v = view[r] /\ status[r] = "view-change")

\* A StartView of view v gives r v's log: v is above r's view, or it is r's
\* view and r does not hold that view's log yet (changing views, or joined
\* from a Prepare or a Commit and waiting for state).
LacksViewLog(r, v) == v > view[r] \/ (v = view[r] /\ last_normal_view[r] < view[r])

\* §5.2: r has heard of the later view v from a Prepare or a Commit. It joins
\* v at once (so it ignores the older views' messages from now on) and waits
\* for v's log by state transfer (RequestState): until NewState arrives it
\* keeps its log and its last-normal view, so a view change meanwhile takes
\* its log for what it is, the log of that older view.
\* (spec/broken/VRTruncateOnLaterView.tla replaces it by the paper's letter:
\* cut the log to the commit-number and take the new view for its own.)
JoinLaterView(r, v) ==
    /\ view' = [view EXCEPT ![r] = v]
    /\ status' = [status EXCEPT ![r] = "normal"]
    /\ UNCHANGED <<last_normal_view, log, commit, nonce, msgs, applied>>

-----------------------------------------------------------------------------
(* Normal operation (§4.1).                                                *)

\* §4.1 steps 2-3: the primary appends a client's request at op-number + 1
\* and sends Prepare(v, m, n, k) to the backups.
ProposeValue(r, v) ==
    /\ IsPrimary(r)
    /\ Len(log[r]) < MaxOp
    /\ v \notin Range(log[r])
    /\ log' = [log EXCEPT ![r] = Append(log[r], v)]
    /\ requested' = requested \cup {v}
    /\ Send([type |-> "Prepare", view |-> view[r], op |-> Len(log[r]) + 1, val |-> v,
             commit |-> commit[r], from |-> r])
    /\ UNCHANGED <<view, status, last_normal_view, commit, nonce, applied, committedOps>>

Propose(r) ==
    /\ IsPrimary(r)
    /\ \E v \in Values : ProposeValue(r, v)

\* §4.1 step 4: a backup appends a Prepare for the next op in order, answers
\* PrepareOK, and executes up to the primary's commit-number as far as its
\* log goes (step 7). A Prepare past the next op leaves a gap: it is dropped
\* and the backup asks for the missing ops (RequestState). A Prepare of a
\* later view: the backup joins that view (§5.2).
HandlePrepareMessage(r, m) ==
    /\ m \in msgs
    /\ m.type = "Prepare"
    /\ m.from # r
    /\ status[r] # "recovering"
    /\ \/ /\ InView(r)
          /\ m.view = view[r]
          /\ m.op = Len(log[r]) + 1
          /\ LET newLog == Append(log[r], m.val) IN
             /\ log' = [log EXCEPT ![r] = newLog]
             /\ ApplyCommitted(r, newLog, Max({commit[r], Min(m.commit, Len(newLog))}))
          /\ Send([type |-> "PrepareOK", view |-> view[r], op |-> m.op, from |-> r])
          /\ UNCHANGED <<view, status, last_normal_view, nonce>>
       \/ /\ LaterView(r, m.view)
          /\ JoinLaterView(r, m.view)
    /\ UNCHANGED <<requested, committedOps>>

HandlePrepare(r) == \E m \in msgs : HandlePrepareMessage(r, m)

\* The backups other than the primary p that hold op n or beyond in view v.
AckedBy(p, v, n) ==
    {q \in Replicas \ {p} :
        \E o \in msgs : o.type = "PrepareOK" /\ o.view = v /\ o.from = q /\ o.op >= n}

\* §4.1 step 5: with f PrepareOKs from backups, an op is committed, and so is
\* every op before it; the primary executes them. A PrepareOK(v, n) says its
\* sender holds ops 1..n of view v's log, since a backup appends in order.
HandlePrepareOKMessage(p, m) ==
    /\ m \in msgs
    /\ m.type = "PrepareOK"
    /\ m.from # p
    /\ IsPrimary(p)
    /\ m.view = view[p]
    /\ LET ready == {n \in (commit[p] + 1)..Len(log[p]) :
                       Cardinality(AckedBy(p, view[p], n)) >= F}
       IN
       /\ ready # {}
       /\ LET newCommit == Max(ready) IN
          /\ ApplyCommitted(p, log[p], newCommit)
          /\ committedOps' = committedOps \cup
               { [op |-> n, val |-> log[p][n], view |-> view[p]] :
                   n \in {k \in (commit[p] + 1)..newCommit :
                            ~\E c \in committedOps : c.op = k /\ c.val = log[p][k]} }
    /\ UNCHANGED <<view, status, last_normal_view, log, nonce, msgs, requested>>

HandlePrepareOK(p) == \E m \in msgs : HandlePrepareOKMessage(p, m)

\* §4.1 step 6: an idle primary tells the backups its commit-number.
SendCommit(p) ==
    /\ IsPrimary(p)
    /\ Send([type |-> "Commit", view |-> view[p], commit |-> commit[p], from |-> p])
    /\ UNCHANGED <<replicaVars, applied, requested, committedOps>>

\* §4.1 step 7: a backup executes the ops up to the commit-number that it
\* holds; for the ones it lacks it asks for state (RequestState). A Commit
\* of a later view: the backup joins that view (§5.2).
HandleCommitMessage(r, m) ==
    /\ m \in msgs
    /\ m.type = "Commit"
    /\ m.from # r
    /\ status[r] # "recovering"
    /\ \/ /\ InView(r)
          /\ m.view = view[r]
          /\ Min(m.commit, Len(log[r])) > commit[r]
          /\ ApplyCommitted(r, log[r], Min(m.commit, Len(log[r])))
          /\ UNCHANGED <<view, status, last_normal_view, log, nonce, msgs>>
       \/ /\ LaterView(r, m.view)
          /\ JoinLaterView(r, m.view)
    /\ UNCHANGED <<requested, committedOps>>

HandleCommit(r) == \E m \in msgs : HandleCommitMessage(r, m)

-----------------------------------------------------------------------------
(* View changes (§4.2).                                                    *)

\* The DoViewChange r sends for view v: its log, the last view in which it
\* was normal, and its commit-number (§4.2 step 2).
DoViewChangeOf(r, v) ==
    [type |-> "DoViewChange", view |-> v, log |-> log[r],
     last_normal_view |-> last_normal_view[r], commit |-> commit[r], from |-> r]

\* §4.2 step 2: with StartViewChange from f other replicas, r sends
\* DoViewChange to the new primary. The new primary's own DoViewChange is
\* its state itself (StartView reads it), so it sends none.
DoViewChangeIfReady(r, v) ==
    IF /\ r # Primary(v)
       /\ Cardinality({q \in Replicas \ {r} :
                         [type |-> "StartViewChange", view |-> v, from |-> q] \in msgs}) >= F
    THEN {DoViewChangeOf(r, v)} ELSE {}

\* §4.2 step 1: r moves to view v, status view-change, and tells the others;
\* if it already has f StartViewChanges for v, it also sends DoViewChange.
JoinViewChange(r, v) ==
    /\ view' = [view EXCEPT ![r] = v]
    /\ status' = [status EXCEPT ![r] = "view-change"]
    /\ msgs' = msgs \cup {[type |-> "StartViewChange", view |-> v, from |-> r]}
                    \cup DoViewChangeIfReady(r, v)
    /\ UNCHANGED <<last_normal_view, log, commit, nonce, applied, requested, committedOps>>

\* §4.2 step 1: a backup that stops hearing from the primary (a timeout,
\* not modelled), or a replica whose view change does not finish, starts a
\* view change to the next view. The primary of a view it is normal in does
\* not time out on itself.
StartViewChange(r) ==
    /\ status[r] # "recovering"
    /\ ~IsPrimary(r)
    /\ view[r] < MaxView
    /\ JoinViewChange(r, view[r] + 1)

\* §4.2 steps 1-2: a StartViewChange of a later view makes r join it; one of
\* its own view, while it changes views, may complete its f.
HandleStartViewChangeMessage(r, m) ==
    /\ m \in msgs
    /\ m.type = "StartViewChange"
    /\ m.from # r
    /\ status[r] # "recovering"
    /\ \/ /\ m.view > view[r]
          /\ JoinViewChange(r, m.view)
       \/ /\ m.view = view[r]
          /\ status[r] = "view-change"
          /\ DoViewChangeIfReady(r, m.view) # {}
          /\ msgs' = msgs \cup DoViewChangeIfReady(r, m.view)
          /\ UNCHANGED <<replicaVars, applied, requested, committedOps>>

HandleStartViewChange(r) == \E m \in msgs : HandleStartViewChangeMessage(r, m)

\* §4.2: a DoViewChange of a later view makes r join that view change, as a
\* StartViewChange does. One of r's own view is collected: reading the
\* network, StartView counts it, so receiving it changes no variable.
HandleDoViewChangeMessage(p, m) ==
    /\ m \in msgs
    /\ m.type = "DoViewChange"
    /\ Primary(m.view) = p
    /\ m.from # p
    /\ status[p] # "recovering"
    /\ \/ /\ m.view > view[p]
          /\ JoinViewChange(p, m.view)
       \/ /\ m.view = view[p]
          /\ status[p] = "view-change"
          /\ UNCHANGED vars

HandleDoViewChange(p) == \E m \in msgs : HandleDoViewChangeMessage(p, m)

\* §4.2 step 3: the log of the report with the largest last-normal view and,
\* among those, the largest op-number. Two reports that tie on both hold the
\* same log: logs of one view are prefixes of its primary's.
\* (spec/broken/VROpNumberOnly.tla replaces it by the largest op-number alone.)
ChooseLog(reports) ==
    (CHOOSE x \in reports :
        \A y \in reports :
            \/ x.last_normal_view > y.last_normal_view
            \/ x.last_normal_view = y.last_normal_view /\ Len(x.log) >= Len(y.log)).log

\* §4.2 steps 3-4: the new primary p of view v, changing views, with
\* DoViewChange from f other replicas (f + 1 with its own state), takes the
\* chosen log and the largest commit-number, becomes normal, sends StartView
\* and executes the committed ops it had not.
StartViewWith(p, dvcs) ==
    LET v == view[p]
        own == [log |-> log[p], last_normal_view |-> last_normal_view[p], commit |-> commit[p]]
        reports == {[log |-> d.log, last_normal_view |-> d.last_normal_view,
                     commit |-> d.commit] : d \in dvcs} \cup {own}
        newLog == ChooseLog(reports)
        newCommit == Max({x.commit : x \in reports})
    IN
    /\ log' = [log EXCEPT ![p] = newLog]
    /\ status' = [status EXCEPT ![p] = "normal"]
    /\ last_normal_view' = [last_normal_view EXCEPT ![p] = v]
    /\ ApplyCommitted(p, newLog, newCommit)
    /\ Send([type |-> "StartView", view |-> v, log |-> newLog, commit |-> newCommit, from |-> p])
    /\ UNCHANGED <<view, nonce, requested, committedOps>>

StartView(p) ==
    /\ status[p] = "view-change"
    /\ Primary(view[p]) = p
    /\ LET received == {d \in msgs : d.type = "DoViewChange" /\ d.view = view[p] /\ d.from # p}
       IN \E dvcs \in SUBSET received :
             /\ Cardinality(dvcs) = F
             /\ Cardinality({d.from : d \in dvcs}) = F
             /\ StartViewWith(p, dvcs)

\* §4.2 step 5: a backup takes the new view's log, becomes normal in it, and
\* sends PrepareOK for the ops not yet committed; it executes the committed
\* ones it had not.
HandleStartViewMessage(r, m) ==
    /\ m \in msgs
    /\ m.type = "StartView"
    /\ m.from # r
    /\ status[r] # "recovering"
    /\ LacksViewLog(r, m.view)
    /\ view' = [view EXCEPT ![r] = m.view]
    /\ status' = [status EXCEPT ![r] = "normal"]
    /\ last_normal_view' = [last_normal_view EXCEPT ![r] = m.view]
    /\ log' = [log EXCEPT ![r] = m.log]
    /\ ApplyCommitted(r, m.log, Max({commit[r], m.commit}))
    /\ IF Len(m.log) > m.commit
       THEN Send([type |-> "PrepareOK", view |-> m.view, op |-> Len(m.log), from |-> r])
       ELSE UNCHANGED msgs
    /\ UNCHANGED <<nonce, requested, committedOps>>

HandleStartView(r) == \E m \in msgs : HandleStartViewMessage(r, m)

-----------------------------------------------------------------------------
(* State transfer (§5.2).                                                  *)

\* r asks another replica for state: a replica waiting for the log of a
\* view it joined asks for everything after its commit-number (ops after it
\* may have been reordered by the view change); one that a Prepare or a
\* Commit of its view showed a gap asks for what follows its op-number.
RequestState(r) ==
    /\ status[r] = "normal"
    /\ \/ /\ last_normal_view[r] < view[r]
          /\ Send([type |-> "GetState", view |-> view[r], op |-> commit[r], from |-> r])
       \/ /\ InView(r)
          /\ \E m \in msgs :
               /\ m.type \in {"Prepare", "Commit"}
               /\ m.view = view[r]
               /\ IF m.type = "Prepare" THEN m.op > Len(log[r]) + 1 ELSE m.commit > Len(log[r])
          /\ Send([type |-> "GetState", view |-> view[r], op |-> Len(log[r]), from |-> r])
    /\ UNCHANGED <<replicaVars, applied, requested, committedOps>>

\* §5.2: a replica normal in the view asked for answers with its log after
\* the op-number asked for, its op-number and its commit-number.
HandleGetStateMessage(j, m) ==
    /\ m \in msgs
    /\ m.type = "GetState"
    /\ m.from # j
    /\ InView(j)
    /\ view[j] = m.view
    /\ m.op <= Len(log[j])
    /\ Send([type |-> "NewState", view |-> view[j], after |-> m.op,
             entries |-> SubSeq(log[j], m.op + 1, Len(log[j])), commit |-> commit[j],
             from |-> j, to |-> m.from])
    /\ UNCHANGED <<replicaVars, applied, requested, committedOps>>

HandleGetState(j) == \E m \in msgs : HandleGetStateMessage(j, m)

\* §5.2: the receiver keeps its log up to the op the state follows and takes
\* the entries after it. In its own view (a gap) the log only grows. For a
\* view it has joined but whose log it lacks, it keeps only what it has
\* committed (ops after that may have been reordered by the view change),
\* and becomes normal in the view only now, with the view's log.
HandleNewStateMessage(r, m) ==
    /\ m \in msgs
    /\ m.type = "NewState"
    /\ m.to = r
    /\ status[r] = "normal"
    /\ m.view = view[r]
    /\ LET newLog == SubSeq(log[r], 1, m.after) \o m.entries IN
       \/ /\ InView(r)
          /\ m.after <= Len(log[r])
          /\ Len(newLog) > Len(log[r])
          /\ log' = [log EXCEPT ![r] = newLog]
          /\ ApplyCommitted(r, newLog, Max({commit[r], m.commit}))
          /\ UNCHANGED <<view, status, last_normal_view, nonce, msgs>>
       \/ /\ last_normal_view[r] < view[r]
          /\ m.after <= commit[r]
          /\ log' = [log EXCEPT ![r] = newLog]
          /\ last_normal_view' = [last_normal_view EXCEPT ![r] = m.view]
          /\ ApplyCommitted(r, newLog, Max({commit[r], m.commit}))
          /\ UNCHANGED <<view, status, nonce, msgs>>
    /\ UNCHANGED <<requested, committedOps>>

HandleNewState(r) == \E m \in msgs : HandleNewStateMessage(r, m)

-----------------------------------------------------------------------------
(* Recovery (§4.3) of a diskless replica.                                  *)

\* §4.3 step 1: a recovering replica sends Recovery with its nonce (again,
\* on a timeout: the same message).
StartRecovery(r) ==
    /\ status[r] = "recovering"
    /\ Send([type |-> "Recovery", from |-> r, nonce |-> nonce[r]])
    /\ UNCHANGED <<replicaVars, applied, requested, committedOps>>

\* §4.3 step 2: only a normal replica answers; the primary of its view with
\* its log and commit-number, a backup with its view alone.
HandleRecoveryMessage(j, m) ==
    /\ m \in msgs
    /\ m.type = "Recovery"
    /\ m.from # j
    /\ status[j] = "normal"
    /\ LET isPrimary == IsPrimary(j) IN
       Send([type |-> "RecoveryResponse", view |-> view[j], nonce |-> m.nonce,
             primary |-> isPrimary,
             log |-> IF isPrimary THEN log[j] ELSE << >>,
             commit |-> IF isPrimary THEN commit[j] ELSE 0,
             from |-> j, to |-> m.from])
    /\ UNCHANGED <<replicaVars, applied, requested, committedOps>>

HandleRecovery(j) == \E m \in msgs : HandleRecoveryMessage(j, m)

NotReady == [ready |-> FALSE]

\* §4.3 step 3: from f + 1 responses with the replica's nonce, from
\* different replicas, the state to recover is the one of the primary of
\* the latest view among them; without that primary's response, none.
\* (spec/broken/VRRecoveryWithoutPrimary.tla replaces it.)
RecoveredState(responses) ==
    LET latest == Max({s.view : s \in responses})
        fromPrimary == {s \in responses : s.primary /\ s.view = latest}
    IN IF fromPrimary = {} THEN NotReady
       ELSE LET s == CHOOSE x \in fromPrimary : TRUE IN
            [ready |-> TRUE, view |-> latest, log |-> s.log, commit |-> s.commit]

\* A response is collected (no variable changes) until the f + 1 with the
\* replica's nonce in the network suffice; then the replica takes that state,
\* becomes normal in that view, and executes the committed ops again.
HandleRecoveryResponseMessage(r, m) ==
    /\ m \in msgs
    /\ m.type = "RecoveryResponse"
    /\ m.to = r
    /\ status[r] = "recovering"
    /\ m.nonce = nonce[r]
    /\ LET received == {s \in msgs : s.type = "RecoveryResponse" /\ s.to = r
                                       /\ s.nonce = nonce[r]}
           quorums == {q \in SUBSET received :
                         /\ m \in q
                         /\ Cardinality(q) = F + 1
                         /\ Cardinality({s.from : s \in q}) = F + 1
                         /\ RecoveredState(q).ready}
       IN
       \/ /\ quorums = {}
          /\ UNCHANGED vars
       \/ \E q \in quorums :
            LET state == RecoveredState(q) IN
            /\ view' = [view EXCEPT ![r] = state.view]
            /\ status' = [status EXCEPT ![r] = "normal"]
            /\ last_normal_view' = [last_normal_view EXCEPT ![r] = state.view]
            /\ log' = [log EXCEPT ![r] = state.log]
            /\ ApplyCommitted(r, state.log, state.commit)
            /\ UNCHANGED <<nonce, msgs, requested, committedOps>>

HandleRecoveryResponse(r) == \E m \in msgs : HandleRecoveryResponseMessage(r, m)

-----------------------------------------------------------------------------
(* Faults.                                                                 *)

\* A diskless replica loses everything and comes back recovering, with a
\* fresh nonce; at most f replicas are recovering at once (§4.3's
\* assumption: the core documents disk = "none" as safe only then). A sync
\* replica restarts from its disk with its view, status, last-normal view
\* and log, and a commit hint that may lag (written lazily) when
\* LaggingCommitHint holds; otherwise it comes back as it was (a crash that
\* loses nothing changes no variable). What it executed is in its history.
Crash(r) ==
    \/ /\ r \in DisklessReplicas
       /\ nonce[r] < MaxRecoveries
       /\ Cardinality({q \in Replicas : status[q] = "recovering"} \cup {r}) <= F
       /\ view' = [view EXCEPT ![r] = 0]
       /\ status' = [status EXCEPT ![r] = "recovering"]
       /\ last_normal_view' = [last_normal_view EXCEPT ![r] = 0]
       /\ log' = [log EXCEPT ![r] = << >>]
       /\ commit' = [commit EXCEPT ![r] = 0]
       /\ nonce' = [nonce EXCEPT ![r] = @ + 1]
       /\ UNCHANGED <<msgs, applied, requested, committedOps>>
    \/ /\ r \notin DisklessReplicas
       /\ LaggingCommitHint
       /\ \E hint \in 0..(commit[r] - 1) : commit' = [commit EXCEPT ![r] = hint]
       /\ UNCHANGED <<view, status, last_normal_view, log, nonce, msgs, applied, requested,
                      committedOps>>

LoseMessage == \E m \in msgs :
    /\ msgs' = msgs \ {m}
    /\ UNCHANGED <<replicaVars, applied, requested, committedOps>>

-----------------------------------------------------------------------------

Init ==
    /\ view = [r \in Replicas |-> 0]
    /\ status = [r \in Replicas |-> "normal"]
    /\ last_normal_view = [r \in Replicas |-> 0]
    /\ log = [r \in Replicas |-> << >>]
    /\ commit = [r \in Replicas |-> 0]
    /\ nonce = [r \in Replicas |-> 0]
    /\ msgs = {}
    /\ applied = [r \in Replicas |-> << >>]
    /\ requested = {}
    /\ committedOps = {}

\* One disjunct per action, so that TLC names each step after its action.
Next ==
    \/ \E r \in Replicas : Propose(r)
    \/ \E r \in Replicas : HandlePrepare(r)
    \/ \E r \in Replicas : HandlePrepareOK(r)
    \/ \E r \in Replicas : SendCommit(r)
    \/ \E r \in Replicas : HandleCommit(r)
    \/ \E r \in Replicas : StartViewChange(r)
    \/ \E r \in Replicas : HandleStartViewChange(r)
    \/ \E r \in Replicas : HandleDoViewChange(r)
    \/ \E r \in Replicas : StartView(r)
    \/ \E r \in Replicas : HandleStartView(r)
    \/ \E r \in Replicas : RequestState(r)
    \/ \E r \in Replicas : HandleGetState(r)
    \/ \E r \in Replicas : HandleNewState(r)
    \/ \E r \in Replicas : StartRecovery(r)
    \/ \E r \in Replicas : HandleRecovery(r)
    \/ \E r \in Replicas : HandleRecoveryResponse(r)
    \/ \E r \in Replicas : Crash(r)
    \/ LoseMessage

Spec == Init /\ [][Next]_vars

\* State constraint: at most MaxMessages messages in flight (see LowPaxos.tla:
\* it cuts off behaviours that need more at once, not safety).
MessageBound == Cardinality(msgs) <= MaxMessages

ValueSymmetry == Permutations(Values)

-----------------------------------------------------------------------------
(* Safety.                                                                 *)

\* An op committed in view v (by its primary, with f PrepareOKs) is in the
\* log of every primary from then on, at the same op-number with the same
\* value: in the log of a replica that is primary of v or of a later view,
\* and in every StartView of a later view. Committed operations never change
\* or disappear across view changes (§4.2's correctness argument, §8.1).
CommittedSurvivesViewChange ==
    \A c \in committedOps :
        /\ \A r \in Replicas :
              (IsPrimary(r) /\ view[r] >= c.view) =>
                  (Len(log[r]) >= c.op /\ log[r][c.op] = c.val)
        /\ \A m \in msgs :
              (m.type = "StartView" /\ m.view > c.view) =>
                  (Len(m.log) >= c.op /\ m.log[c.op] = c.val)

\* No op-number is ever committed with two values.
CommittedOpsAgree ==
    \A c1, c2 \in committedOps : c1.op = c2.op => c1.val = c2.val

\* Two replicas' committed prefixes agree, and a commit-number never runs
\* past the replica's log.
CommittedPrefixesAgree ==
    /\ \A r \in Replicas : commit[r] <= Len(log[r])
    /\ \A r1, r2 \in Replicas : \A s \in 1..Min(commit[r1], commit[r2]) :
          log[r1][s] = log[r2][s]

\* Bookkeeping, not counted as catching a bug: a replica changing views is
\* in a view above its last normal one; a normal one is at or above it.
ViewsWellFormed ==
    \A r \in Replicas :
        /\ last_normal_view[r] <= view[r]
        /\ status[r] = "view-change" => last_normal_view[r] < view[r]

\* The refinement mapping, as for LowPaxos: the committed log of
\* ReplicatedLog is the longest prefix of ops that some replica has executed
\* and on which all that have executed it agree; proposed is what reached a
\* primary from a client. VR never writes NoOp.
AppliedValuesAt(s) == {applied[r][s] : r \in {q \in Replicas : s <= Len(applied[q])}}
Advance(from, ok) ==
    CHOOSE k \in from..MaxOp : (\A j \in (from + 1)..k : j \in ok) /\ (k + 1) \notin ok
CommittedLog ==
    LET length == Advance(0, {s \in 1..MaxOp : Cardinality(AppliedValuesAt(s)) = 1})
    IN [i \in 1..length |-> CHOOSE v \in AppliedValuesAt(i) : TRUE]

Abstract == INSTANCE ReplicatedLog
    WITH committed <- CommittedLog, proposed <- requested, MaxLen <- MaxOp

\* Abstract!Spec, with the stuttering cases first (see LowPaxos.tla): the
\* mapping depends on applied and requested alone.
AbstractVars == <<CommittedLog, requested>>
ImplementsReplicatedLog ==
    /\ Abstract!Init
    /\ [][UNCHANGED <<applied, requested>> \/ UNCHANGED AbstractVars \/ Abstract!Next]_AbstractVars

\* Reachability, not safety (spec/VR_views3.cfg): no replica is ever normal
\* in view 3. The check runs the CI model's constants with StartViewChange
\* replaced by StartViewChangeFromNormal below, so that a view change starts
\* only from a replica normal in the view before it: a replica then becomes
\* normal in view 3 only after views 1 and 2 were started, and TLC's refuting
\* this invariant shows three complete view changes. (The behaviours of the
\* replaced spec are behaviours of the CI model, where a view change that
\* does not finish may also move on to the next view.)
NeverNormalInView3 == \A r \in Replicas : ~(status[r] = "normal" /\ view[r] >= 3)

StartViewChangeFromNormal(r) ==
    /\ InView(r)
    /\ ~IsPrimary(r)
    /\ view[r] < MaxView
    /\ JoinViewChange(r, view[r] + 1)
=============================================================================
