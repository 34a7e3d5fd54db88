"""EPaxos's messages in the wire codec (type tags 80..111, codec.py's EPaxos range).

The core never imports this (cores do no I/O); the registry imports it when it
builds the ``epaxos`` entry. The codec checks shapes (an instance is
``[replica, number]`` with number >= 1, deps a list of instance numbers); what
depends on the cluster (deps of length N, a replica id below N) the core checks
and counts as a drop.
"""

from __future__ import annotations

from lowpaxos import codec
from lowpaxos.codec import BATCH, REPLICA, UINT, Bool, EnumCode, FixedTuple, Int, Optional, \
    Struct, TupleOf, register_message
from lowpaxos.protocols.epaxos import messages as ep

BALLOT = Struct(ep.Ballot, [("round", UINT), ("replica", REPLICA)])
INST = FixedTuple(REPLICA, Int(1, ep.INSTANCE_MAX))
NUMBER = Int(0, ep.INSTANCE_MAX)
DEPS = TupleOf(NUMBER, items_max=codec.REPLICA_ID_MAX + 1)
SEQ = UINT
STATUS = EnumCode({name: code for code, name in enumerate(ep.STATUS_NAMES)})


def register() -> None:
    """Register every EPaxos message once (importing this module twice registers nothing)."""
    if ep.PreAccept in codec.registered_types().values():
        return
    register_message(80, ep.PreAccept, [("ballot", BALLOT), ("inst", INST), ("batch", BATCH),
                                        ("seq", SEQ), ("deps", DEPS)])
    register_message(81, ep.PreAcceptOK, [("ballot", BALLOT), ("inst", INST), ("seq", SEQ),
                                          ("deps", DEPS), ("unchanged", Bool())])
    register_message(82, ep.Accept, [("ballot", BALLOT), ("inst", INST), ("batch", BATCH),
                                     ("seq", SEQ), ("deps", DEPS)])
    register_message(83, ep.AcceptOK, [("ballot", BALLOT), ("inst", INST)])
    register_message(84, ep.Commit, [("inst", INST), ("batch", BATCH), ("seq", SEQ),
                                     ("deps", DEPS)])
    register_message(85, ep.Prepare, [("ballot", BALLOT), ("inst", INST)])
    register_message(86, ep.PrepareOK,
                     [("ballot", BALLOT), ("inst", INST), ("status", STATUS),
                      ("batch", Optional(BATCH)), ("seq", SEQ), ("deps", DEPS),
                      ("vballot", BALLOT), ("unchanged", Bool())])
    register_message(87, ep.Nack, [("inst", INST), ("ballot", BALLOT)])
    register_message(88, ep.Status, [("executed", DEPS), ("committed", DEPS)])
    assert all(cls in codec.registered_types().values() for cls in ep.MESSAGE_TYPES), \
        "every EPaxos message has a tag"


register()
