------------------------ MODULE EPaxosAcceptAfterCommit ------------------------
(***************************************************************************)
(* Broken variant: a replica that has committed an instance still takes   *)
(* a (late or recovery) Accept for it and goes back to "accepted": the    *)
(* committed instance is no longer final at that replica (Stability).     *)
(*                                                                         *)
(* The configuration replaces TakesAccept by the operator below.          *)
(***************************************************************************)
EXTENDS EPaxos

TakesAcceptAlways(r, inst) == TRUE
=============================================================================
