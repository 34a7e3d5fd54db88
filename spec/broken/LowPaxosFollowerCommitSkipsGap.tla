------------------- MODULE LowPaxosFollowerCommitSkipsGap -------------------
(***************************************************************************)
(* Broken variant: a follower whose commit point jumps to the highest     *)
(* slot it accepted in the leader's ballot, up to the leader's commit     *)
(* index, without checking the slots below it. A slot in between may hold *)
(* an entry of an older ballot whose value was never chosen, and the      *)
(* follower commits (applies) it. The correct rule (FollowerCommit)       *)
(* advances only over consecutive slots of the leader's ballot. It needs  *)
(* two slots. TLC must find a committed value that was not chosen.        *)
(*                                                                         *)
(* The configuration replaces FollowerCommit by the operator below.       *)
(***************************************************************************)
EXTENDS LowPaxos

FollowerCommitSkipsGap(r, newLog, b, leaderCommit) ==
    Max({commitIndex[r]} \cup {k \in Slots : k <= leaderCommit /\ newLog[k].bal = b})
=============================================================================
