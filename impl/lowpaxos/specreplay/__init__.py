"""Spec-driven test generation: the converse of trace conformance.

TLC's simulation mode walks random behaviours of a protocol's spec (for
LowPaxos, spec/LowPaxos.tla through ReplayLowPaxos.tla in this folder), and
each behaviour drives real cores, one spec step at a time, through the
sans-I/O interface (``on_message``, ``on_tick``, ``on_client_request``, a
restart from durable state). After every step each core's state, mapped to
the spec's variables, must equal the spec's state, every message the spec
step sends must be one a core sent, and every message a core sent must be
one the spec has (or one of the kinds the protocol's adapter lists as
unmodelled). See docs/spec-replay.md.

``generate.generate`` gets behaviours from TLC, ``replay.replay`` replays one,
``replay.run`` replays many and counts coverage; the per-protocol parts (which
model, how a spec action becomes a core input, how a core's state and
messages map to the spec's) are adapters listed in ``MODELS``.
"""

from lowpaxos.specreplay.generate import Behaviour, GenerateError, Step, generate
from lowpaxos.specreplay.replay import Divergence, ReplayStats, replay, run

__all__ = ["Behaviour", "Divergence", "GenerateError", "ReplayStats", "Step", "generate", "replay",
           "run"]
