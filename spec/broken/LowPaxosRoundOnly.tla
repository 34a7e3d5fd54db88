-------------------------- MODULE LowPaxosRoundOnly --------------------------
(***************************************************************************)
(* Broken variant: ballots compared by their round alone. Ballots         *)
(* <<round, replica>> are unique only because the replica breaks ties     *)
(* (Paxos Made Simple §2.2: different proposers use disjoint sets of      *)
(* numbers). Without it a replica that promised <<1, 1>> also promises    *)
(* <<1, 3>> (not equal, and not below it by round), two candidates of one *)
(* round both lead, and a follower takes Accepts from either. Every       *)
(* comparison of the spec goes through Greater (GreaterEq is "not below"), *)
(* as every comparison of the core goes through Ballot's ordering.        *)
(*                                                                         *)
(* The configuration replaces Greater by the operator below.              *)
(***************************************************************************)
EXTENDS LowPaxos

GreaterByRound(a, b) == a[1] > b[1]
=============================================================================
