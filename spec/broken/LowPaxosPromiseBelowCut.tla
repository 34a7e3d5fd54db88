------------------------ MODULE LowPaxosPromiseBelowCut ------------------------
(***************************************************************************)
(* Negative check: a replica that promises a candidate whose commit index *)
(* is below its own log cut. It cannot report the entries it has cut, so  *)
(* its Promise says nothing about a slot where a value may be chosen, and *)
(* the candidate fills that slot with a NoOp (or its own value). The      *)
(* implementation refuses such a Prepare (handle_prepare,                 *)
(* candidate_lagging); TLC must find an Agreement (or CommittedIsChosen,  *)
(* or refinement) violation without that check.                           *)
(*                                                                         *)
(* The module adds the faulty handler beside the correct ones, reusing    *)
(* LowPaxos's own PromiseEffect so that only the cut check differs.       *)
(***************************************************************************)
EXTENDS LowPaxos

HandlePrepareBelowCut(r) == \E m \in msgs :
    /\ m.type = "Prepare"
    /\ m.from # r
    /\ Greater(m.bal, promised[r])
    /\ m.commitIndex < logStart[r]   \* the check HandlePrepare makes, inverted
    /\ PromiseEffect(r, m)

BrokenNext ==
    \/ Next
    \/ \E r \in Replicas : HandlePrepareBelowCut(r)

BrokenSpec == Init /\ [][BrokenNext]_vars
=============================================================================
