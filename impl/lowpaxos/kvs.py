"""The replicated state machine: a key-value store with client sessions.

It knows nothing of consensus. Every replica applies the same commands in the
same order and so reaches the same state. The client table (VR Revisited §4:
the latest request number of each client and its result) makes a retried
request execute at most once: a command whose request number is not newer
than the client's latest is not executed again.
"""

from __future__ import annotations

import hashlib

import msgpack

from lowpaxos.core.api import OPS, Command

Result = bytes | bool | None


class KeyValueStore:
    __slots__ = ("data", "sessions", "executed")

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        # client id -> (latest executed request id, its result)
        self.sessions: dict[int, tuple[int, Result]] = {}
        self.executed = 0  # commands executed (not counting suppressed duplicates)

    def session_result(self, client_id: int, request_id: int) -> tuple[bool, Result]:
        """(True, result) when this exact request already executed; (False, None) otherwise."""
        latest = self.sessions.get(client_id)
        if latest is not None and latest[0] == request_id:
            return True, latest[1]
        return False, None

    def is_stale(self, client_id: int, request_id: int) -> bool:
        """True when the client has already moved past this request id."""
        latest = self.sessions.get(client_id)
        return latest is not None and request_id < latest[0]

    def apply(self, command: Command) -> Result:
        """Execute ``command`` unless its session shows it already ran; return its result."""
        latest = self.sessions.get(command.client_id)
        if latest is not None and command.request_id <= latest[0]:
            # A duplicate of an executed request: report the recorded result if it is the
            # latest one, and execute nothing (at-most-once).
            return latest[1] if command.request_id == latest[0] else None
        result = self.execute(command)
        self.sessions[command.client_id] = (command.request_id, result)
        self.executed += 1
        return result

    def execute(self, command: Command) -> Result:
        op = command.op
        key = command.key
        if op == "get":
            return self.data.get(key)
        if op == "put":
            assert command.value is not None, "put carries a value"
            self.data[key] = command.value
            return None
        if op == "delete":
            return self.data.pop(key, None) is not None
        if op == "cas":
            if self.data.get(key) != command.expected:
                return False
            if command.value is None:
                self.data.pop(key, None)
            else:
                self.data[key] = command.value
            return True
        raise ValueError(f"unknown operation {op!r}; expected one of {OPS}")

    # ---- snapshots ----

    def snapshot(self) -> bytes:
        """Deterministic bytes of the whole state (sorted, so equal states give equal bytes)."""
        return msgpack.packb(
            [
                sorted(self.data.items()),
                sorted([cid, rid, res] for cid, (rid, res) in self.sessions.items()),
                self.executed,
            ],
            use_bin_type=True,
        )

    @classmethod
    def restore(cls, state: bytes) -> "KeyValueStore":
        """Rebuild a store from ``snapshot()`` bytes; ValueError if they are not that."""
        try:
            data, sessions, executed = msgpack.unpackb(state, raw=False, strict_map_key=False)
            store = cls()
            for key, value in data:
                if not isinstance(key, str) or not isinstance(value, bytes):
                    raise ValueError("a data entry is not (str, bytes)")
                store.data[key] = value
            for client_id, request_id, result in sessions:
                if not isinstance(client_id, int) or not isinstance(request_id, int):
                    raise ValueError("a session is not (int, int, result)")
                if result is not None and not isinstance(result, (bytes, bool)):
                    raise ValueError("a session result is not bytes, bool or nil")
                store.sessions[client_id] = (request_id, result)
            if not isinstance(executed, int):
                raise ValueError("the executed count is not an int")
            store.executed = executed
        except ValueError:
            raise
        except Exception as error:  # msgpack's own errors, wrong shapes, wrong arity
            raise ValueError(f"not a KVS snapshot: {error}") from error
        return store

    def digest(self) -> str:
        return hashlib.sha256(self.snapshot()).hexdigest()[:16]


def valid_command(command: object) -> str | None:
    """Why ``command`` is not a well-formed KVS command, or None when it is."""
    if not isinstance(command, Command):
        return "not_a_command"
    if not isinstance(command.client_id, int) or not isinstance(command.request_id, int):
        return "bad_session"
    if command.client_id < 0 or command.request_id < 0:
        return "bad_session"
    if command.op not in OPS:
        return "unknown_op"
    if not isinstance(command.key, str):
        return "bad_key"
    if command.op in ("put",) and not isinstance(command.value, bytes):
        return "bad_value"
    if command.op == "cas":
        if command.value is not None and not isinstance(command.value, bytes):
            return "bad_value"
        if command.expected is not None and not isinstance(command.expected, bytes):
            return "bad_value"
    return None
