"""The HTTP/1.1 pool against a real socket server: an abandoned call's connection drains its late
reply and is reused; it never hands that reply to the next call."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from router_service import http1
from router_service.errors import UpstreamTimeout
from router_service.http1 import Http1Pool


class SlowServer:
    """Answers `GET /<delay_ms>/<tag>` with body `<tag>` after `delay_ms`, in order, one
    connection at a time per client; counts the connections it accepted."""

    def __init__(self) -> None:
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while line := await reader.readline():
                _, path, _ = line.decode().split(" ")
                while (await reader.readline()) not in (b"\r\n", b""):
                    pass
                delay_ms, tag = path.strip("/").split("/")
                await asyncio.sleep(int(delay_ms) / 1000)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s"
                             % (len(tag), tag.encode()))
                await writer.drain()
        except (ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"


@pytest.fixture
async def server() -> AsyncIterator[SlowServer]:
    s = SlowServer()
    s.server = await asyncio.start_server(s._handle, "127.0.0.1", 0)
    yield s
    s.server.close()


def get(delay_ms: int, tag: str) -> bytes:
    return f"GET /{delay_ms}/{tag} HTTP/1.1\r\nHost: x\r\n\r\n".encode()


async def test_a_timed_out_call_drains_then_its_connection_is_reused(server: SlowServer) -> None:
    pool = Http1Pool(server.url)
    with pytest.raises(UpstreamTimeout):
        await pool.request(get(100, "late"), 0.02, "slow")
    # While it drains, a new call gets a new connection (the first is still busy).
    assert (await pool.request(get(0, "second"), 1.0, "x")).body == b"second"
    await asyncio.sleep(0.15)  # the late reply arrives and is discarded
    # Two calls at once: both connections are idle again, neither hands over the late reply.
    replies = await asyncio.gather(*(pool.request(get(20, f"r{i}"), 1.0, "x") for i in range(2)))
    assert sorted(r.body for r in replies) == [b"r0", b"r1"]
    assert server.connections == 2  # no connection was opened after the drain
    pool.close()


async def test_a_cancelled_call_drains_like_a_timed_out_one(server: SlowServer) -> None:
    pool = Http1Pool(server.url)
    call = asyncio.ensure_future(pool.request(get(50, "loser"), 1.0, "hedge"))
    await asyncio.sleep(0.01)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await asyncio.sleep(0.1)
    assert (await pool.request(get(0, "next"), 1.0, "x")).body == b"next"
    assert server.connections == 1
    pool.close()


async def test_a_reply_that_never_comes_closes_the_connection(
    server: SlowServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http1, "DRAIN_S", 0.05)
    pool = Http1Pool(server.url)
    with pytest.raises(UpstreamTimeout):
        await pool.request(get(5000, "never"), 0.02, "stuck")
    await asyncio.sleep(0.1)  # past DRAIN_S: closed, not returned to the pool
    assert (await pool.request(get(0, "fresh"), 1.0, "x")).body == b"fresh"
    assert server.connections == 2
    pool.close()
