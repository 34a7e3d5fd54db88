-------------------------- MODULE EPaxosSingleBallot --------------------------
(***************************************************************************)
(* Broken variant: the published recovery with ONE ballot variable per    *)
(* instance (the SOSP/TR protocol, its TLA+ spec and the Go code, as Sutra, *)
(* "On the correctness of Egalitarian Paxos", IPL 2020, shows). A replica *)
(* that promises a Prepare's ballot overwrites the ballot its value was   *)
(* accepted at, so a PrepareOK reports the recoverer's ballot for every   *)
(* accepted value: a recovery that sees two values accepted at different  *)
(* ballots cannot tell the later one, and may pick a value that was never *)
(* chosen while another was committed.                                    *)
(*                                                                         *)
(* The configuration replaces VBallotOnPrepare by the operator below.     *)
(* Its state constraint LeaderPreAcceptLost (in EPaxos.tla) keeps the    *)
(* behaviours where the leader's PreAccept is lost, so that the instance  *)
(* is settled by recoveries alone, as in Sutra's counterexample; the same *)
(* model without the bug, spec/EPaxos_recoveries.cfg, passes.             *)
(***************************************************************************)
EXTENDS EPaxos

VBallotIsPromise(r, inst, b) == b
=============================================================================
