---------------------------- MODULE VROpNumberOnly ----------------------------
(***************************************************************************)
(* Broken variant: the new primary picks the log of the DoViewChange with *)
(* the largest op-number alone, ignoring the last-normal view (§4.2 step  *)
(* 3 takes the largest last-normal view first). A replica that was cut    *)
(* off in an old view with a long log of uncommitted ops then wins over   *)
(* the shorter log of a later view, which holds an op committed there.    *)
(*                                                                         *)
(* The configuration replaces ChooseLog by the operator below.            *)
(***************************************************************************)
EXTENDS VR

ChooseLogByOpNumber(reports) ==
    (CHOOSE x \in reports : \A y \in reports : Len(x.log) >= Len(y.log)).log
=============================================================================
