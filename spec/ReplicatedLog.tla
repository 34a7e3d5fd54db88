--------------------------- MODULE ReplicatedLog ---------------------------
(***************************************************************************)
(* The abstract specification that LowPaxos implements: one committed log *)
(* that only ever grows, and only by values that some client proposed (or *)
(* by the no-op that a new leader uses to fill a gap).                     *)
(*                                                                         *)
(* A step may propose values, extend the log, or both at once: in LowPaxos *)
(* a single vote can both introduce a value and complete a quorum when the *)
(* phase-2 quorum has size 1, and a single vote can complete the quorums   *)
(* of several slots' prefix at once (slot 2 chosen before slot 1).         *)
(***************************************************************************)
EXTENDS Naturals, Sequences

CONSTANTS
    Values,   \* what clients propose (a batch of commands is one value)
    NoOp,     \* the gap filler, not a client value
    MaxLen    \* the model's bound on the length of the log

ASSUME NoOp \notin Values
ASSUME MaxLen \in Nat

VARIABLES
    committed,  \* the committed log: a sequence of values
    proposed    \* every value some client has proposed so far

vars == <<committed, proposed>>

TypeOK ==
    /\ committed \in Seq(Values \cup {NoOp})
    /\ Len(committed) <= MaxLen
    /\ proposed \subseteq Values

Init ==
    /\ committed = <<>>
    /\ proposed = {}

\* Clients propose the values vs (possibly none).
Propose(vs) == proposed' = proposed \cup vs

\* The log grows at its end by zero or more entries, each of them a value
\* proposed by now, or the no-op.
Grow ==
    \E n \in 0..(MaxLen - Len(committed)) :
        \E extension \in [1..n -> proposed' \cup {NoOp}] :
            committed' = committed \o extension

Next == \E vs \in SUBSET Values : Propose(vs) /\ Grow

Spec == Init /\ [][Next]_vars

\* A committed prefix is never rewritten: a consequence of Spec, kept here as
\* a property that readers can check against the definition above.
CommittedOnlyGrows ==
    [][/\ Len(committed) <= Len(committed')
       /\ SubSeq(committed', 1, Len(committed)) = committed]_vars
=============================================================================
