------------------------ MODULE VRRecoveryWithoutPrimary ------------------------
(***************************************************************************)
(* Broken variant: a recovering replica does not wait for the response of *)
(* the primary of the latest view (§4.3 step 3). With f + 1 responses of  *)
(* its nonce it takes the latest view among them and the log of the       *)
(* primary response of the highest view among them, or an empty log when  *)
(* no primary answered. A diskless primary that crashed after committing  *)
(* then recovers as the primary of its view with nothing, and commits     *)
(* another value in an op that was committed.                             *)
(*                                                                         *)
(* The configuration replaces RecoveredState by the operator below.       *)
(***************************************************************************)
EXTENDS VR

RecoveredStateWithoutPrimary(responses) ==
    LET latest == Max({s.view : s \in responses})
        fromPrimaries == {s \in responses : s.primary}
    IN IF fromPrimaries = {}
       THEN [ready |-> TRUE, view |-> latest, log |-> << >>, commit |-> 0]
       ELSE LET s == CHOOSE x \in fromPrimaries : \A y \in fromPrimaries : x.view >= y.view IN
            [ready |-> TRUE, view |-> latest, log |-> s.log, commit |-> s.commit]
=============================================================================
