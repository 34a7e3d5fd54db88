------------------------- MODULE VRTruncateOnLaterView -------------------------
(***************************************************************************)
(* Broken variant: the state-transfer pitfall of VR Revisited §5.2 (found *)
(* by model checking in 2022, J. Vanlightly, "VR Revisited - State        *)
(* Transfer"). A replica that hears of a later view from a Prepare or a   *)
(* Commit follows the paper's letter: it sets its op-number to its        *)
(* commit-number, removes the entries after it, and takes the new view for *)
(* its own (normal, last-normal view = the new view) before any NewState  *)
(* has brought that view's log. In a view change before the state arrives *)
(* its DoViewChange reports the latest last-normal view with a log that   *)
(* lacks ops committed in earlier views, and the new primary picks it.    *)
(* spec/VR.tla instead keeps the log and the old last-normal view until   *)
(* NewState arrives (HandleNewState).                                     *)
(*                                                                         *)
(* The configuration replaces JoinLaterView by the operator below.        *)
(***************************************************************************)
EXTENDS VR

JoinLaterViewTruncating(r, v) ==
    /\ view' = [view EXCEPT ![r] = v]
    /\ status' = [status EXCEPT ![r] = "normal"]
    /\ last_normal_view' = [last_normal_view EXCEPT ![r] = v]
    /\ log' = [log EXCEPT ![r] = SubSeq(log[r], 1, commit[r])]
    /\ UNCHANGED <<commit, nonce, msgs, applied>>
=============================================================================
