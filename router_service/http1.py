"""A minimal HTTP/1.1 client: keep-alive connections driven by an asyncio protocol, replies
parsed by httptools (the C parser uvicorn uses). One request at a time per connection; a pool
hands an idle connection to each call and opens another when all are busy.

It exists because the general-purpose clients cost more CPU per call than the work they carry
here (a Triton call through it: 0.20 ms of CPU; through grpc.aio 0.46 ms; httpx cost the load
generator ~1.9 ms per router request), and both the router's upstream and the load generator
make hundreds of calls a second on the same two cores as the servers they measure.

A connection whose call timed out or was cancelled (a hedge's loser) is not reused until the
late reply has been read and discarded (it drains), or it would be read as the next call's
reply; one whose reply does not come within `DRAIN_S`, or whose call failed mid-way, is closed.
Closing at once cost a TCP handshake and teardown per timed-out or hedged call, on both sides,
exactly when the host is busiest.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import cast

import httptools

from router_service.errors import UpstreamRejected, UpstreamTimeout, UpstreamUnavailable

MAX_IDLE = 64
DRAIN_S = 1.0  # how long a connection waits for the late reply of an abandoned call


class Reply:
    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, body: bytes, headers: dict[bytes, bytes]) -> None:
        self.status, self.body, self.headers = status, body, headers


class _Connection(asyncio.Protocol):
    """One keep-alive connection: one request at a time, its reply parsed by httptools."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[Reply] | None = None
        self.closed = False
        self._parser = httptools.HttpResponseParser(self)
        self._chunks: list[bytes] = []
        self._headers: dict[bytes, bytes] = {}
        # Set while the connection drains an abandoned call: called once its reply is read.
        self._drained: Callable[[_Connection], None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCP transport is not an asyncio.Transport subclass, but has its methods.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamRejected(f"malformed HTTP reply: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(UpstreamUnavailable(f"connection closed: {exc or 'by peer'}"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)

    def on_message_complete(self) -> None:
        reply = Reply(self._parser.get_status_code(), b"".join(self._chunks), self._headers)
        self._chunks, self._headers = [], {}
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(reply)
        elif self._drained is not None:  # the late reply of an abandoned call: discarded
            drained, self._drained = self._drained, None
            drained(self)

    def drain(self, then: Callable[[_Connection], None]) -> None:
        """Keep the connection until the reply of the call just abandoned arrives, then hand it
        to `then`; close it if that reply has not come within `DRAIN_S`."""
        self._drained = then
        asyncio.get_running_loop().call_later(DRAIN_S, self._drain_expired, then)

    def _drain_expired(self, then: Callable[[_Connection], None]) -> None:
        if self._drained is then:
            self.close()

    def _fail(self, exc: Exception) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)

    async def send(self, request: bytes) -> Reply:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self.waiter

    def close(self) -> None:
        self.closed = True
        self._drained = None
        if self.transport is not None:
            self.transport.close()


class Http1Pool:
    """Keep-alive connections to one `host:port`. `request` raises `UpstreamTimeout`,
    `UpstreamUnavailable` (cannot connect, connection lost) or `UpstreamRejected` (malformed)."""

    def __init__(self, url: str) -> None:
        host, _, port = url.split("://", 1)[-1].rstrip("/").rpartition(":")
        self.url = url
        self._host, self._port = host or "127.0.0.1", int(port)
        self._idle: list[_Connection] = []

    async def _connection(self) -> _Connection:
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed:
                return conn
        loop = asyncio.get_running_loop()
        try:
            _, conn = await loop.create_connection(_Connection, self._host, self._port)
        except OSError as exc:
            raise UpstreamUnavailable(f"{self.url}: {exc}") from exc
        return conn

    async def request(self, request: bytes, timeout_s: float, what: str) -> Reply:
        conn = await self._connection()
        try:
            async with asyncio.timeout(timeout_s):
                reply = await conn.send(request)
        except TimeoutError as exc:
            self._abandon(conn)
            raise UpstreamTimeout(f"{what}: timed out") from exc
        except asyncio.CancelledError:  # a hedge's loser, or a caller that gave up
            self._abandon(conn)
            raise
        except BaseException:
            conn.close()  # failed mid-call (connection lost, malformed reply)
            raise
        self._release(conn)
        return reply

    def _abandon(self, conn: _Connection) -> None:
        """Its reply is still coming and must not be read as the next call's: the connection
        drains it before it is reused."""
        if conn.closed:
            return
        conn.drain(self._release)

    def _release(self, conn: _Connection) -> None:
        if not conn.closed and len(self._idle) < MAX_IDLE:
            self._idle.append(conn)
        else:
            conn.close()

    async def warm(self, connections: int) -> None:
        """Open `connections` up front, so the first calls do not pay for the handshake."""
        opened = [await self._connection() for _ in range(connections)]
        self._idle.extend(opened)

    def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()
