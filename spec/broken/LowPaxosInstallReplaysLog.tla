--------------------- MODULE LowPaxosInstallReplaysLog ---------------------
(***************************************************************************)
(* Broken variant: a replica that installs a state image applies, for the *)
(* slots of the image it still holds in its own log, its own entries      *)
(* instead of the image's (as if it replayed its uncommitted log over the *)
(* installed rows). An entry it accepted in an old ballot, never chosen,  *)
(* then enters its state machine. The log is cut at the image's index in  *)
(* the same step, so no invariant over logs sees it: Agreement and        *)
(* CutIsChosen look at votes and slots, CommittedIsChosen and             *)
(* CommittedPrefixesAgree at the entries held above the cut. The          *)
(* refinement mapping, which reads what replicas applied, must catch it.  *)
(*                                                                         *)
(* The configuration replaces ImageValue by the operator below.           *)
(***************************************************************************)
EXTENDS LowPaxos

ImageValueFromOwnLog(r, l, s) ==
    IF log[r][s] # NoEntry THEN log[r][s].val ELSE applied[l][s]
=============================================================================
