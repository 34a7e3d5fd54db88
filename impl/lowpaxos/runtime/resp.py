"""RESP2, the Redis protocol, as a bounded sans-I/O parser and an encoder.

``RespParser.feed(data)`` only buffers; ``next_command()`` returns one command
(a list of byte strings), None when more bytes are needed, or raises
``RespProtocolError`` when the input can never become a valid command, after
which the connection is closed (there is no way to find the next command).

Bounds (Limits in cluster.py): a header or inline line of at most
``inline_bytes_max`` bytes, at most ``arguments_max`` arguments, and bulk
strings of at most ``bulk_bytes_max`` bytes. The buffer therefore never holds
more than one bulk string plus one read. Values between ``value_bytes_max``
and ``bulk_bytes_max`` parse fine and are refused by the command layer with a
clear error: a value is never truncated.
"""

from __future__ import annotations


class RespProtocolError(ValueError):
    """Input that is not RESP within our bounds; reply with the message and close."""


class RespParser:
    __slots__ = ("buffer", "arguments_max", "bulk_bytes_max", "line_bytes_max")

    def __init__(self, arguments_max: int, bulk_bytes_max: int, line_bytes_max: int) -> None:
        self.buffer = bytearray()
        self.arguments_max = arguments_max
        self.bulk_bytes_max = bulk_bytes_max
        self.line_bytes_max = line_bytes_max

    def feed(self, data: bytes) -> None:
        self.buffer += data

    def _line(self, start: int) -> tuple[bytes, int] | None:
        end = self.buffer.find(b"\r\n", start, start + self.line_bytes_max + 2)
        if end < 0:
            if len(self.buffer) - start > self.line_bytes_max:
                raise RespProtocolError("Protocol error: too big line")
            return None
        return bytes(self.buffer[start:end]), end + 2

    def next_command(self) -> list[bytes] | None:
        buffer = self.buffer
        if not buffer:
            return None
        if buffer[0] != ord("*"):
            return self._inline()
        found = self._line(0)
        if found is None:
            return None
        header, position = found
        count = _integer(header[1:], "multibulk length")
        if count > self.arguments_max:
            raise RespProtocolError(
                f"Protocol error: {count} arguments, at most {self.arguments_max}"
            )
        if count <= 0:
            del buffer[:position]
            return [] if count == 0 else None
        arguments = []
        for _ in range(count):
            found = self._line(position)
            if found is None:
                return None
            header, position = found
            if not header.startswith(b"$"):
                raise RespProtocolError(f"Protocol error: expected '$', got {header[:1]!r}")
            length = _integer(header[1:], "bulk length")
            if length < 0:
                raise RespProtocolError("Protocol error: invalid bulk length")
            if length > self.bulk_bytes_max:
                raise RespProtocolError(
                    f"Protocol error: bulk of {length} bytes, at most {self.bulk_bytes_max}"
                )
            if len(buffer) < position + length + 2:
                return None
            if buffer[position + length:position + length + 2] != b"\r\n":
                raise RespProtocolError("Protocol error: bulk string not followed by CRLF")
            arguments.append(bytes(buffer[position:position + length]))
            position += length + 2
        del buffer[:position]
        return arguments

    def _inline(self) -> list[bytes] | None:
        end = self.buffer.find(b"\n", 0, self.line_bytes_max + 1)
        if end < 0:
            if len(self.buffer) > self.line_bytes_max:
                raise RespProtocolError("Protocol error: too big inline request")
            return None
        line = bytes(self.buffer[:end]).rstrip(b"\r")
        del self.buffer[:end + 1]
        arguments = line.split()
        if len(arguments) > self.arguments_max:
            raise RespProtocolError(
                f"Protocol error: {len(arguments)} arguments, at most {self.arguments_max}"
            )
        return arguments


def _integer(text: bytes, what: str) -> int:
    if not text or len(text) > 20:
        raise RespProtocolError(f"Protocol error: invalid {what}")
    try:
        return int(text)
    except ValueError:
        raise RespProtocolError(f"Protocol error: invalid {what}") from None


# ---- Encoding replies ----

OK = b"+OK\r\n"
PONG = b"+PONG\r\n"
NIL = b"$-1\r\n"
EMPTY_ARRAY = b"*0\r\n"


def simple(text: str) -> bytes:
    return b"+" + text.encode() + b"\r\n"


def error(text: str) -> bytes:
    # A RESP error is one line: no CR or LF inside.
    return b"-" + text.replace("\r", " ").replace("\n", " ").encode() + b"\r\n"


def integer(value: int) -> bytes:
    return b":%d\r\n" % value


def bulk(value: bytes | None) -> bytes:
    if value is None:
        return NIL
    return b"$%d\r\n%s\r\n" % (len(value), value)


def array(items: list[bytes | None]) -> bytes:
    return b"*%d\r\n" % len(items) + b"".join(bulk(item) for item in items)


def encode_command(arguments: list[bytes | str | int]) -> bytes:
    parts = [b"*%d\r\n" % len(arguments)]
    for argument in arguments:
        if isinstance(argument, str):
            argument = argument.encode()
        elif isinstance(argument, int):
            argument = str(argument).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(argument), argument))
    return b"".join(parts)


class ReplyParser:
    """Parses server replies for the asyncio client: (kind, value) tuples.

    kind is one of "+", "-", ":", "$", "*" (an array of bulk strings or integers).
    """

    __slots__ = ("buffer", "bulk_bytes_max")

    def __init__(self, bulk_bytes_max: int = 1 << 24) -> None:
        self.buffer = bytearray()
        self.bulk_bytes_max = bulk_bytes_max

    def feed(self, data: bytes) -> None:
        self.buffer += data

    def _one(self, position: int):
        end = self.buffer.find(b"\r\n", position)
        if end < 0:
            return None
        kind = chr(self.buffer[position])
        body = bytes(self.buffer[position + 1:end])
        position = end + 2
        if kind in "+-":
            return (kind, body.decode(errors="replace")), position
        if kind == ":":
            return (kind, int(body)), position
        if kind == "$":
            length = int(body)
            if length < 0:
                return ("$", None), position
            if length > self.bulk_bytes_max:
                raise RespProtocolError("reply bulk too large")
            if len(self.buffer) < position + length + 2:
                return None
            return ("$", bytes(self.buffer[position:position + length])), position + length + 2
        if kind == "*":
            count = int(body)
            items = []
            for _ in range(max(count, 0)):
                found = self._one(position)
                if found is None:
                    return None
                (item_kind, item), position = found
                items.append(item)
            return ("*", items if count >= 0 else None), position
        raise RespProtocolError(f"unexpected reply type {kind!r}")

    def next_reply(self):
        if not self.buffer:
            return None
        found = self._one(0)
        if found is None:
            return None
        reply, position = found
        del self.buffer[:position]
        return reply
