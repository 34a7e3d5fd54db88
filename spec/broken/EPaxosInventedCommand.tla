------------------------- MODULE EPaxosInventedCommand -------------------------
(***************************************************************************)
(* Broken variant: a recovery that finds nobody holding the instance      *)
(* (case 5) fills it with a client command instead of NoOp: a command     *)
(* that was not proposed in that instance is committed there              *)
(* (Nontriviality).                                                       *)
(*                                                                         *)
(* The configuration replaces GapFiller by the operator below.            *)
(***************************************************************************)
EXTENDS EPaxos

InventedCommand(r, inst) ==
    CHOOSE c \in Values : [inst |-> inst, cmd |-> c] \notin proposed
=============================================================================
