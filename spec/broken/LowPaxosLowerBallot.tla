------------------------- MODULE LowPaxosLowerBallot -------------------------
(***************************************************************************)
(* Negative check: a follower that accepts an Accept of a ballot lower    *)
(* than the one it promised. This breaks the promise of phase 1 (Paxos    *)
(* Made Simple §2.2), so a value can be chosen in a low ballot after a    *)
(* higher ballot's leader has already proposed a different one. TLC must  *)
(* find an Agreement (or refinement) violation.                           *)
(*                                                                         *)
(* The module adds the faulty handler beside the correct ones, reusing    *)
(* LowPaxos's own AcceptEffect so that only the ballot check differs.     *)
(***************************************************************************)
EXTENDS LowPaxos

HandleAcceptLowerBallot(r) == \E m \in msgs :
    /\ m.type = "Accept"
    /\ r \in m.to
    /\ Greater(promised[r], m.bal)   \* the check HandleAccept makes, inverted
    /\ AcceptEffect(r, m)

BrokenNext ==
    \/ Next
    \/ \E r \in Replicas : HandleAcceptLowerBallot(r)

BrokenSpec == Init /\ [][BrokenNext]_vars
=============================================================================
