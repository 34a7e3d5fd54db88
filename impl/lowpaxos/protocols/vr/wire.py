"""VR Revisited's messages in the wire codec (type tags 48..79, codec.py's VR range).

The core never imports this (cores do no I/O); the registry imports it when it
builds the ``vr`` entry, so any driver that can make a VR core can also carry its
messages. Field kinds are the codec's own, as for LowPaxos.
"""

from __future__ import annotations

from lowpaxos import codec
from lowpaxos.codec import (
    BATCH,
    CURSOR,
    ROW,
    SLOT,
    Bool,
    Digest,
    Int,
    Struct,
    TupleOf,
    register_message,
)
from lowpaxos.protocols.vr import messages as vr

VIEW = SLOT
OP = SLOT
ENTRY = Struct(vr.Entry, [("op", OP), ("batch", BATCH)])
ENTRIES = TupleOf(ENTRY)
NONCE = Int(0, (1 << 63) - 1)


def register() -> None:
    """Register every VR message once (importing this module twice registers nothing new)."""
    if vr.Prepare in codec.registered_types().values():
        return
    register_message(48, vr.Prepare, [("view", VIEW), ("op", OP), ("batch", BATCH),
                                      ("commit", OP)])
    register_message(49, vr.PrepareOK, [("view", VIEW), ("op", OP), ("commit", OP)])
    register_message(50, vr.Commit, [("view", VIEW), ("commit", OP), ("truncate", OP)])
    register_message(51, vr.StartViewChange, [("view", VIEW)])
    register_message(52, vr.DoViewChange,
                     [("view", VIEW), ("last_normal_view", VIEW), ("op", OP), ("commit", OP),
                      ("log_start", OP), ("entries", ENTRIES)])
    register_message(53, vr.StartView, [("view", VIEW), ("op", OP), ("commit", OP),
                                        ("from_op", OP), ("entries", ENTRIES)])
    register_message(54, vr.GetState, [("view", VIEW), ("from_op", OP)])
    register_message(55, vr.NewState,
                     [("view", VIEW), ("log_start", OP), ("from_op", OP), ("op", OP),
                      ("commit", OP), ("committed_only", Bool()), ("entries", ENTRIES)])
    register_message(56, vr.Recovery, [("nonce", NONCE), ("commit", OP)])
    register_message(57, vr.RecoveryResponse,
                     [("view", VIEW), ("nonce", NONCE), ("primary", Bool()), ("log_start", OP),
                      ("from_op", OP), ("op", OP), ("commit", OP), ("entries", ENTRIES)])
    register_message(58, vr.SnapshotRequest, [("view", VIEW), ("image_index", OP),
                                              ("cursor", CURSOR), ("credits", Int(1, 1024))])
    register_message(59, vr.SnapshotChunk,
                     [("view", VIEW), ("image_index", OP), ("digest", Digest()),
                      ("cursor", CURSOR), ("next_cursor", CURSOR), ("rows", TupleOf(ROW))])
    assert all(cls in codec.registered_types().values() for cls in vr.MESSAGE_TYPES), \
        "every VR message has a tag"


register()
