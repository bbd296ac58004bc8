"""Fixtures for the client SDK's unit tests (the doubles themselves are in router_fakes)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from router_client.proto import router_pb2_grpc
from router_fakes import FakeRouter, RouterServicer


@pytest.fixture(scope="module")
def grpc_server() -> Iterator[tuple[grpc.Server, FakeRouter]]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    port = server.add_insecure_port("127.0.0.1:0")
    router = FakeRouter(port)
    router_pb2_grpc.add_PolicyRouterServicer_to_server(RouterServicer(router), server)
    server.start()
    yield server, router
    server.stop(grace=None)


@pytest.fixture
def fake_router(grpc_server: tuple[grpc.Server, FakeRouter]) -> FakeRouter:
    """The module's gRPC router with an empty script and history."""
    router = grpc_server[1]
    router.script.clear()
    router.seen.clear()
    router.streams_opened = 0
    return router


@pytest.fixture
def closed_port() -> int:
    """A local port nobody listens on (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
