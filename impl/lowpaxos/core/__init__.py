"""Value types and the interface shared by every protocol core and every driver."""

from lowpaxos.core.api import (
    Applied,
    ClientReply,
    ClientRequest,
    Command,
    Core,
    Effects,
    ReplyStatus,
)

__all__ = [
    "Applied",
    "ClientReply",
    "ClientRequest",
    "Command",
    "Core",
    "Effects",
    "ReplyStatus",
]
