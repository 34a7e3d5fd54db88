-------------------------------- MODULE EPaxos --------------------------------
(***************************************************************************)
(* Egalitarian Paxos at the level of messages, in the house style of       *)
(* spec/LowPaxos.tla and spec/VR.tla: a set-of-messages network, durable   *)
(* state, and action names that are the names of the handlers of the      *)
(* Python core (impl/lowpaxos/protocols/epaxos/) and of the events in its  *)
(* traces (the protocol decisions of issue 9; docs/spec.md, "EPaxos").     *)
(*                                                                         *)
(* Protocol: Moraru, Andersen, Kaminsky, "There is more consensus in       *)
(* egalitarian parliaments", SOSP 2013, §4 (PreAccept, fast and slow path, *)
(* Accept, Commit, execution §4.3.2), with the explicit-prepare recovery  *)
(* of the technical report CMU-PDL-13-111 §4.5, corrected as Sutra ("On    *)
(* the correctness of Egalitarian Paxos", IPL 2020) and Ryabinin, Gotsman, *)
(* Sutra (EPaxos*, OPODIS 2025) require: every replica keeps per instance  *)
(* TWO ballots, `ballot` (the highest promised) and `vballot` (the ballot  *)
(* at which the value it holds was last pre-accepted or accepted). The    *)
(* published spec and code keep one, and concurrent recoveries can then   *)
(* commit two values in one instance: spec/broken/EPaxosSingleBallot.tla *)
(* shows TLC finding it.                                                   *)
(*                                                                         *)
(* Decisions of the implementation that the spec follows:                  *)
(*  - N = 2F+1 replicas; an instance <<L, i>> is replica L's i-th; the     *)
(*    initial ballot of <<L, i>> is <<0, L>>; ballots are <<round, replica>> *)
(*    and compare lexicographically;                                       *)
(*  - deps are VECTORS: deps[R] = d means "every instance <<R, j>>, j <= d" *)
(*    (the reference implementation's execution); L's own instance <<L, i>> *)
(*    always has deps[L] >= i - 1 (a replica's instances are chained);    *)
(*  - the fast quorum is FastQuorumSize replicas including the leader,     *)
(*    2F by default (SOSP §4.3's simple fast quorum): with it the simple   *)
(*    recovery below is correct without the TR's TryPreAccept. Any other  *)
(*    value is only for the negative checks;                               *)
(*  - the fast path is taken at the initial ballot only, when the leader  *)
(*    has not promised a higher ballot and FastQuorumSize - 1 replies are *)
(*    all `unchanged` (equal to the leader's initial seq and deps);        *)
(*  - recovery decides from F+1 PrepareOK (the recoverer's own state       *)
(*    counts as one) by the five cases of HandlePrepareOK below.           *)
(*                                                                         *)
(* Differences from the contract's names, on purpose:                     *)
(*  - a command is a model value of Values; the batch of the core is one  *)
(*    value here (one command); NoOp is the empty batch, and also what a *)
(*    replica holds for an instance it knows nothing of (status "none"); *)
(*  - what a replica has executed is the sequence executed[r] of instance *)
(*    ids, in execution order, instead of a status "executed";            *)
(*  - keys: KeyGroups is a set of sets of commands, one set per key (a    *)
(*    command touches one key); Reads are the commands that only read.    *)
(*    dbsize/scan (every key) and multi-key batches are not modelled;     *)
(*  - the leader's bookkeeping is read from the network and from its own *)
(*    durable state, as in VR.tla: a message in msgs is one the replica   *)
(*    may have received. So Crash (which in the core loses only that      *)
(*    bookkeeping: everything else is persisted before a message leaves)  *)
(*    changes no variable here: a restarted replica that uses replies it  *)
(*    received before is a behaviour the spec allows anyway (each reply is *)
(*    a fact about its sender);                                            *)
(*  - the network is a set of messages, never consumed: any message may   *)
(*    be delivered any number of times, in any order, or never (so no     *)
(*    LoseMessage); a handler acts on a message once per ballot;          *)
(*  - timers are not modelled: a replica may start a recovery of any     *)
(*    instance whose leader proposed it and that it has not committed.   *)
(*    Thrifty sending is not modelled (every replica may receive);       *)
(*  - model knobs (docs/spec.md): Proposers, Recoverers/RecoveredLeaders, *)
(*    Executing say which replicas propose, recover which leaders'        *)
(*    instances and execute; SendNacks = FALSE leaves Nacks out (they     *)
(*    change no variable: no HandleNack); MessageBound bounds the sends.  *)
(*  - negative checks replace VBallotOnPrepare, TakesAccept or GapFiller  *)
(*    (spec/broken/EPaxos*.tla) or set FastQuorumSize below 2F.           *)
(***************************************************************************)
EXTENDS Naturals, FiniteSets, Sequences, TLC

CONSTANTS
    Replicas,        \* replica ids 1..N, N = 2F + 1
    KeyGroups,       \* the commands, grouped by the key they touch (a set of sets)
    Reads,           \* the commands that only read their key; the others write
    NoOp,            \* the no-op (empty batch), and "no command known"
    Proposers,       \* the replicas that take client commands in this model
    MaxInstance,     \* a replica leads instances 1..MaxInstance
    MaxRound,        \* recovery ballots have rounds 1..MaxRound
    Recoverers,      \* the replicas that may start recoveries in this model
    RecoveredLeaders, \* ... of the instances of these leaders
    SendNacks,       \* whether refusals send Nack (FALSE: a refusal drops the message)
    Executing,       \* the replicas whose execution the model follows
    MaxMessages,     \* state constraint: at most this many messages ever sent
    FastQuorumSize   \* replicas in a fast quorum, the leader included (2F)

N == Cardinality(Replicas)
F == (N - 1) \div 2
Values == UNION KeyGroups

ASSUME Replicas = 1..N /\ N % 2 = 1
ASSUME NoOp \notin Values
ASSUME \A g1, g2 \in KeyGroups : g1 # g2 => g1 \cap g2 = {}
ASSUME Reads \subseteq Values /\ Proposers \subseteq Replicas
ASSUME Recoverers \subseteq Replicas /\ RecoveredLeaders \subseteq Replicas
ASSUME SendNacks \in BOOLEAN /\ Executing \subseteq Replicas /\ MaxMessages \in Nat
ASSUME MaxInstance \in Nat \ {0} /\ MaxRound \in Nat /\ FastQuorumSize \in 1..N

Instances == Replicas \X (1..MaxInstance)
Leader(inst) == inst[1]
Ballots == (0..MaxRound) \X Replicas
InitialBallot(inst) == <<0, Leader(inst)>>
BallotLess(a, b) == a[1] < b[1] \/ (a[1] = b[1] /\ a[2] < b[2])
BallotLeq(a, b) == a = b \/ BallotLess(a, b)
Owner(b) == b[2]

DepVectors == [Replicas -> 0..MaxInstance]
NoDeps == [R \in Replicas |-> 0]
\* The instances a dependency vector names (vector semantics), but `self`.
DepSet(d, self) == {J \in Instances : J[2] <= d[J[1]]} \ {self}

Statuses == {"none", "preaccepted", "accepted", "committed"}

\* Interference (the contract): the same key, at least one writes. NoOp
\* interferes with nothing.
Key(c) == CHOOSE g \in KeyGroups : c \in g
Interferes(a, b) ==
    /\ a # NoOp /\ b # NoOp
    /\ Key(a) = Key(b)
    /\ (a \notin Reads \/ b \notin Reads)

VARIABLES
    status,      \* durable: status[r][inst]
    ballot,      \* durable: the highest ballot r promised for inst
    vballot,     \* durable: the ballot at which r last pre-accepted/accepted inst
    cmd,         \* durable: the command r holds for inst (NoOp if none)
    seq,         \* durable: its seq
    deps,        \* durable: its dependency vector
    unchanged,   \* durable: pre-accepted at the initial ballot with the leader's seq, deps
    executed,    \* executed[r]: the instances r executed, in execution order
    msgs,        \* the network
    proposed,    \* history: [inst, cmd] for each command a leader proposed
    committedValues  \* history: inst -> every [cmd, seq, deps] any replica committed

replicaVars == <<status, ballot, vballot, cmd, seq, deps, unchanged>>
vars == <<replicaVars, executed, msgs, proposed, committedValues>>

Message ==
         [type : {"PreAccept"}, ballot : Ballots, inst : Instances, cmd : Values \cup {NoOp},
          seq : Nat, deps : DepVectors]
    \cup [type : {"PreAcceptOK"}, ballot : Ballots, inst : Instances, seq : Nat,
          deps : DepVectors, unchanged : BOOLEAN, from : Replicas]
    \cup [type : {"Accept"}, ballot : Ballots, inst : Instances, cmd : Values \cup {NoOp},
          seq : Nat, deps : DepVectors]
    \cup [type : {"AcceptOK"}, ballot : Ballots, inst : Instances, from : Replicas]
    \cup [type : {"Commit"}, inst : Instances, cmd : Values \cup {NoOp}, seq : Nat,
          deps : DepVectors]
    \cup [type : {"Prepare"}, ballot : Ballots, inst : Instances]
    \cup [type : {"PrepareOK"}, ballot : Ballots, inst : Instances, from : Replicas,
          status : Statuses, cmd : Values \cup {NoOp}, seq : Nat, deps : DepVectors,
          vballot : Ballots, unchanged : BOOLEAN]
    \cup [type : {"Nack"}, inst : Instances, ballot : Ballots, to : Replicas]

TypeOK ==
    /\ status \in [Replicas -> [Instances -> Statuses]]
    /\ ballot \in [Replicas -> [Instances -> Ballots]]
    /\ vballot \in [Replicas -> [Instances -> Ballots]]
    /\ cmd \in [Replicas -> [Instances -> Values \cup {NoOp}]]
    /\ seq \in [Replicas -> [Instances -> Nat]]
    /\ deps \in [Replicas -> [Instances -> DepVectors]]
    /\ unchanged \in [Replicas -> [Instances -> BOOLEAN]]
    /\ \A r \in Replicas : executed[r] \in Seq(Instances)
    /\ msgs \subseteq Message
    /\ proposed \subseteq [inst : Instances, cmd : Values]
    /\ committedValues \in [Instances -> SUBSET [cmd : Values \cup {NoOp}, seq : Nat,
                                                 deps : DepVectors]]

-----------------------------------------------------------------------------
(* Helpers.                                                                *)

Max(S) == CHOOSE x \in S : \A y \in S : x >= y
MaxVector(a, b) == [R \in Replicas |-> IF a[R] >= b[R] THEN a[R] ELSE b[R]]
Range(s) == {s[k] : k \in DOMAIN s}
Send(m) == msgs' = msgs \cup {m}

\* The instances other than `self` that r holds with a command interfering with c.
Conflicts(r, self, c) ==
    {J \in Instances \ {self} : status[r][J] # "none" /\ Interferes(cmd[r][J], c)}

\* SOSP §4.3 Phase 1: 1 + the highest seq of the interfering instances r knows,
\* and the vector of the latest interfering instance of each replica.
LocalSeq(r, self, c) == 1 + Max({seq[r][J] : J \in Conflicts(r, self, c)} \cup {0})
LocalDeps(r, self, c) ==
    [R \in Replicas |-> Max({J[2] : J \in {K \in Conflicts(r, self, c) : K[1] = R}} \cup {0})]

\* The deps a replica takes for instance inst: the element-wise maximum of d0
\* (what the message or the reports carry) and its own conflicts, but the
\* entry of inst's leader L, left as d0 has it: L's own instance space is L's
\* business (the core's Conflicts.attributes skips it, as the reference
\* implementation's updateAttributes does). Consistency does not need it: a
\* later instance <<L, j>> has deps[L] >= j - 1 (L's chain), so it depends on
\* <<L, i>> itself.
MergeDeps(inst, d0, local) ==
    [R \in Replicas |-> IF R = Leader(inst) \/ d0[R] >= local[R] THEN d0[R] ELSE local[R]]

\* r holds instance inst with this state.
SetState(r, inst, st, b, vb, c, s, d, u) ==
    /\ status' = [status EXCEPT ![r][inst] = st]
    /\ ballot' = [ballot EXCEPT ![r][inst] = b]
    /\ vballot' = [vballot EXCEPT ![r][inst] = vb]
    /\ cmd' = [cmd EXCEPT ![r][inst] = c]
    /\ seq' = [seq EXCEPT ![r][inst] = s]
    /\ deps' = [deps EXCEPT ![r][inst] = d]
    /\ unchanged' = [unchanged EXCEPT ![r][inst] = u]

\* r commits inst with (c, s, d), persists it, and sends Commit to all. The
\* unchanged flag stays as it was (the core's: TRUE at a leader that committed
\* on the fast path); nothing reads it once the instance is committed
\* (recovery's case 1 comes first). A replica that learns the value from a
\* Commit holds it FALSE (HandleCommit).
CommitValue(r, inst, c, s, d) ==
    /\ SetState(r, inst, "committed", ballot[r][inst], vballot[r][inst], c, s, d,
                unchanged[r][inst])
    /\ committedValues' = [committedValues EXCEPT ![inst] = @ \cup {[cmd |-> c, seq |-> s, deps |-> d]}]
    /\ Send([type |-> "Commit", inst |-> inst, cmd |-> c, seq |-> s, deps |-> d])

\* r, the owner of ballot b, runs Phase 2 (Accept) at b with (c, s, d).
StartAccept(r, inst, b, c, s, d) ==
    /\ SetState(r, inst, "accepted", b, b, c, s, d, FALSE)
    /\ Send([type |-> "Accept", ballot |-> b, inst |-> inst, cmd |-> c, seq |-> s, deps |-> d])
    /\ UNCHANGED committedValues

\* r, the owner of ballot b, runs Phase 1 (PreAccept) at b for c, starting from
\* (s0, d0) and merging its own conflicts (a recoverer: TR §4.5, case 4).
StartPreAccept(r, inst, b, c, s0, d0) ==
    LET s == IF s0 >= LocalSeq(r, inst, c) THEN s0 ELSE LocalSeq(r, inst, c)
        d == MergeDeps(inst, d0, LocalDeps(r, inst, c))
    IN
    /\ SetState(r, inst, "preaccepted", b, b, c, s, d, b = InitialBallot(inst))
    /\ Send([type |-> "PreAccept", ballot |-> b, inst |-> inst, cmd |-> c, seq |-> s, deps |-> d])
    /\ UNCHANGED committedValues

\* r refuses a message of ballot b for inst: it tells b's owner its promise.
\* Receiving a Nack changes no variable (see HandlePrepareOK's end): leaving
\* Nacks out (SendNacks = FALSE, the CI model) leaves out no behaviour of the
\* other variables, so the safety checks stay sound without them.
SendNack(r, inst, b) ==
    /\ SendNacks
    /\ BallotLess(b, ballot[r][inst])
    /\ Send([type |-> "Nack", inst |-> inst, ballot |-> ballot[r][inst], to |-> Owner(b)])
    /\ UNCHANGED <<replicaVars, executed, proposed, committedValues>>

-----------------------------------------------------------------------------
(* Phase 1: PreAccept (SOSP §4.3).                                          *)

\* The next instance of r: one past the last of its own instances it holds.
NextInstance(r) == 1 + Max({i \in 1..MaxInstance : status[r][<<r, i>>] # "none"} \cup {0})

\* A client command c reaches replica r (not yet proposed anywhere): r takes
\* its next instance <<r, i>>, computes seq and deps from what it knows (deps[r]
\* >= i - 1: chained), persists it pre-accepted at the initial ballot and sends
\* PreAccept to the fast quorum.
ProposeCommand(r, c) ==
    LET i == NextInstance(r)
        inst == <<r, i>>
    IN
    /\ r \in Proposers
    /\ i <= MaxInstance
    /\ ~\E p \in proposed : p.cmd = c
    /\ ballot[r][inst] = InitialBallot(inst)
    /\ LET d == LocalDeps(r, inst, c)
           dChained == [d EXCEPT ![r] = IF @ >= i - 1 THEN @ ELSE i - 1]
       IN StartPreAccept(r, inst, InitialBallot(inst), c, LocalSeq(r, inst, c), dChained)
    /\ proposed' = proposed \cup {[inst |-> inst, cmd |-> c]}
    /\ UNCHANGED executed

Propose(r) ==
    /\ r \in Proposers
    /\ \E c \in Values : ProposeCommand(r, c)

\* r has answered a PreAccept or an Accept of inst at ballot b or above.
RepliedAtOrAbove(r, inst, b) ==
    \E o \in msgs : /\ o.type \in {"PreAcceptOK", "AcceptOK"} /\ o.inst = inst /\ o.from = r
                   /\ BallotLeq(b, o.ballot)

\* A replica that has promised no higher ballot, and has not acted at this
\* ballot or a higher one, merges seq and deps with its own conflicts,
\* persists the instance pre-accepted and replies PreAcceptOK; `unchanged`
\* when the ballot is the initial one and nothing was added. A lower ballot:
\* Nack. A committed instance is final: the message is dropped.
HandlePreAcceptMessage(r, m) ==
    /\ m \in msgs
    /\ m.type = "PreAccept"
    /\ Owner(m.ballot) # r
    /\ status[r][m.inst] # "committed"
    /\ \/ /\ BallotLeq(ballot[r][m.inst], m.ballot)
          /\ ~RepliedAtOrAbove(r, m.inst, m.ballot)
          /\ LET inst == m.inst
                 s == IF m.seq >= LocalSeq(r, inst, m.cmd) THEN m.seq ELSE LocalSeq(r, inst, m.cmd)
                 d == MergeDeps(inst, m.deps, LocalDeps(r, inst, m.cmd))
                 u == m.ballot = InitialBallot(inst) /\ s = m.seq /\ d = m.deps
             IN
             /\ SetState(r, inst, "preaccepted", m.ballot, m.ballot, m.cmd, s, d, u)
             /\ Send([type |-> "PreAcceptOK", ballot |-> m.ballot, inst |-> inst, seq |-> s,
                      deps |-> d, unchanged |-> u, from |-> r])
          /\ UNCHANGED <<executed, proposed, committedValues>>
       \/ SendNack(r, m.inst, m.ballot)

HandlePreAccept(r) == \E m \in msgs : HandlePreAcceptMessage(r, m)

\* The PreAcceptOKs for inst at ballot b from distinct replicas.
PreAcceptOKs(inst, b) == {o \in msgs : o.type = "PreAcceptOK" /\ o.inst = inst /\ o.ballot = b}
Distinct(Q) == Cardinality({q.from : q \in Q}) = Cardinality(Q)

\* r leads Phase 1 of inst at ballot b: it owns b, has promised nothing higher
\* and holds inst pre-accepted at b.
LeadsPhase1(r, inst, b) ==
    /\ Owner(b) = r
    /\ ballot[r][inst] = b
    /\ vballot[r][inst] = b
    /\ status[r][inst] = "preaccepted"

\* The fast path (SOSP §4.3): at the initial ballot, FastQuorumSize - 1 replies
\* all unchanged: commit the leader's own seq and deps at once. The slow path:
\* F or more replies (a majority with the leader): seq is the highest, deps the
\* element-wise maximum of all of them (the leader's own included), then Phase 2.
\* More than F: a leader waiting for the fast quorum merges every reply it has
\* when one disagrees or its PreAccept times out (the core's PreAcceptTimeout),
\* so at most SlowPathMax; at N = 3 (FastQuorumSize - 1 = F) exactly F.
\* The reply that completes the quorum is m. (With FastQuorumSize = 1, the
\* negative check, the leader commits on its own at the first reply it gets.)
\* The slow path with the replies Q: at a recovery ballot; or a reply changed
\* (no fast path then); or the fast quorum needs more replies than F (the
\* leader may give up waiting for them).
SlowPathMax == IF FastQuorumSize - 1 > F THEN FastQuorumSize - 1 ELSE F
SlowPathAllowed(inst, b, Q) ==
    \/ b # InitialBallot(inst)
    \/ \E q \in Q : ~q.unchanged
    \/ FastQuorumSize - 1 # F

HandlePreAcceptOKMessage(r, m) ==
    /\ m \in msgs
    /\ m.type = "PreAcceptOK"
    /\ LET inst == m.inst
           b == m.ballot
       IN
       /\ LeadsPhase1(r, inst, b)
       /\ \/ /\ b = InitialBallot(inst)
             /\ \E Q \in SUBSET PreAcceptOKs(inst, b) :
                  /\ m \in Q \/ Q = {}
                  /\ Cardinality(Q) = FastQuorumSize - 1
                  /\ Distinct(Q)
                  /\ \A q \in Q : q.unchanged
             /\ CommitValue(r, inst, cmd[r][inst], seq[r][inst], deps[r][inst])
          \/ \E Q \in SUBSET PreAcceptOKs(inst, b) :
                /\ m \in Q
                /\ Cardinality(Q) \in F..SlowPathMax
                /\ Distinct(Q)
                /\ SlowPathAllowed(inst, b, Q)
                /\ LET s == Max({q.seq : q \in Q} \cup {seq[r][inst]})
                       d == [R \in Replicas |-> Max({q.deps[R] : q \in Q} \cup {deps[r][inst][R]})]
                   IN StartAccept(r, inst, b, cmd[r][inst], s, d)
    /\ UNCHANGED <<executed, proposed>>

HandlePreAcceptOK(r) == \E m \in msgs : HandlePreAcceptOKMessage(r, m)

-----------------------------------------------------------------------------
(* Phase 2: Accept (SOSP §4.3, TR §4.5).                                    *)

\* Ballot at least the promised one, not accepted at this ballot already:
\* accept, persist, reply AcceptOK. Lower: Nack. Committed: dropped.
\* A committed instance is final. (spec/broken/EPaxosAcceptAfterCommit.tla
\* replaces this.)
TakesAccept(r, inst) == status[r][inst] # "committed"

HandleAcceptMessage(r, m) ==
    /\ m \in msgs
    /\ m.type = "Accept"
    /\ Owner(m.ballot) # r
    /\ TakesAccept(r, m.inst)
    /\ \/ /\ BallotLeq(ballot[r][m.inst], m.ballot)
          /\ ~\E o \in msgs : o.type = "AcceptOK" /\ o.inst = m.inst /\ o.from = r
                              /\ BallotLeq(m.ballot, o.ballot)
          /\ SetState(r, m.inst, "accepted", m.ballot, m.ballot, m.cmd, m.seq, m.deps, FALSE)
          /\ Send([type |-> "AcceptOK", ballot |-> m.ballot, inst |-> m.inst, from |-> r])
          /\ UNCHANGED <<executed, proposed, committedValues>>
       \/ SendNack(r, m.inst, m.ballot)

HandleAccept(r) == \E m \in msgs : HandleAcceptMessage(r, m)

\* The owner of ballot b, still at b with inst accepted at b, commits with
\* F AcceptOKs (F + 1 with its own).
HandleAcceptOKMessage(r, m) ==
    /\ m \in msgs
    /\ m.type = "AcceptOK"
    /\ LET inst == m.inst
           b == m.ballot
       IN
       /\ Owner(b) = r
       /\ ballot[r][inst] = b
       /\ vballot[r][inst] = b
       /\ status[r][inst] = "accepted"
       /\ \E Q \in SUBSET {o \in msgs : o.type = "AcceptOK" /\ o.inst = inst /\ o.ballot = b} :
            /\ m \in Q
            /\ Cardinality(Q) = F
            /\ Distinct(Q)
       /\ CommitValue(r, inst, cmd[r][inst], seq[r][inst], deps[r][inst])
    /\ UNCHANGED <<executed, proposed>>

HandleAcceptOK(r) == \E m \in msgs : HandleAcceptOKMessage(r, m)

\* Commit: a replica that has not committed inst takes the value.
HandleCommitMessage(r, m) ==
    /\ m \in msgs
    /\ m.type = "Commit"
    /\ status[r][m.inst] # "committed"
    /\ SetState(r, m.inst, "committed", ballot[r][m.inst], vballot[r][m.inst], m.cmd, m.seq,
                m.deps, FALSE)
    /\ committedValues' = [committedValues EXCEPT ![m.inst] =
                              @ \cup {[cmd |-> m.cmd, seq |-> m.seq, deps |-> m.deps]}]
    /\ UNCHANGED <<executed, msgs, proposed>>

HandleCommit(r) == \E m \in msgs : HandleCommitMessage(r, m)

-----------------------------------------------------------------------------
(* Recovery: explicit prepare (TR §4.5), with separate ballots.            *)

\* The ballots a recoverer r may use for inst: any of its own above its
\* promise, rounds 1..MaxRound (the core takes one round above every ballot it
\* has seen for the instance, a Nack's included; any is as good for safety).
RecoveryBallots(r, inst) == {b \in (1..MaxRound) \X {r} : BallotLess(ballot[r][inst], b)}

\* What a Prepare does to the accepted ballot of the replica that promises:
\* nothing (the value keeps the ballot it was accepted at). The single-ballot
\* protocol of the paper (spec/broken/EPaxosSingleBallot.tla) replaces this.
VBallotOnPrepare(r, inst, b) == vballot[r][inst]

\* r starts a recovery of an instance its leader proposed and that r has not
\* committed (in the core: after a timeout waiting on it): it promises a
\* higher ballot b of its own and sends Prepare.
StartRecoveryOf(r, inst) ==
    /\ r \in Recoverers
    /\ Leader(inst) \in RecoveredLeaders
    /\ status[r][inst] # "committed"
    /\ status[Leader(inst)][inst] # "none"
    /\ \E b \in RecoveryBallots(r, inst) :
       /\ ballot' = [ballot EXCEPT ![r][inst] = b]
       /\ vballot' = [vballot EXCEPT ![r][inst] = VBallotOnPrepare(r, inst, b)]
       /\ Send([type |-> "Prepare", ballot |-> b, inst |-> inst])
    /\ UNCHANGED <<status, cmd, seq, deps, unchanged, executed, proposed, committedValues>>

StartRecovery(r) ==
    /\ r \in Recoverers
    /\ \E inst \in Instances : StartRecoveryOf(r, inst)

\* A higher ballot: promise it, persist, reply PrepareOK with what r holds
\* (its status, command, seq, deps, the ballot it holds them at and the
\* unchanged flag). Otherwise Nack.
HandlePrepareMessage(r, m) ==
    /\ m \in msgs
    /\ m.type = "Prepare"
    /\ Owner(m.ballot) # r
    /\ \/ /\ BallotLess(ballot[r][m.inst], m.ballot)
          /\ LET inst == m.inst
                 vb == VBallotOnPrepare(r, inst, m.ballot)
             IN
             /\ ballot' = [ballot EXCEPT ![r][inst] = m.ballot]
             /\ vballot' = [vballot EXCEPT ![r][inst] = vb]
             /\ Send([type |-> "PrepareOK", ballot |-> m.ballot, inst |-> inst, from |-> r,
                      status |-> status[r][inst], cmd |-> cmd[r][inst], seq |-> seq[r][inst],
                      deps |-> deps[r][inst], vballot |-> vb,
                      unchanged |-> unchanged[r][inst]])
          /\ UNCHANGED <<status, cmd, seq, deps, unchanged, executed, proposed, committedValues>>
       \/ SendNack(r, m.inst, m.ballot)

HandlePrepare(r) == \E m \in msgs : HandlePrepareMessage(r, m)

\* The recoverer's own state, as a report.
OwnReport(r, inst) ==
    [from |-> r, status |-> status[r][inst], cmd |-> cmd[r][inst], seq |-> seq[r][inst],
     deps |-> deps[r][inst], vballot |-> vballot[r][inst], unchanged |-> unchanged[r][inst]]
AsReport(o) ==
    [from |-> o.from, status |-> o.status, cmd |-> o.cmd, seq |-> o.seq, deps |-> o.deps,
     vballot |-> o.vballot, unchanged |-> o.unchanged]

\* The recoverer has acted at b already (sent PreAccept or Accept at b).
ActedAt(inst, b) ==
    \E o \in msgs : o.type \in {"PreAccept", "Accept"} /\ o.inst = inst /\ o.ballot = b

\* What case 5 commits: NoOp. (spec/broken/EPaxosInventedCommand.tla replaces it.)
GapFiller(r, inst) == NoOp

\* The decision of a recovery at ballot b from F + 1 reports (TR §4.5 with the
\* contract's five cases, tried in order):
\*  1. some report is committed: commit that value;
\*  2. some are accepted: the one with the highest vballot, Phase 2 at b;
\*  3. at least F reports from replicas other than the leader are pre-accepted
\*     at the initial ballot and unchanged: that value (the leader's initial
\*     one, which may have been committed on the fast path), Phase 2 at b;
\*  4. some report holds the command (pre-accepted otherwise): Phase 1 at b
\*     with it (never the fast path at b), then Phase 2;
\*  5. nobody holds it: Phase 2 at b with NoOp (deps[L] = i - 1 only).
Recover(r, inst, b, reports) ==
    LET L == Leader(inst)
        committed == {x \in reports : x.status = "committed"}
        accepted == {x \in reports : x.status = "accepted"}
        initial == {x \in reports : /\ x.from # L /\ x.status = "preaccepted"
                                   /\ x.vballot = InitialBallot(inst) /\ x.unchanged}
        held == {x \in reports : x.status = "preaccepted"}
    IN
    IF committed # {} THEN
        \E x \in committed : CommitValue(r, inst, x.cmd, x.seq, x.deps)
    ELSE IF accepted # {} THEN
        \E x \in accepted :
            /\ \A y \in accepted : BallotLeq(y.vballot, x.vballot)
            /\ StartAccept(r, inst, b, x.cmd, x.seq, x.deps)
    ELSE IF Cardinality(initial) >= F THEN
        \E x \in initial : StartAccept(r, inst, b, x.cmd, x.seq, x.deps)
    ELSE IF held # {} THEN
        \E x \in held : StartPreAccept(r, inst, b, x.cmd, x.seq, x.deps)
    ELSE
        StartAccept(r, inst, b, GapFiller(r, inst), 0, [NoDeps EXCEPT ![L] = inst[2] - 1])

\* The recoverer r, still at its ballot b and not yet decided, with F
\* PrepareOKs from distinct other replicas (m completes them) and its own
\* state, decides.
HandlePrepareOKMessage(r, m) ==
    /\ m \in msgs
    /\ m.type = "PrepareOK"
    /\ LET inst == m.inst
           b == m.ballot
       IN
       /\ Owner(b) = r
       /\ ballot[r][inst] = b
       /\ status[r][inst] # "committed"
       /\ ~ActedAt(inst, b)
       /\ \E Q \in SUBSET {o \in msgs : o.type = "PrepareOK" /\ o.inst = inst /\ o.ballot = b} :
            /\ m \in Q
            /\ Cardinality(Q) = F
            /\ Distinct(Q)
            /\ Recover(r, inst, b, {AsReport(o) : o \in Q} \cup {OwnReport(r, inst)})
    /\ UNCHANGED <<executed, proposed>>

HandlePrepareOK(r) == \E m \in msgs : HandlePrepareOKMessage(r, m)

\* A Nack tells its receiver of a higher promise: the core abandons its phase
\* and notes the round for its next recovery ballot, and adopts no promise. A
\* leader's bookkeeping is read from the network here, and StartRecovery may
\* take any higher round, so receiving a Nack changes no variable: there is no
\* HandleNack action (a trace's HandleNack lines are stutters with the Nack in
\* the network).

-----------------------------------------------------------------------------
(* Execution (SOSP §4.3.2).                                                 *)

\* The instances r's committed instance I depends on (vector semantics).
DirectDeps(r, I) == DepSet(deps[r][I], I)

\* Everything reachable from I at r, following the deps of committed
\* instances only (an uncommitted one is reached but not followed).
RECURSIVE ReachFrom(_, _, _)
ReachFrom(r, frontier, seen) ==
    LET next == UNION {DirectDeps(r, J) : J \in {K \in frontier : status[r][K] = "committed"}}
        new == next \ seen
    IN IF new = {} THEN seen ELSE ReachFrom(r, new, seen \cup new)
Reach(r, I) == ReachFrom(r, {I}, {}) \ {I}

IsExecuted(r, I) == I \in Range(executed[r])

\* I's strongly connected component in r's committed graph.
Component(r, I) == {I} \cup {J \in Reach(r, I) : I \in Reach(r, J)}

\* Inside a component: by seq, then replica, then instance number.
ExecBefore(r, I, J) ==
    \/ seq[r][I] < seq[r][J]
    \/ seq[r][I] = seq[r][J] /\ I[1] < J[1]
    \/ seq[r][I] = seq[r][J] /\ I[1] = J[1] /\ I[2] < J[2]

\* r executes I when I is committed, everything it depends on transitively is
\* committed, every component below I's is executed (reverse topological
\* order: dependencies first), and I comes first among its component's
\* unexecuted instances. One instance per step (one Execute event each).
Execute(r) ==
    \E I \in Instances :
        /\ r \in Executing
        /\ status[r][I] = "committed"
        /\ ~IsExecuted(r, I)
        /\ \A J \in Reach(r, I) : status[r][J] = "committed"
        /\ \A J \in Reach(r, I) \ Component(r, I) : IsExecuted(r, J)
        /\ \A J \in Component(r, I) \ {I} : IsExecuted(r, J) \/ ExecBefore(r, I, J)
        /\ executed' = [executed EXCEPT ![r] = Append(@, I)]
        /\ UNCHANGED <<replicaVars, msgs, proposed, committedValues>>

\* Crash and restart: every variable of a replica is persisted before a
\* message leaves, and the leader's bookkeeping is read from the network (see
\* the top), so nothing is lost: the step is here for the traces' Crash.
Crash(r) == UNCHANGED vars

-----------------------------------------------------------------------------

Init ==
    /\ status = [r \in Replicas |-> [I \in Instances |-> "none"]]
    /\ ballot = [r \in Replicas |-> [I \in Instances |-> InitialBallot(I)]]
    /\ vballot = [r \in Replicas |-> [I \in Instances |-> InitialBallot(I)]]
    /\ cmd = [r \in Replicas |-> [I \in Instances |-> NoOp]]
    /\ seq = [r \in Replicas |-> [I \in Instances |-> 0]]
    /\ deps = [r \in Replicas |-> [I \in Instances |-> NoDeps]]
    /\ unchanged = [r \in Replicas |-> [I \in Instances |-> FALSE]]
    /\ executed = [r \in Replicas |-> << >>]
    /\ msgs = {}
    /\ proposed = {}
    /\ committedValues = [I \in Instances |-> {}]

\* One disjunct per action, so that TLC names each step after its action.
Next ==
    \/ \E r \in Replicas : Propose(r)
    \/ \E r \in Replicas : HandlePreAccept(r)
    \/ \E r \in Replicas : HandlePreAcceptOK(r)
    \/ \E r \in Replicas : HandleAccept(r)
    \/ \E r \in Replicas : HandleAcceptOK(r)
    \/ \E r \in Replicas : HandleCommit(r)
    \/ \E r \in Replicas : StartRecovery(r)
    \/ \E r \in Replicas : HandlePrepare(r)
    \/ \E r \in Replicas : HandlePrepareOK(r)
    \/ \E r \in Replicas : Execute(r)
    \/ \E r \in Replicas : Crash(r)

Spec == Init /\ [][Next]_vars

ValueSymmetry == Permutations(Values)

\* State constraint: at most MaxMessages messages sent in all (the network
\* keeps every message, so this bounds the sends of a behaviour: it cuts off
\* longer behaviours, not safety within the bound).
MessageBound == Cardinality(msgs) <= MaxMessages

\* State constraint of spec/EPaxos_recoveries.cfg (and its broken variant):
\* no replica answers a leader's PreAccept at the initial ballot (it was
\* lost), so its instance is settled by recoveries alone.
LeaderPreAcceptLost ==
    ~\E m \in msgs : m.type = "PreAcceptOK" /\ m.ballot = InitialBallot(m.inst)

-----------------------------------------------------------------------------
(* Safety.                                                                 *)

CommittedRecords(I) == committedValues[I]

\* Nontriviality: a committed command is the one its instance's leader
\* proposed there, or NoOp.
Nontriviality ==
    \A I \in Instances : \A x \in committedValues[I] :
        x.cmd = NoOp \/ [inst |-> I, cmd |-> x.cmd] \in proposed

\* Agreement: every commit of an instance, at any replica at any time, is of
\* one (cmd, seq, deps).
Agreement == \A I \in Instances : Cardinality(committedValues[I]) <= 1

\* Stability (an action property): once r has committed an instance, its
\* command, seq and deps at r never change.
Stability ==
    [][\A r \in Replicas : \A I \in Instances :
          status[r][I] = "committed" =>
             /\ status'[r][I] = "committed"
             /\ cmd'[r][I] = cmd[r][I]
             /\ seq'[r][I] = seq[r][I]
             /\ deps'[r][I] = deps[r][I]]_vars

\* Consistency (SOSP §4.3, Lemma 2): of two committed interfering commands,
\* one depends on the other.
Consistency ==
    \A I, J \in Instances : I # J =>
        \A x \in committedValues[I] : \A y \in committedValues[J] :
            Interferes(x.cmd, y.cmd) => (J \in DepSet(x.deps, I) \/ I \in DepSet(y.deps, J))

\* What r executed, well-formed: committed instances, each once.
ExecutedWellFormed ==
    \A r \in Replicas :
        /\ \A k \in DOMAIN executed[r] : status[r][executed[r][k]] = "committed"
        /\ \A k1, k2 \in DOMAIN executed[r] : k1 # k2 => executed[r][k1] # executed[r][k2]

\* The abstract spec, per key (an invariant, see docs/spec.md): the commands
\* r executed on key g, in r's order. The writes on g at all replicas are
\* prefixes of one sequence (a ReplicatedLog per key), and a read on g comes,
\* at every replica that executed it, after the same number of writes on g:
\* all replicas execute the same per-key log, up to the order of reads
\* between two writes (reads commute: they do not interfere).
ExecutedCmd(r, k) == cmd[r][executed[r][k]]
OnKey(r, g) == SelectSeq([k \in DOMAIN executed[r] |-> ExecutedCmd(r, k)], LAMBDA c : c \in g)
WritesOf(s) == SelectSeq(s, LAMBDA c : c \notin Reads)
IsPrefix(s, t) == Len(s) <= Len(t) /\ SubSeq(t, 1, Len(s)) = s
WritesBefore(s, c) ==
    LET k == CHOOSE j \in DOMAIN s : s[j] = c
    IN Len(WritesOf(SubSeq(s, 1, k - 1)))

ExecutionAgrees ==
    \A g \in KeyGroups : \A r1, r2 \in Replicas :
        LET s1 == OnKey(r1, g)
            s2 == OnKey(r2, g)
        IN /\ IsPrefix(WritesOf(s1), WritesOf(s2)) \/ IsPrefix(WritesOf(s2), WritesOf(s1))
           /\ \A c \in Range(s1) \cap Range(s2) \cap Reads :
                 WritesBefore(s1, c) = WritesBefore(s2, c)

-----------------------------------------------------------------------------
(* Reachability witnesses, not safety: TLC must refute each.              *)

\* Two recoveries of one instance, from two different replicas, each reach
\* Phase 2 (an Accept at their ballot).
NoConcurrentRecoveries ==
    \A I \in Instances :
        ~\E a1, a2 \in msgs :
            /\ a1.type = "Accept" /\ a2.type = "Accept"
            /\ a1.inst = I /\ a2.inst = I
            /\ a1.ballot[1] > 0 /\ a2.ballot[1] > 0
            /\ Owner(a1.ballot) # Owner(a2.ballot)
=============================================================================
