---------------------- MODULE LowPaxosPromiseOtherBallot ----------------------
(***************************************************************************)
(* Broken variant: a candidate that counts a Promise for another ballot,  *)
(* an earlier one of its own (the core's handle_promise without its       *)
(* `message.ballot != self.promised` check). That promise was made before *)
(* the votes cast since, so the quorum it completes may miss a value      *)
(* chosen in between (Paxos Made Simple §2.2: the promise and the report  *)
(* must be for the ballot being started). TLC must find two values chosen *)
(* in a slot. It needs two rounds per replica: with one, every promise a  *)
(* candidate receives is for its only ballot.                              *)
(*                                                                         *)
(* The configuration replaces LowPaxos's CountsPromise by the operator    *)
(* below (TLC's definition override, `CountsPromise <- ...`).             *)
(***************************************************************************)
EXTENDS LowPaxos

CountsAnyPromise(r, m) == TRUE
=============================================================================
