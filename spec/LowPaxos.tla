------------------------------ MODULE LowPaxos ------------------------------
(***************************************************************************)
(* LowPaxos at the level of messages.                                      *)
(*                                                                         *)
(* LowPaxos is Multi-Paxos (Lamport, "Paxos Made Simple" §3) with flexible *)
(* quorums (Howard, Malkhi, Spiegelman 2016): one phase 1 covers every     *)
(* slot above the candidate's commit index, phase 2 runs per slot and is   *)
(* thrifty (the Accept goes to only Q2 - 1 followers and is widened on a   *)
(* retry), and the leader's commit index rides on every Accept and         *)
(* Heartbeat, so steady state has no separate commit message.              *)
(*                                                                         *)
(* Action names are the names of the handlers in the Python core          *)
(* (HandleAccept is handle_accept) and of the events in its traces.        *)
(*                                                                         *)
(* Abstractions, see docs/spec.md:                                         *)
(*  - a slot holds one value; in the implementation it holds a batch of    *)
(*    commands, which is one value to consensus;                           *)
(*  - the network is a set of messages: a message is never consumed, so    *)
(*    any message may be delivered any number of times (duplication), in   *)
(*    any order, or never; LoseMessage removes one to bound the model;     *)
(*  - a state transfer is abstract: a replica drops its log up to a slot   *)
(*    it has committed (TruncateLog), and a catch-up request below the     *)
(*    cut is answered with SnapshotChunk messages that carry only the      *)
(*    index of the image (the committed prefix up to it, the same          *)
(*    everywhere by Agreement); rows, cursors and digests are not          *)
(*    modelled, so staging a chunk (HandleSnapshotChunk) changes no        *)
(*    variable, and InstallSnapshot takes the index of a chunk received;   *)
(*  - Restart is folded into Crash: the replica comes back at once as a    *)
(*    follower with its durable state (promised, log, commitIndex,         *)
(*    logStart);                                                           *)
(*  - timers are not modelled: any enabled action may happen at any time.  *)
(***************************************************************************)
EXTENDS Naturals, FiniteSets, Sequences, TLC

CONSTANTS
    Replicas,       \* replica ids, a set of positive naturals, e.g. 1..3
    Values,         \* client values (one value stands for a batch)
    NoOp,           \* the value a new leader writes into a gap
    MaxRound,       \* ballots have rounds 1..MaxRound
    MaxSlot,        \* slots are 1..MaxSlot
    Q1,             \* phase-1 (election) quorum size
    Q2,             \* phase-2 (accept) quorum size
    MaxMessages,    \* state constraint: at most this many messages in flight
    CheckQuorumIntersection, \* TRUE except in the negative check spec/broken/
    LaggingCommitHint, \* a restart may recover a commit index below the one it had
    CutReplicas     \* the replicas that may cut their log (all but in small models)

N == Cardinality(Replicas)

ASSUME Replicas \subseteq Nat \ {0} /\ Replicas # {}
ASSUME NoOp \notin Values
ASSUME MaxRound \in Nat \ {0} /\ MaxSlot \in Nat \ {0}
\* Q1 = 1 (a candidate elected by its own promise alone) is not modelled.
ASSUME Q1 \in 2..N /\ Q2 \in 1..N
ASSUME MaxMessages \in Nat
ASSUME CheckQuorumIntersection \in BOOLEAN
ASSUME LaggingCommitHint \in BOOLEAN
ASSUME CutReplicas \subseteq Replicas
\* Flexible Paxos: every phase-1 quorum meets every phase-2 quorum.
ASSUME CheckQuorumIntersection => Q1 + Q2 > N

-----------------------------------------------------------------------------
(* Ballots are <<round, replica>> and compare lexicographically, so the    *)
(* ballots of different replicas never tie (Paxos Made Simple §2.2).      *)

Slots == 1..MaxSlot
Ballots == (1..MaxRound) \X Replicas
ZeroBallot == <<0, 0>>           \* below every real ballot
Greater(a, b) == \/ a[1] > b[1]
                 \/ a[1] = b[1] /\ a[2] > b[2]
\* "Not below", as the core writes it (`not ballot < promised`). For a total
\* order this is a = b \/ Greater(a, b); written this way, the broken variant
\* spec/broken/LowPaxosRoundOnly.tla, which replaces Greater by a comparison
\* of rounds alone, changes every comparison the way the core would.
GreaterEq(a, b) == ~Greater(b, a)

AllValues == Values \cup {NoOp}
Entry == [bal : Ballots, val : AllValues]
NoEntry == [bal |-> ZeroBallot, val |-> NoOp]    \* an empty log slot
SlotEntry == [slot : Slots, bal : Ballots, val : AllValues]

Roles == {"follower", "candidate", "leader"}

VARIABLES
    promised,     \* durable: the highest ballot the replica has promised
    log,          \* durable: log[r][s] is an Entry or NoEntry
    commitIndex,  \* persisted as a hint: slots 1..commitIndex[r] are chosen
    logStart,     \* durable: slots 1..logStart[r] are cut from the log (logStart <= commitIndex)
    role,         \* volatile
    promises,     \* volatile, candidate: the promises received for promised[r]
    nextSlot,     \* volatile, leader: the next free slot (0 when not leader)
    acks,         \* volatile, leader: acks[r][s] is who has accepted slot s
    msgs,         \* the network
    votes,        \* history (not state of any replica): every accept ever made
    applied       \* history: applied[r] is the sequence of values r has applied
                  \* to its state machine (its committed prefix, kept across cuts,
                  \* installs and restarts); the refinement mapping reads it

\* What a replica holds (every variable but the network and the history).
replicaVars == <<promised, log, commitIndex, logStart, role, promises, nextSlot, acks>>
vars == <<replicaVars, msgs, votes, applied>>

NoAcks == [s \in Slots |-> {}]

Message ==
         [type : {"Prepare"}, from : Replicas, bal : Ballots, commitIndex : 0..MaxSlot]
    \cup [type : {"Promise"}, from : Replicas, to : Replicas, bal : Ballots,
          entries : SUBSET SlotEntry, commitIndex : 0..MaxSlot]
    \* A Reject carries the sender's promise, the zero ballot when one marked
    \* lagging comes from a replica that installed a snapshot but never promised.
    \cup [type : {"Reject"}, from : Replicas, to : Replicas, bal : Ballots \cup {ZeroBallot},
          lagging : BOOLEAN]
    \cup [type : {"Accept"}, from : Replicas, to : SUBSET Replicas, bal : Ballots,
          slot : Slots, val : AllValues, commitIndex : 0..MaxSlot]
    \cup [type : {"Accepted"}, from : Replicas, to : Replicas, bal : Ballots, slot : Slots]
    \cup [type : {"Heartbeat"}, from : Replicas, bal : Ballots, commitIndex : 0..MaxSlot]
    \cup [type : {"CatchupRequest"}, from : Replicas, commitIndex : 0..MaxSlot]
    \cup [type : {"CatchupReply"}, from : Replicas, to : Replicas,
          entries : SUBSET SlotEntry, commitIndex : 0..MaxSlot]
    \* A state transfer: chunks of the image of the state at slot index, and a
    \* request for more of them (any replica other than the sender may serve it).
    \cup [type : {"SnapshotChunk"}, from : Replicas, to : Replicas, index : Slots]
    \cup [type : {"SnapshotRequest"}, from : Replicas, index : Slots]

Vote == [rep : Replicas, slot : Slots, bal : Ballots, val : AllValues]

TypeOK ==
    /\ promised \in [Replicas -> Ballots \cup {ZeroBallot}]
    /\ log \in [Replicas -> [Slots -> Entry \cup {NoEntry}]]
    /\ commitIndex \in [Replicas -> 0..MaxSlot]
    /\ logStart \in [Replicas -> 0..MaxSlot]
    /\ role \in [Replicas -> Roles]
    /\ promises \in [Replicas -> SUBSET [from : Replicas, entries : SUBSET SlotEntry]]
    /\ nextSlot \in [Replicas -> 0..(MaxSlot + 1)]
    /\ acks \in [Replicas -> [Slots -> SUBSET Replicas]]
    /\ msgs \subseteq Message
    /\ votes \subseteq Vote
    /\ \A r \in Replicas : applied[r] \in Seq(AllValues) /\ Len(applied[r]) <= MaxSlot

-----------------------------------------------------------------------------
(* Helpers.                                                                *)

Max(S) == CHOOSE x \in S : \A y \in S : x >= y

\* The largest k >= from such that every slot in from+1..k is in ok.
Advance(from, ok) ==
    CHOOSE k \in from..MaxSlot : (\A j \in (from + 1)..k : j \in ok) /\ (k + 1) \notin ok

\* r's log entries above slot `above` and at most slot `upTo`.
EntriesOf(r, above, upTo) ==
    { [slot |-> s, bal |-> log[r][s].bal, val |-> log[r][s].val] :
        s \in { t \in Slots : t > above /\ t <= upTo /\ log[r][t] # NoEntry } }

\* Losing leadership or candidacy clears the volatile state of those roles.
BecomeFollower(r) ==
    /\ role' = [role EXCEPT ![r] = "follower"]
    /\ promises' = [promises EXCEPT ![r] = {}]
    /\ nextSlot' = [nextSlot EXCEPT ![r] = 0]
    /\ acks' = [acks EXCEPT ![r] = NoAcks]

Send(m) == msgs' = msgs \cup {m}

\* r, whose log is now newLog, moves its commit index to newCommit, and
\* applies the slots that passes, in order, with the values newLog holds
\* there (the state machine runs them). Slots it had applied before (a
\* restart with a lagging hint re-applies them) get the value again; nothing
\* applied is forgotten. (The new log and commit index come as arguments,
\* not primed: TLC builds the function lazily, after the step's primed
\* variables are gone.)
ApplyCommitted(r, newLog, newCommit) ==
    /\ commitIndex' = [commitIndex EXCEPT ![r] = newCommit]
    /\ IF newCommit <= commitIndex[r] THEN UNCHANGED applied
       ELSE applied' = [applied EXCEPT ![r] =
              [s \in 1..Max({Len(applied[r]), newCommit}) |->
                 IF s > commitIndex[r] /\ s <= newCommit THEN newLog[s].val
                 ELSE applied[r][s]]]

\* The value at slot s of the image that l serves: what l applied there.
\* (spec/broken/LowPaxosInstallReplaysLog.tla replaces it.)
ImageValue(r, l, s) == applied[l][s]

\* Thrifty phase 2: an Accept goes first to just enough followers for a Q2
\* quorum with the leader; with Q2 = 1 it still goes to one follower, so
\* that followers learn the value.
ThriftyTargets(r) ==
    { t \in SUBSET (Replicas \ {r}) : Cardinality(t) = IF Q2 > 1 THEN Q2 - 1 ELSE 1 }

-----------------------------------------------------------------------------
(* Phase 1: election.                                                      *)

StartElection(r) ==
    \E round \in 1..MaxRound :
        LET b == <<round, r>> IN
        /\ Greater(b, promised[r])
        /\ promised' = [promised EXCEPT ![r] = b]
        /\ role' = [role EXCEPT ![r] = "candidate"]
        /\ promises' = [promises EXCEPT ![r] = {}]
        /\ nextSlot' = [nextSlot EXCEPT ![r] = 0]
        /\ acks' = [acks EXCEPT ![r] = NoAcks]
        /\ Send([type |-> "Prepare", from |-> r, bal |-> b, commitIndex |-> commitIndex[r]])
        /\ UNCHANGED <<log, commitIndex, logStart, votes, applied>>

\* Phase 1b: promise m's ballot and report every entry above the candidate's
\* commit index. HandlePrepare does so only when it still holds all of them
\* (m.commitIndex >= logStart[r]); spec/broken/LowPaxosPromiseBelowCut.tla
\* promises without that check.
PromiseEffect(r, m) ==
    /\ promised' = [promised EXCEPT ![r] = m.bal]
    /\ BecomeFollower(r)
    /\ Send([type |-> "Promise", from |-> r, to |-> m.from, bal |-> m.bal,
             entries |-> EntriesOf(r, m.commitIndex, MaxSlot),
             commitIndex |-> commitIndex[r]])
    /\ UNCHANGED <<log, commitIndex, logStart, votes, applied>>

\* Each handler HandleX(r) takes the step HandleXMessage(r, m) for some
\* message m in the network; trace validation (conformance/TraceLowPaxos.tla)
\* names the m a logged event handled, so that TLC need not try them all.
\* A replica that has cut slots the candidate has not committed cannot report
\* them, so it does not promise: it answers with a Reject marked lagging. Its
\* ballot is below the candidate's, so all it does is make the candidate ask
\* for catch-up (RequestCatchup).
\* The checks in the core's order (handle_prepare): a Prepare of exactly the
\* promised ballot is a duplicate and is dropped, one below it is refused, and
\* any other is new. (For ballots ordered totally, new means Greater.)
PrepareIsNew(r, m) == m.bal # promised[r] /\ GreaterEq(m.bal, promised[r])

HandlePrepareMessage(r, m) ==
    /\ m \in msgs
    /\ m.type = "Prepare"
    /\ m.from # r
    /\ \/ /\ PrepareIsNew(r, m)
          /\ m.commitIndex >= logStart[r]
          /\ PromiseEffect(r, m)
       \/ /\ PrepareIsNew(r, m)
          /\ m.commitIndex < logStart[r]
          /\ Send([type |-> "Reject", from |-> r, to |-> m.from, bal |-> promised[r],
                   lagging |-> TRUE])
          /\ UNCHANGED <<replicaVars, votes, applied>>
       \* A Prepare of exactly the promised ballot is a duplicate and is dropped.
       \/ /\ Greater(promised[r], m.bal)
          /\ Send([type |-> "Reject", from |-> r, to |-> m.from, bal |-> promised[r],
                   lagging |-> FALSE])
          /\ UNCHANGED <<replicaVars, votes, applied>>

HandlePrepare(r) == \E m \in msgs : HandlePrepareMessage(r, m)

\* Paxos Made Simple §2.2 (P2c): the value a new leader proposes in slot s is
\* the value of the highest ballot reported there, or NoOp where no value was
\* reported. reported is every entry of the promises, the leader's own
\* included; last holds the entries of the promise processed last (the one
\* that completed the quorum), which only a broken variant looks at
\* (spec/broken/LowPaxosLastPromiseValue.tla).
RecoveredValue(reported, last, s) ==
    LET here == {e \in reported : e.slot = s} IN
    IF here = {} THEN NoOp
    ELSE (CHOOSE e \in here : \A f \in here : GreaterEq(e.bal, f.bal)).val

\* The candidate r, now holding promises from a Q1 quorum (itself included),
\* becomes leader of ballot b. reports are the entry sets of all promises,
\* its own log included. In each open slot it proposes RecoveredValue, and it
\* writes and sends all of them in this one step.
BecomeLeader(r, b, reports, last) ==
    LET reported == UNION reports
        top == Max({e.slot : e \in reported} \cup {commitIndex[r]})
        open == (commitIndex[r] + 1)..top
        ValueAt(s) == RecoveredValue(reported, last, s)
    IN
    /\ role' = [role EXCEPT ![r] = "leader"]
    /\ promises' = [promises EXCEPT ![r] = {}]
    /\ nextSlot' = [nextSlot EXCEPT ![r] = top + 1]
    /\ log' = [log EXCEPT ![r] =
                 [s \in Slots |-> IF s \in open THEN [bal |-> b, val |-> ValueAt(s)]
                                  ELSE log[r][s]]]
    /\ acks' = [acks EXCEPT ![r] = [s \in Slots |-> IF s \in open THEN {r} ELSE {}]]
    /\ votes' = votes \cup { [rep |-> r, slot |-> s, bal |-> b, val |-> ValueAt(s)] : s \in open }
    /\ msgs' = msgs \cup
         { [type |-> "Accept", from |-> r, to |-> Replicas \ {r}, bal |-> b, slot |-> s,
            val |-> ValueAt(s), commitIndex |-> commitIndex[r]] : s \in open }

\* A candidate counts a promise for the ballot it is campaigning with only:
\* a promise for an earlier ballot of its own says nothing about the votes
\* cast since (spec/broken/LowPaxosPromiseOtherBallot.tla counts any).
CountsPromise(r, m) == m.bal = promised[r]

HandlePromiseMessage(r, m) ==
    /\ m \in msgs
    /\ m.type = "Promise"
    /\ m.to = r
    /\ role[r] = "candidate"
    /\ CountsPromise(r, m)
    /\ LET received == promises[r] \cup {[from |-> m.from, entries |-> m.entries]}
       IN
       /\ received # promises[r]
       /\ IF Cardinality({p.from : p \in received}) + 1 >= Q1
          THEN BecomeLeader(r, promised[r],
                            {p.entries : p \in received}
                              \cup {EntriesOf(r, commitIndex[r], MaxSlot)},
                            m.entries)
          ELSE /\ promises' = [promises EXCEPT ![r] = received]
               /\ UNCHANGED <<log, logStart, role, nextSlot, acks, msgs, votes, applied>>
    /\ UNCHANGED <<promised, commitIndex, logStart, applied>>

HandlePromise(r) == \E m \in msgs : HandlePromiseMessage(r, m)

HandleRejectMessage(r, m) ==
    /\ m \in msgs
    /\ m.type = "Reject"
    /\ m.to = r
    /\ Greater(m.bal, promised[r])
    /\ promised' = [promised EXCEPT ![r] = m.bal]
    /\ BecomeFollower(r)
    /\ UNCHANGED <<log, commitIndex, logStart, msgs, votes, applied>>

HandleReject(r) == \E m \in msgs : HandleRejectMessage(r, m)

-----------------------------------------------------------------------------
(* Phase 2: the leader proposes, followers accept.                         *)

ProposeValue(r, v, targets) ==
    /\ role[r] = "leader"
    /\ nextSlot[r] \in Slots
    /\ LET s == nextSlot[r]
           b == promised[r]
       IN
       /\ log' = [log EXCEPT ![r][s] = [bal |-> b, val |-> v]]
       /\ acks' = [acks EXCEPT ![r][s] = {r}]
       /\ nextSlot' = [nextSlot EXCEPT ![r] = s + 1]
       /\ votes' = votes \cup {[rep |-> r, slot |-> s, bal |-> b, val |-> v]}
       /\ Send([type |-> "Accept", from |-> r, to |-> targets, bal |-> b, slot |-> s,
                val |-> v, commitIndex |-> commitIndex[r]])
    /\ UNCHANGED <<promised, commitIndex, logStart, role, promises, applied>>

\* The role guard is repeated here so that Propose's body is a conjunction:
\* TLC then names the step Propose in its traces, not ProposeValue.
Propose(r) ==
    /\ role[r] = "leader"
    /\ \E v \in Values, targets \in ThriftyTargets(r) : ProposeValue(r, v, targets)

\* An Accept not yet answered by a quorum is resent to every other replica.
RetryAccept(r, s) ==
    /\ role[r] = "leader"
    /\ s > commitIndex[r]
    /\ s < nextSlot[r]
    /\ Send([type |-> "Accept", from |-> r, to |-> Replicas \ {r}, bal |-> promised[r],
             slot |-> s, val |-> log[r][s].val, commitIndex |-> commitIndex[r]])
    /\ UNCHANGED <<replicaVars, votes, applied>>

\* The follower-side commit rule of HandleAccept and HandleHeartbeat: the
\* leader of ballot b has committed up to leaderCommit, so every slot up to
\* there whose entry this replica accepted in ballot b holds the leader's
\* chosen value. Entries of other ballots may differ from it and are left
\* for catch-up.
FollowerCommit(r, newLog, b, leaderCommit) ==
    Advance(commitIndex[r], {k \in Slots : k <= leaderCommit /\ newLog[k].bal = b})

\* The effect of accepting m at r. HandleAccept applies it only when m's
\* ballot is at least the promised one; spec/broken/LowPaxosLowerBallot.tla
\* applies it without that check.
\* A slot the replica has already committed keeps its entry (the value
\* chosen there); the replica still answers Accepted, as the implementation
\* does, and the vote is recorded, so safety is checked with that answer.
AcceptEffect(r, m) ==
    LET newLog == IF m.slot > commitIndex[r]
                  THEN [log[r] EXCEPT ![m.slot] = [bal |-> m.bal, val |-> m.val]]
                  ELSE log[r] IN
    /\ promised' = [promised EXCEPT ![r] = m.bal]
    /\ log' = [log EXCEPT ![r] = newLog]
    /\ ApplyCommitted(r, newLog, FollowerCommit(r, newLog, m.bal, m.commitIndex))
    /\ BecomeFollower(r)
    /\ votes' = votes \cup {[rep |-> r, slot |-> m.slot, bal |-> m.bal, val |-> m.val]}
    /\ Send([type |-> "Accepted", from |-> r, to |-> m.from, bal |-> m.bal, slot |-> m.slot])
    /\ UNCHANGED logStart

HandleAcceptMessage(r, m) ==
    /\ m \in msgs
    /\ m.type = "Accept"
    /\ r \in m.to
    /\ \/ /\ GreaterEq(m.bal, promised[r])
          /\ AcceptEffect(r, m)
       \/ /\ Greater(promised[r], m.bal)
          /\ Send([type |-> "Reject", from |-> r, to |-> m.from, bal |-> promised[r],
                   lagging |-> FALSE])
          /\ UNCHANGED <<replicaVars, votes, applied>>

HandleAccept(r) == \E m \in msgs : HandleAcceptMessage(r, m)

\* A slot is chosen once a Q2 quorum (the leader included) has accepted it;
\* the leader commits the consecutive prefix of chosen slots.
\* The leader's commit index: the consecutive prefix of slots a Q2 quorum has
\* accepted (spec/broken/LowPaxosLeaderCommitSkipsGap.tla replaces it).
LeaderCommit(r, newAcks) == Advance(commitIndex[r], {s \in Slots : Cardinality(newAcks[s]) >= Q2})

HandleAcceptedMessage(r, m) ==
    /\ m \in msgs
    /\ m.type = "Accepted"
    /\ m.to = r
    /\ role[r] = "leader"
    /\ m.bal = promised[r]
    /\ LET newAcks == [acks[r] EXCEPT ![m.slot] = @ \cup {m.from}] IN
       /\ acks' = [acks EXCEPT ![r] = newAcks]
       /\ ApplyCommitted(r, log[r], LeaderCommit(r, newAcks))
    /\ UNCHANGED <<promised, log, logStart, role, promises, nextSlot, msgs, votes>>

HandleAccepted(r) == \E m \in msgs : HandleAcceptedMessage(r, m)

SendHeartbeat(r) ==
    /\ role[r] = "leader"
    /\ Send([type |-> "Heartbeat", from |-> r, bal |-> promised[r], commitIndex |-> commitIndex[r]])
    /\ UNCHANGED <<replicaVars, votes, applied>>

\* A Heartbeat of a lower ballot is answered with a Reject, as an Accept is.
HandleHeartbeatMessage(r, m) ==
    /\ m \in msgs
    /\ m.type = "Heartbeat"
    /\ m.from # r
    /\ \/ /\ GreaterEq(m.bal, promised[r])
          /\ promised' = [promised EXCEPT ![r] = m.bal]
          /\ ApplyCommitted(r, log[r], FollowerCommit(r, log[r], m.bal, m.commitIndex))
          /\ BecomeFollower(r)
          /\ UNCHANGED <<log, logStart, msgs, votes>>
       \/ /\ Greater(promised[r], m.bal)
          /\ Send([type |-> "Reject", from |-> r, to |-> m.from, bal |-> promised[r],
                   lagging |-> FALSE])
          /\ UNCHANGED <<replicaVars, votes, applied>>

HandleHeartbeat(r) == \E m \in msgs : HandleHeartbeatMessage(r, m)

-----------------------------------------------------------------------------
(* Catch-up: a lagging replica copies committed entries from a replica    *)
(* that has committed further, or, when that replica has cut those         *)
(* entries from its log, receives its state by a transfer (below).         *)

\* A follower or candidate asks when an Accept or a Heartbeat has shown it a
\* commit index ahead of its own. That news may be stale by the time it asks
\* (the leader may be gone), so the guard looks at the message, not at the
\* leader. A candidate also asks when a replica refused it as lagging (on
\* every such Reject, even one older than what it has learned since).
RequestCatchup(r) ==
    /\ role[r] # "leader"
    /\ \/ \E m \in msgs : m.type \in {"Accept", "Heartbeat"} /\ m.commitIndex > commitIndex[r]
       \/ /\ role[r] = "candidate"
          /\ \E m \in msgs : m.type = "Reject" /\ m.to = r /\ m.lagging
    /\ Send([type |-> "CatchupRequest", from |-> r, commitIndex |-> commitIndex[r]])
    /\ UNCHANGED <<replicaVars, votes, applied>>

\* l sends r chunks of an image of its state at index i, which it has
\* committed. The implementation serves an image it opened lately or one of
\* its current rows, whose index is that of the last slot that ran a
\* command, so i may lie below l's cut, and even at or below r's commit
\* index (then r drops the chunks as stale).
SendSnapshot(l, r, i) ==
    /\ i \in 1..commitIndex[l]
    /\ Send([type |-> "SnapshotChunk", from |-> l, to |-> r, index |-> i])

\* Any replica that has committed further serves the request (committed
\* slots are chosen wherever they are held), the leader included: with the
\* committed entries from the slot asked for up to some slot n (a reply is
\* bounded in bytes, and holds at least one entry), or, when it has cut that
\* slot, by starting a state transfer with chunks of an image of index n.
\* (The handlers that choose take the choice as a parameter, so that trace
\* validation can name it: see conformance/TraceLowPaxos.tla.)
HandleCatchupRequestMessage(l, m, n) ==
    /\ m \in msgs
    /\ m.type = "CatchupRequest"
    /\ m.from # l
    /\ commitIndex[l] > m.commitIndex
    /\ IF m.commitIndex < logStart[l]
       THEN SendSnapshot(l, m.from, n)
       ELSE /\ n \in (m.commitIndex + 1)..commitIndex[l]
            /\ Send([type |-> "CatchupReply", from |-> l, to |-> m.from,
                     entries |-> EntriesOf(l, m.commitIndex, n),
                     commitIndex |-> commitIndex[l]])
    /\ UNCHANGED <<replicaVars, votes, applied>>

HandleCatchupRequest(l) == \E m \in msgs, n \in Slots : HandleCatchupRequestMessage(l, m, n)

\* Copying is learning, not voting: no Accepted is sent and no vote is cast.
\* Where the replica already holds the same value in a higher ballot it keeps
\* that entry, so that a later phase 1 still sees the higher ballot it voted in.
\* A leader drops catch-up replies: its commit index advances only on its own
\* quorums, because its followers commit their entries of its ballot on its
\* word (FollowerCommit), and an entry copied over one of its own proposals
\* would break that word.
HandleCatchupReplyMessage(r, m) ==
    /\ m \in msgs
    /\ m.type = "CatchupReply"
    /\ m.to = r
    /\ role[r] # "leader"
    /\ LET held == {e.slot : e \in m.entries}
           upTo == Advance(commitIndex[r], {s \in held : s <= m.commitIndex})
           newLog == [s \in Slots |->
                       IF s > commitIndex[r] /\ s <= upTo
                       THEN LET e == CHOOSE x \in m.entries : x.slot = s
                                current == log[r][s]
                            IN IF current.val = e.val /\ Greater(current.bal, e.bal)
                               THEN current
                               ELSE [bal |-> e.bal, val |-> e.val]
                       ELSE log[r][s]]
       IN
       /\ upTo > commitIndex[r]
       /\ log' = [log EXCEPT ![r] = newLog]
       /\ ApplyCommitted(r, newLog, upTo)
    /\ UNCHANGED <<promised, logStart, role, promises, nextSlot, acks, msgs, votes>>

HandleCatchupReply(r) == \E m \in msgs : HandleCatchupReplyMessage(r, m)

-----------------------------------------------------------------------------
(* Log truncation and state transfer. The implementation persists its KVS *)
(* rows with the log, so it can drop the log up to a slot it has applied. *)
(* A replica that needs dropped slots receives a point-in-time image of    *)
(* the rows instead, in chunks it pulls a window at a time, stages         *)
(* (durably), verifies against the image's digest and installs at once.   *)
(* Only the image's index is modelled: the image is the state after the   *)
(* committed prefix up to it, which Agreement makes the same everywhere.  *)

\* Cut r's log at slot i: entries up to i are dropped.
CutLog(r, i) ==
    /\ logStart' = [logStart EXCEPT ![r] = i]
    /\ log' = [log EXCEPT ![r] = [s \in Slots |-> IF s <= i THEN NoEntry ELSE log[r][s]]]

\* _maybe_snapshot: the cut moves forward, in steps, to below what every
\* replica has applied, or (the log past log_slots_max) to r's own applied
\* index, so at most to r's commit index. Any role cuts. In the
\* implementation every replica does; a model may let only CutReplicas cut,
\* since each replica that may cut doubles the states where it has committed
\* (the others still cut by installing a snapshot).
TruncateLogAt(r, i) ==
    /\ r \in CutReplicas
    /\ i > logStart[r]
    /\ i <= commitIndex[r]
    /\ CutLog(r, i)
    /\ UNCHANGED <<promised, commitIndex, role, promises, nextSlot, acks, msgs, votes, applied>>

TruncateLog(r) ==
    /\ r \in CutReplicas
    /\ logStart[r] < commitIndex[r]
    /\ \E i \in Slots : TruncateLogAt(r, i)

\* A replica in a transfer asks for more chunks of the image it is receiving:
\* a window after each window, and again when none came for a while, from
\* the replica that sent them or, after silent retries, from another one.
\* The durable transfer is the chunk it received (msgs never forgets it
\* unless LoseMessage drops it, which only prunes behaviours).
RequestSnapshotAt(r, i) ==
    /\ role[r] # "leader"
    /\ \E m \in msgs : m.type = "SnapshotChunk" /\ m.to = r /\ m.index = i
    /\ Send([type |-> "SnapshotRequest", from |-> r, index |-> i])
    /\ UNCHANGED <<replicaVars, votes, applied>>

RequestSnapshot(r) ==
    /\ role[r] # "leader"
    /\ \E i \in Slots : RequestSnapshotAt(r, i)

\* Any replica serves a request for chunks: of the image asked for when it
\* still has it open, else of a newer one (the receiver then resumes from
\* it), so of any index it has committed.
HandleSnapshotRequestMessage(l, m, i) ==
    /\ m \in msgs
    /\ m.type = "SnapshotRequest"
    /\ m.from # l
    /\ SendSnapshot(l, m.from, i)
    /\ UNCHANGED <<replicaVars, votes, applied>>

HandleSnapshotRequest(l) == \E m \in msgs, i \in Slots : HandleSnapshotRequestMessage(l, m, i)

\* Staging a chunk changes only rows and cursors, which are not modelled. A
\* leader drops chunks (it never needs them: see HandleCatchupReply).
HandleSnapshotChunkMessage(r, m) ==
    /\ m \in msgs
    /\ m.type = "SnapshotChunk"
    /\ m.to = r
    /\ role[r] # "leader"
    /\ UNCHANGED vars

HandleSnapshotChunk(r) == \E m \in msgs : HandleSnapshotChunkMessage(r, m)

\* After the last chunk of an image of index i, with the staged rows matching
\* its digest, the image becomes r's state at slot i: the log up to i is
\* dropped, entries above it are kept (votes r may still have to report),
\* and the commit index and the cut move to i. A replica that has meanwhile
\* committed as far through the log drops the staged rows instead.
\* The image r installs is the state after the values its sender had applied
\* up to i (applied[l], which only grows: l had committed i when it sent the
\* chunk); the spec reads those values from l's history rather than carrying
\* them in the chunk, which keeps the chunk what a trace logs.
InstallSnapshotAt(r, i) ==
    /\ role[r] # "leader"
    /\ i > commitIndex[r]
    /\ \E m \in msgs : /\ m.type = "SnapshotChunk" /\ m.to = r /\ m.index = i
                       /\ applied' = [applied EXCEPT ![r] =
                            [s \in 1..Max({Len(applied[r]), i}) |->
                               IF s > commitIndex[r] /\ s <= i THEN ImageValue(r, m.from, s)
                               ELSE applied[r][s]]]
    /\ CutLog(r, i)
    /\ commitIndex' = [commitIndex EXCEPT ![r] = i]
    /\ UNCHANGED <<promised, role, promises, nextSlot, acks, msgs, votes>>

InstallSnapshot(r) ==
    /\ role[r] # "leader"
    /\ \E i \in Slots : InstallSnapshotAt(r, i)

-----------------------------------------------------------------------------
(* Faults.                                                                 *)

\* A crash loses the volatile state; the replica restarts as a follower with
\* its durable promised ballot and log, and with the commit index it last
\* wrote as a hint. The implementation writes the hint lazily (with other
\* records, or after a quiet while), so it may lag the commit index the
\* replica had: RestartHints(r) with LaggingCommitHint. It is never below the
\* cut, since the rows persisted with the cut cover every slot up to it.
RestartHints(r) == IF LaggingCommitHint THEN logStart[r]..commitIndex[r] ELSE {commitIndex[r]}

Crash(r) ==
    /\ \E hint \in RestartHints(r) : commitIndex' = [commitIndex EXCEPT ![r] = hint]
    /\ BecomeFollower(r)
    /\ UNCHANGED <<promised, log, logStart, msgs, votes, applied>>

\* A leader that has not heard from a quorum for an election timeout stops
\* leading (timers are not modelled: it may do so at any time).
StepDown(r) ==
    /\ role[r] = "leader"
    /\ BecomeFollower(r)
    /\ UNCHANGED <<promised, log, commitIndex, logStart, msgs, votes, applied>>

LoseMessage == \E m \in msgs :
    /\ msgs' = msgs \ {m}
    /\ UNCHANGED <<replicaVars, votes, applied>>

-----------------------------------------------------------------------------

Init ==
    /\ promised = [r \in Replicas |-> ZeroBallot]
    /\ log = [r \in Replicas |-> [s \in Slots |-> NoEntry]]
    /\ commitIndex = [r \in Replicas |-> 0]
    /\ logStart = [r \in Replicas |-> 0]
    /\ role = [r \in Replicas |-> "follower"]
    /\ promises = [r \in Replicas |-> {}]
    /\ nextSlot = [r \in Replicas |-> 0]
    /\ acks = [r \in Replicas |-> NoAcks]
    /\ msgs = {}
    /\ votes = {}
    /\ applied = [r \in Replicas |-> <<>>]

\* One disjunct per action, so that TLC names each step of a trace after its
\* action (and so after the handler in the Python core).
Next ==
    \/ \E r \in Replicas : StartElection(r)
    \/ \E r \in Replicas : HandlePrepare(r)
    \/ \E r \in Replicas : HandlePromise(r)
    \/ \E r \in Replicas : HandleReject(r)
    \/ \E r \in Replicas : Propose(r)
    \/ \E r \in Replicas, s \in Slots : RetryAccept(r, s)
    \/ \E r \in Replicas : HandleAccept(r)
    \/ \E r \in Replicas : HandleAccepted(r)
    \/ \E r \in Replicas : SendHeartbeat(r)
    \/ \E r \in Replicas : HandleHeartbeat(r)
    \/ \E r \in Replicas : RequestCatchup(r)
    \/ \E l \in Replicas : HandleCatchupRequest(l)
    \/ \E r \in Replicas : HandleCatchupReply(r)
    \/ \E r \in Replicas : TruncateLog(r)
    \/ \E r \in Replicas : RequestSnapshot(r)
    \/ \E l \in Replicas : HandleSnapshotRequest(l)
    \/ \E r \in Replicas : HandleSnapshotChunk(r)
    \/ \E r \in Replicas : InstallSnapshot(r)
    \/ \E r \in Replicas : Crash(r)
    \/ \E r \in Replicas : StepDown(r)
    \/ LoseMessage

Spec == Init /\ [][Next]_vars

\* The consensus core alone: elections, proposals and accepts, with message
\* loss; no heartbeats, retries, catch-up, cuts, transfers, crashes or
\* step-downs. Every behaviour of it is a behaviour of Spec. Models that look
\* for a bug of phase 1 or 2 deep in a run with two rounds per replica use it
\* (spec/broken/*.cfg): the actions left out only add states at every depth.
ConsensusNext ==
    \/ \E r \in Replicas : StartElection(r)
    \/ \E r \in Replicas : HandlePrepare(r)
    \/ \E r \in Replicas : HandlePromise(r)
    \/ \E r \in Replicas : HandleReject(r)
    \/ \E r \in Replicas : Propose(r)
    \/ \E r \in Replicas : HandleAccept(r)
    \/ \E r \in Replicas : HandleAccepted(r)
    \/ LoseMessage

ConsensusSpec == Init /\ [][ConsensusNext]_vars

\* State constraint: bounds the messages in flight, which makes the state
\* space finite together with MaxRound and MaxSlot. It cuts off behaviours,
\* not safety: a state with more messages is one where some could be lost.
MessageBound == Cardinality(msgs) <= MaxMessages

ValueSymmetry == Permutations(Values)

-----------------------------------------------------------------------------
(* Safety.                                                                 *)

\* Value v is chosen in slot s once a Q2 quorum accepted it in one ballot:
\* ChosenPairs holds those <<s, v>>. (Computed once per use: TLC does not
\* cache a definition that depends on the state, so the properties below
\* bind it with LET.)
ChosenPairs ==
    { <<x.slot, x.val>> :
        x \in { y \in votes :
                  Cardinality({z.rep : z \in {w \in votes : w.slot = y.slot /\ w.bal = y.bal
                                                            /\ w.val = y.val}}) >= Q2 } }

Chosen(s, v) == <<s, v>> \in ChosenPairs

ChosenValues(s) == {p[2] : p \in {q \in ChosenPairs : q[1] = s}}

\* Paxos Made Simple §2.1: at most one value is chosen per slot.
Agreement ==
    LET chosen == ChosenPairs IN
    \A s \in Slots : Cardinality({p \in chosen : p[1] = s}) <= 1

\* A committed slot that r still holds (above its cut).
HeldCommitted(r, s) == s > logStart[r] /\ s <= commitIndex[r]

\* The committed slots two replicas both still hold carry the same value.
CommittedPrefixesAgree ==
    \A r1, r2 \in Replicas : \A s \in Slots :
        (HeldCommitted(r1, s) /\ HeldCommitted(r2, s)) => log[r1][s].val = log[r2][s].val

\* What a replica holds committed was chosen (stronger than the above).
CommittedIsChosen ==
    LET chosen == ChosenPairs IN
    \A r \in Replicas : \A s \in Slots :
        HeldCommitted(r, s) => <<s, log[r][s].val>> \in chosen

\* Every slot up to a replica's cut is chosen: a replica cuts only what it
\* has committed, and installs only an image of a prefix that its sender had
\* committed. (Which value is in the image is not modelled; the image is the
\* state after the chosen values, which Agreement makes unique.)
CutIsChosen ==
    LET chosenSlots == {p[1] : p \in ChosenPairs} IN
    \A r \in Replicas : \A s \in Slots : s <= logStart[r] => s \in chosenSlots

\* The cut lies at or below the commit index, nothing is held below it, and
\* every committed slot has been applied. (Not a safety property: it says
\* the spec keeps its own bookkeeping.)
LogCutWellFormed ==
    \A r \in Replicas :
        /\ logStart[r] <= commitIndex[r]
        /\ \A s \in Slots : s <= logStart[r] => log[r][s] = NoEntry
        /\ Len(applied[r]) >= commitIndex[r]

\* The refinement mapping. The committed log of ReplicatedLog is what the
\* replicas applied: the longest prefix of slots that some replica has
\* applied and on which all that have applied it agree. A replica applies a
\* slot when its commit index passes it (or installs an image over it), and
\* `applied` keeps it across cuts, so the mapping is read from the replicas'
\* commit points, not from the votes. It fails when a replica applies a value
\* that another applied differently (the log shrinks back to before that
\* slot), when one re-applies a slot with another value, or when a replica
\* applies a value that no leader proposed. A value counts as proposed once a
\* leader wrote it into its log, which is its own vote (votes is the history
\* of those writes; a leader's proposal is a client's request reaching it).
AppliedValuesAt(s) == {applied[r][s] : r \in {q \in Replicas : s <= Len(applied[q])}}
CommittedLog ==
    LET length == Advance(0, {s \in Slots : Cardinality(AppliedValuesAt(s)) = 1})
    IN [i \in 1..length |-> CHOOSE v \in AppliedValuesAt(i) : TRUE]
ProposedValues == {x.val : x \in votes} \cap Values

Abstract == INSTANCE ReplicatedLog
    WITH committed <- CommittedLog, proposed <- ProposedValues, MaxLen <- MaxSlot

\* Abstract!Spec, written with the stuttering cases first. It is the same
\* formula: [][A]_v is [](A \/ v' = v), and the mapping v depends on applied
\* and votes alone, so a step that keeps both keeps v. But TLC evaluates
\* disjuncts in order and recomputes the mapping at every reference inside
\* Abstract!Next, so this way it does that only on the steps that change them.
AbstractVars == <<CommittedLog, ProposedValues>>
ImplementsReplicatedLog ==
    /\ Abstract!Init
    /\ [][UNCHANGED <<applied, votes>> \/ UNCHANGED AbstractVars \/ Abstract!Next]_AbstractVars
=============================================================================
