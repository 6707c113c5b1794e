"""A PostgreSQL wire-protocol proxy that counts the statements clients execute.

pg_stat_statements would need ``shared_preload_libraries`` and a server restart, and
``pg_stat_database.xact_commit`` counts transactions (ours runs every statement of a
request in one), so the benchmark counts statements on the wire instead: a server is
pointed at this proxy for a short, separate pass, and every simple ``Query`` and every
extended-protocol ``Execute`` from the client counts as one statement (BEGIN, COMMIT and
pool pings included). The statement text is kept (from Parse/Bind for prepared
statements), so the report can say which statements a request runs.

The proxy answers SSL and GSS encryption requests with "no" itself, so the traffic it
reads is always plain.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import struct
from collections import Counter
from collections.abc import Coroutine
from typing import Any

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102


def normalise(sql: str, width: int = 140) -> str:
    text = re.sub(r"\s+", " ", sql).strip()
    return text if len(text) <= width else text[: width - 1] + "…"


class _FrontendParser:
    """Reads the client's side of one connection and counts executed statements."""

    def __init__(self, counter: Counter[str]) -> None:
        self.counter = counter
        self.buffer = bytearray()
        self.started = False
        self.statements: dict[str, str] = {}  # prepared statement name -> SQL
        self.portals: dict[str, str] = {}  # portal name -> SQL

    def feed(self, data: bytes) -> tuple[bytes, bytes]:
        """Consume client bytes; return (reply to the client, bytes to forward upstream).

        Encryption requests are answered "N" here and not forwarded; everything from the
        StartupMessage on is forwarded verbatim."""
        reply, forward = bytearray(), bytearray()
        if self.started:
            forward += data
        self.buffer += data
        while True:
            if not self.started:
                if len(self.buffer) < 8:
                    break
                (length,) = struct.unpack("!I", self.buffer[:4])
                if len(self.buffer) < length:
                    break
                (code,) = struct.unpack("!I", self.buffer[4:8])
                message = bytes(self.buffer[:length])
                del self.buffer[:length]
                if code in (SSL_REQUEST, GSSENC_REQUEST):
                    reply += b"N"
                    continue
                self.started = True  # a StartupMessage (or a CancelRequest)
                forward += message + self.buffer
                continue
            if len(self.buffer) < 5:
                break
            kind = chr(self.buffer[0])
            (length,) = struct.unpack("!I", self.buffer[1:5])
            if len(self.buffer) < 1 + length:
                break
            payload = bytes(self.buffer[5 : 1 + length])
            del self.buffer[: 1 + length]
            self._message(kind, payload)
        return bytes(reply), bytes(forward)

    def _message(self, kind: str, payload: bytes) -> None:
        if kind == "Q":
            self.counter[normalise(_cstring(payload, 0)[0])] += 1
        elif kind == "P":
            name, offset = _cstring(payload, 0)
            self.statements[name] = _cstring(payload, offset)[0]
        elif kind == "B":
            portal, offset = _cstring(payload, 0)
            statement, _ = _cstring(payload, offset)
            self.portals[portal] = self.statements.get(statement, f"<statement {statement}>")
        elif kind == "E":
            portal, _ = _cstring(payload, 0)
            self.counter[normalise(self.portals.get(portal, "<unknown portal>"))] += 1
        elif kind == "C" and payload[:1] == b"S":
            self.statements.pop(_cstring(payload, 1)[0], None)


def _cstring(data: bytes, offset: int) -> tuple[str, int]:
    end = data.index(b"\0", offset)
    return data[offset:end].decode("utf-8", "replace"), end + 1


class CountingProxy:
    """``async with CountingProxy(upstream_host, upstream_port) as proxy``; clients connect
    to ``proxy.port``; ``proxy.counter`` holds statement texts and how often each ran."""

    def __init__(self, upstream_host: str, upstream_port: int, port: int = 0) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.requested_port = port
        self.port = 0
        self.counter: Counter[str] = Counter()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def reset(self) -> None:
        self.counter.clear()

    def total(self) -> int:
        return sum(self.counter.values())

    async def __aenter__(self) -> CountingProxy:
        self._server = await asyncio.start_server(
            self._connection, "127.0.0.1", self.requested_port
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _connection(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_writer.close()
            self._tasks.discard(task)
            return
        parser = _FrontendParser(self.counter)

        async def client_to_server() -> None:
            while data := await client_reader.read(65536):
                reply, forward = parser.feed(data)
                if reply:
                    client_writer.write(reply)
                    await client_writer.drain()
                if forward:
                    server_writer.write(forward)
                    await server_writer.drain()

        async def server_to_client() -> None:
            while data := await server_reader.read(65536):
                client_writer.write(data)
                await client_writer.drain()

        try:
            await _first_done(client_to_server(), server_to_client())
        finally:
            for writer in (client_writer, server_writer):
                writer.close()
            self._tasks.discard(task)


async def _first_done(*coroutines: Coroutine[Any, Any, None]) -> None:
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        pass
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
