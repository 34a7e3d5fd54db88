-------------------- MODULE LowPaxosLeaderCommitSkipsGap --------------------
(***************************************************************************)
(* Broken variant: a leader whose commit index jumps to the highest slot  *)
(* a Q2 quorum has accepted, over slots below it that are not chosen yet  *)
(* (an Accepted for slot 2 arrives before the one for slot 1). The        *)
(* leader then commits and applies an unchosen slot, and tells followers  *)
(* to commit it. The correct rule (LeaderCommit) advances over the        *)
(* consecutive prefix of chosen slots only. It needs two slots.           *)
(*                                                                         *)
(* The configuration replaces LeaderCommit by the operator below.         *)
(***************************************************************************)
EXTENDS LowPaxos

LeaderCommitSkipsGap(r, newAcks) ==
    Max({commitIndex[r]} \cup {s \in Slots : Cardinality(newAcks[s]) >= Q2})
=============================================================================
