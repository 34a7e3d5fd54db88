"""An asyncio client for programs: RESP2 over a bounded pool of TCP connections.

    async with LowPaxosClient([("127.0.0.1", 6380)], connections=16) as client:
        await client.set("k", b"v")
        value = await client.get("k")

Each connection is one session at the replica and carries one command at a time
(replies come back in order); ``connections`` bounds how many commands are in
flight. Any replica accepts any command (followers forward to the leader), so a
connection that breaks is reopened to the next address, a bounded number of times.
A command whose connection broke mid-way has an unknown outcome and raises
``ConnectionError``; a RESP error reply raises ``ReplyError``.
"""

from __future__ import annotations

import asyncio

from lowpaxos.runtime.resp import ReplyParser, encode_command

RECONNECT_TRIES_MAX = 8
READ_BYTES = 65536


class ReplyError(Exception):
    """The server answered with a RESP error (its text is the message)."""


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.parser = ReplyParser()

    async def call(self, arguments) -> tuple[str, object]:
        self.writer.write(encode_command(arguments))
        # Bounded by the server: one reply per command; EOF ends the loop.
        while True:
            reply = self.parser.next_reply()
            if reply is not None:
                return reply
            data = await self.reader.read(READ_BYTES)
            if not data:
                raise ConnectionError("the replica closed the connection")
            self.parser.feed(data)

    def close(self) -> None:
        self.writer.close()


class LowPaxosClient:
    def __init__(self, addresses: list[tuple[str, int]], connections: int = 8,
                 timeout_s: float = 10.0) -> None:
        assert addresses, "at least one replica address"
        assert connections >= 1, "at least one connection"
        self.addresses = list(addresses)
        self.connections_max = connections
        self.timeout_s = timeout_s
        self.idle: asyncio.Queue[_Connection | None] = asyncio.Queue()
        self.next_address = 0

    async def __aenter__(self) -> "LowPaxosClient":
        for _ in range(self.connections_max):
            self.idle.put_nowait(None)  # opened lazily
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        while not self.idle.empty():
            connection = self.idle.get_nowait()
            if connection is not None:
                connection.close()

    async def _open(self) -> _Connection:
        last_error: Exception | None = None
        for _ in range(RECONNECT_TRIES_MAX):
            host, port = self.addresses[self.next_address % len(self.addresses)]
            self.next_address += 1
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(host, port), self.timeout_s)
                return _Connection(reader, writer)
            except (OSError, asyncio.TimeoutError) as error:
                last_error = error
                await asyncio.sleep(0.05)
        raise ConnectionError(f"no replica reachable: {last_error!r}")

    async def execute(self, *arguments) -> object:
        """Send one command; its reply value, or ReplyError / ConnectionError."""
        connection = await self.idle.get()
        try:
            if connection is None:
                connection = await self._open()
            kind, value = await asyncio.wait_for(connection.call(arguments), self.timeout_s)
        except BaseException:
            if connection is not None:
                connection.close()
            self.idle.put_nowait(None)
            raise
        self.idle.put_nowait(connection)
        if kind == "-":
            raise ReplyError(value)
        return value

    # ---- the commands ----

    async def ping(self) -> bool:
        return await self.execute("PING") == "PONG"

    async def get(self, key: str | bytes) -> bytes | None:
        return await self.execute("GET", key)

    async def set(self, key: str | bytes, value: bytes) -> None:
        await self.execute("SET", key, value)

    async def set_if_absent(self, key: str | bytes, value: bytes) -> bool:
        return await self.execute("SET", key, value, "NX") == "OK"

    async def delete(self, key: str | bytes) -> bool:
        return await self.execute("DEL", key) == 1

    async def exists(self, key: str | bytes) -> bool:
        return await self.execute("EXISTS", key) == 1

    async def incr(self, key: str | bytes) -> int:
        return await self.execute("INCR", key)

    async def cas(self, key: str | bytes, expected: bytes, value: bytes) -> bool:
        return await self.execute("CAS", key, expected, value) == 1

    async def info(self) -> dict[str, str]:
        text = await self.execute("INFO")
        fields = {}
        for line in text.decode().splitlines():
            if line and not line.startswith("#") and ":" in line:
                name, _, value = line.partition(":")
                fields[name] = value
        return fields
