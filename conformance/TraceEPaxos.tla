------------------------------ MODULE TraceEPaxos ------------------------------
(***************************************************************************)
(* Trace validation of the EPaxos core against spec/EPaxos.tla, in the    *)
(* manner of conformance/TraceLowPaxos.tla and TraceVR.tla (Cirstea,      *)
(* Kuppe, Loillier and Merz 2024): the trace is a constant sequence of    *)
(* records, l counts the events explained, and each step is the spec's    *)
(* own action named by event l at the logged replica, with a network      *)
(* message that the logged message describes, constrained to reach the    *)
(* logged state of the ONE instance the event touched (the core logs one  *)
(* instance per event, not the whole replica: the contract of issue 9).   *)
(*                                                                         *)
(* lowpaxos.conformance.epaxos_format writes a copy of this module with   *)
(* the trace as the definition of TraceLog, and a configuration that      *)
(* overrides definitions of the spec (MAPPED below, each with its reason): *)
(* Interferes (the core's relation on batches, from the keys and clients  *)
(* the trace logs), LocalDeps and LocalSeq (the core's conflict tables:   *)
(* what the replica has held since its restart) and the symmetry set.     *)
(* docs/conformance.md ("EPaxos") lists the mapping.                      *)
(***************************************************************************)
EXTENDS EPaxos, Sequences, TLC

CONSTANT TraceLog   \* the events, one record per line of the trace file

VARIABLE l          \* the next event to explain (1-based)

\* seen[r]: every <<instance, command, seq>> replica r has held since its last
\* restart (TraceLocalSeq, TraceLocalDeps below: the core's conflict tables).
VARIABLE seen

traceVars == <<vars, l, seen>>

\* The logged message x describes the network message m: every field x has,
\* m has with the same value (x holds the fields of the spec's record).
Describes(m, x) ==
    /\ m.type = x.type
    /\ \A f \in DOMAIN x : f \in DOMAIN m /\ m[f] = x[f]

\* The core's "executed" is the spec's "committed" plus a place in executed[r].
SpecStatus(s) == IF s = "executed" THEN "committed" ELSE s

\* Replica r holds instance I as the logged state st says (primed or not).
Holds(r, st, S, B, VB, C, Q, D, U, X) ==
    /\ S[r][st.inst] = SpecStatus(st.status)
    /\ B[r][st.inst] = st.bal
    /\ VB[r][st.inst] = st.vbal
    /\ C[r][st.inst] = st.cmd
    /\ Q[r][st.inst] = st.seq
    /\ D[r][st.inst] = st.deps
    /\ U[r][st.inst] = st.unch
    /\ (st.status = "executed") = (st.inst \in Range(X[r]))

Reached(e) == Holds(e.r, e.st, status', ballot', vballot', cmd', seq', deps', unchanged',
                    executed')
ReachedBefore(e) == Holds(e.r, e.pre, status, ballot, vballot, cmd, seq, deps, unchanged,
                          executed)

\* A receive the spec does not act on (a reply short of a quorum or for a phase
\* already decided, a duplicate, a message for a committed instance, a Nack:
\* the spec has no HandleNack, a Nack changes no variable): the message is in
\* the network and nothing changes. The
\* state comparison pins that nothing changed at the replica.
Collect(e) ==
    /\ \E m \in msgs : Describes(m, e.msg)
    /\ UNCHANGED vars

Receive(e, A(_, _)) == \E m \in msgs : Describes(m, e.msg) /\ A(e.r, m)

\* MAPPED, a Prepare for an instance the replica has committed: the core
\* answers with the committed value and leaves its promise as it was (a
\* committed instance is final); the spec's HandlePrepare promises first. The
\* answer is a fact about a committed value, so the step adds that PrepareOK
\* and changes nothing else.
PrepareCommittedMessage(r, m) ==
    /\ m \in msgs
    /\ m.type = "Prepare"
    /\ Owner(m.ballot) # r
    /\ status[r][m.inst] = "committed"
    /\ Send([type |-> "PrepareOK", ballot |-> m.ballot, inst |-> m.inst, from |-> r,
             status |-> "committed", cmd |-> cmd[r][m.inst], seq |-> seq[r][m.inst],
             deps |-> deps[r][m.inst], vballot |-> vballot[r][m.inst],
             unchanged |-> unchanged[r][m.inst]])
    /\ UNCHANGED <<replicaVars, executed, proposed, committedValues>>

\* MAPPED, a PreAccept or Accept of a lower ballot for an instance the replica
\* has committed: the core tells the sender its promise (a Nack, as for an
\* instance not committed), the spec drops it (a committed instance is
\* final). The Nack is a fact about the promise, and the step sends only it.
NackCommittedMessage(r, m) ==
    /\ m \in msgs
    /\ m.type \in {"PreAccept", "Accept"}
    /\ Owner(m.ballot) # r
    /\ status[r][m.inst] = "committed"
    /\ SendNack(r, m.inst, m.ballot)

HandlePreAcceptOrNack(r, m) == HandlePreAcceptMessage(r, m) \/ NackCommittedMessage(r, m)
HandleAcceptOrNack(r, m) == HandleAcceptMessage(r, m) \/ NackCommittedMessage(r, m)

HandlePrepareOrCommitted(r, m) ==
    HandlePrepareMessage(r, m) \/ PrepareCommittedMessage(r, m)

\* MAPPED (reported: spec and core differ here), the seq and deps a replica
\* computes for a command c of instance self (Propose, HandlePreAccept, the
\* recovery's Phase 1), safe (more deps and a higher seq only order more):
\*  - the core reads its conflict tables (core.Conflicts, the reference
\*    implementation's per-key maps), which keep, per key and per client, the
\*    highest instance and seq ever recorded, so an instance whose attributes
\*    or command changed since (a slow path, a recovery that chose another
\*    value or NoOp) still counts with what it held; the spec reads the
\*    current values. The tables are rebuilt from the durable log at a
\*    restart. So here: everything r has held since its restart (seen), its
\*    own earlier record of self included.
\* (The entry of the instance's leader is left as the message or the leader's
\* chain has it by the spec's MergeDeps, as in the core.)
SeenConflicts(r, c) == {x \in seen[r] : Interferes(x[2], c)}
TraceLocalSeq(r, self, c) == 1 + Max({x[3] : x \in SeenConflicts(r, c)} \cup {0})
TraceLocalDeps(r, self, c) ==
    [R \in Replicas |-> Max({x[1][2] : x \in {y \in SeenConflicts(r, c) : y[1][1] = R}} \cup {0})]

\* What r holds now (a restart rebuilds the tables from it).
HeldNow(r) == {<<J, cmd[r][J], seq[r][J]>> : J \in {K \in Instances : cmd[r][K] # NoOp}}

\* Each action changes one instance at one replica, the one its line logs.
NextSeen(e) ==
    IF e.k = "Crash" THEN [seen EXCEPT ![e.r] = HeldNow(e.r)]
    ELSE IF cmd'[e.r][e.st.inst] = NoOp THEN seen
    ELSE [seen EXCEPT ![e.r] = @ \cup {<<e.st.inst, cmd'[e.r][e.st.inst],
                                          seq'[e.r][e.st.inst]>>}]

\* The interference of two batches, from the keys and clients the trace logs
\* for each (TraceConflicts, written by epaxos_format); NoOp interferes with
\* nothing.
TraceInterferes(a, b) == a # NoOp /\ b # NoOp /\ b \in TraceConflicts[a]

\* MAPPED, a restart: every instance's state is persisted before a message
\* leaves (the spec's Crash changes nothing), but execution is not: the core
\* saves the KVS rows now and then (SaveRows, with the executed frontier) and
\* after a restart executes again the committed instances above the saved
\* frontier. The step cuts r's execution sequence back to the saved frontier
\* (fr: the frontier vector the Restart line logs), which must be a prefix of
\* it and cover only what r had executed; the Execute lines that follow then
\* add the instances again, in an order the spec checks as before. Without a
\* logged frontier (a runtime trace) any prefix closed under each instance
\* space's order, chosen by the next lines.
SpaceClosed(s) == \A k \in DOMAIN s : \A j \in 1..(s[k][2] - 1) : <<s[k][1], j>> \in Range(s)
RestartTo(r, fr) ==
    /\ \A R \in Replicas : \A j \in 1..fr[R] : <<R, j>> \in Range(executed[r])
    /\ executed' = [executed EXCEPT ![r] = SelectSeq(@, LAMBDA I : I[2] <= fr[I[1]])]
    /\ executed'[r] = SubSeq(executed[r], 1, Len(executed'[r]))
    /\ UNCHANGED <<replicaVars, msgs, proposed, committedValues>>
RestartAny(r) ==
    \E k \in 0..Len(executed[r]) :
        /\ SpaceClosed(SubSeq(executed[r], 1, k))
        /\ executed' = [executed EXCEPT ![r] = SubSeq(@, 1, k)]
        /\ UNCHANGED <<replicaVars, msgs, proposed, committedValues>>

\* Execute at r of the logged instance, at the logged position.
ExecuteLogged(e) ==
    /\ Execute(e.r)
    /\ executed'[e.r] = Append(executed[e.r], e.inst)
    /\ e.order = Len(executed[e.r])

\* A leader's PreAccept of inst timed out with F or more replies but no fast
\* quorum (core._retry_drives): the spec's slow path with the replies it has;
\* no reply completes the quorum, so any of them is the action's m. The step
\* must reach Phase 2 (a fast commit would have come with a reply).
PreAcceptTimeoutStep(r, inst) ==
    /\ \E m \in msgs : m.type = "PreAcceptOK" /\ m.inst = inst /\ HandlePreAcceptOKMessage(r, m)
    /\ status'[r][inst] = "accepted"

\* A receive: the spec's handler ("act"), a collect step ("collect"), or
\* either (a runtime trace, whose sends do not say which); the plan decides
\* from the logged states and sends (epaxos_format.plan_steps).
Handle(e, A(_, _)) ==
    CASE e.mode = "act" -> Receive(e, A)
      [] e.mode = "collect" -> Collect(e)
      [] OTHER -> Receive(e, A) \/ Collect(e)

Take(e) ==
    CASE e.k = "Propose" -> ProposeCommand(e.r, e.val)
      [] e.k = "HandlePreAccept" -> Handle(e, HandlePreAcceptOrNack)
      [] e.k = "HandlePreAcceptOK" -> Handle(e, HandlePreAcceptOKMessage)
      [] e.k = "HandleAccept" -> Handle(e, HandleAcceptOrNack)
      [] e.k = "HandleAcceptOK" -> Handle(e, HandleAcceptOKMessage)
      [] e.k = "HandleCommit" -> Handle(e, HandleCommitMessage)
      [] e.k = "HandlePrepare" -> Handle(e, HandlePrepareOrCommitted)
      [] e.k = "HandlePrepareOK" -> Handle(e, HandlePrepareOKMessage)
      \* The core notes a Nack's round for its next recovery ballot and abandons
      \* its phase; the spec has no HandleNack (a Nack changes no variable).
      [] e.k = "HandleNack" -> Collect(e)
      [] e.k = "StartRecovery" -> StartRecoveryOf(e.r, e.inst)
      [] e.k = "PreAcceptTimeout" -> PreAcceptTimeoutStep(e.r, e.inst)
      [] e.k = "Execute" -> ExecuteLogged(e)
      [] e.k = "Crash" -> IF e.hasFr THEN RestartTo(e.r, e.fr) ELSE RestartAny(e.r)
      \* A line rejected before the replay (its reason is in the report).
      [] e.k = "Unreachable" -> FALSE
      \* Commit (the state of the handler's step before it, checked again), the
      \* simulator's Crash, and the core's events that are no spec step: a retry
      \* sends again a message already in the network; Status messages,
      \* re-sent Commits and garbage collection change no spec variable.
      [] OTHER -> UNCHANGED vars

TraceInit == Init /\ l = 1 /\ seen = [r \in Replicas |-> {}]

TraceNext ==
    /\ l <= Len(TraceLog)
    /\ LET e == TraceLog[l] IN
         /\ e.hasPre => ReachedBefore(e)
         /\ Take(e)
         /\ e.check => Reached(e)
         /\ seen' = NextSeen(e)
    /\ l' = l + 1

TraceSpec == TraceInit /\ [][TraceNext]_traceVars

TraceIncomplete == l <= Len(TraceLog)
=============================================================================
