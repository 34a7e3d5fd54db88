---------------------- MODULE LowPaxosLastPromiseValue ----------------------
(***************************************************************************)
(* Broken variant, the classic Paxos bug: after phase 1 a new leader      *)
(* keeps, for each open slot, the value of the last promise it processed  *)
(* that reports the slot, instead of the value of the highest ballot      *)
(* (the core's _maybe_become_leader with `best[entry.slot] = entry` and   *)
(* no ballot comparison; its own promise is processed first, the one that *)
(* completed the quorum last). Paxos Made Simple §2.2, P2c is broken: a   *)
(* value chosen in a higher ballot is overwritten by an older one.        *)
(*                                                                         *)
(* The configuration replaces RecoveredValue by the operator below.       *)
(***************************************************************************)
EXTENDS LowPaxos

LastPromiseValue(reported, last, s) ==
    LET fromLast == {e \in last : e.slot = s}
        here == {e \in reported : e.slot = s}
    IN IF fromLast # {} THEN (CHOOSE e \in fromLast : TRUE).val
       ELSE IF here = {} THEN NoOp
       ELSE (CHOOSE e \in here : \A f \in here : GreaterEq(e.bal, f.bal)).val
=============================================================================
