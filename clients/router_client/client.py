"""The router clients: `RouterClient` (blocking) and `AsyncRouterClient` (asyncio).

Why two thin clients over a shared sans-I/O core, rather than an async core that the
sync client drives on a private event-loop thread: a robot's control loop is usually
synchronous and latency-bound. A loop thread would add a thread hop and its jitter to
every step, hide a thread inside a library (fork-unsafe, awkward to shut down) and turn
stack traces into cross-thread ones. httpx and grpc both ship native sync and async
APIs, so all that differs between the two clients is which of them is called; request
building, reply parsing, error mapping and retry decisions (`_codec`, `errors`,
`_retry`) exist once, and the only duplicated control flow is the five-line retry loop.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Literal

import grpc
import httpx

from ._grpc import AsyncGrpcTransport, GrpcTransport, auth_metadata, open_aio_channel, open_channel
from ._http import AsyncHttpTransport, HttpTransport
from ._retry import acall_with_retries, act_budget, call_with_retries, feedback_budget
from .config import RetryPolicy, Timeouts
from .messages import ActRequest, ActResponse, Feedback
from .session import ActSession, AsyncActSession

__all__ = ["API_KEY_ENV", "AsyncRouterClient", "RouterClient", "Transport"]

Transport = Literal["http", "grpc"]
API_KEY_ENV = "ROUTER_API_KEY"
DEFAULT_URL = "http://localhost:8080"
DEFAULT_GRPC_PORT = 50051


def default_grpc_target(url: str) -> str:
    """The router serves gRPC on the HTTP host at port 50051 (docs/interfaces.md)."""
    host = httpx.URL(url).host or "localhost"
    return f"[{host}]:{DEFAULT_GRPC_PORT}" if ":" in host else f"{host}:{DEFAULT_GRPC_PORT}"


@dataclass(frozen=True, slots=True)
class _Config:
    """What both clients are configured with, resolved once."""

    url: str
    api_key: str | None
    transport: Transport
    grpc_target: str
    grpc_credentials: grpc.ChannelCredentials | None
    grpc_options: tuple[tuple[str, Any], ...]
    timeouts: Timeouts
    retry: RetryPolicy

    @classmethod
    def resolve(cls, url: str, api_key: str | None, transport: str, grpc_target: str | None,
                grpc_credentials: grpc.ChannelCredentials | None,
                grpc_options: tuple[tuple[str, Any], ...], timeouts: Timeouts | None,
                retry: RetryPolicy | None) -> _Config:
        if transport not in ("http", "grpc"):
            raise ValueError(f"transport must be 'http' or 'grpc', got {transport!r}")
        return cls(
            url=url.rstrip("/"),
            api_key=api_key if api_key is not None else os.environ.get(API_KEY_ENV),
            transport="grpc" if transport == "grpc" else "http",
            grpc_target=grpc_target or default_grpc_target(url),
            grpc_credentials=grpc_credentials,
            grpc_options=grpc_options,
            timeouts=timeouts or Timeouts(),
            retry=retry or RetryPolicy(),
        )


class RouterClient:
    """Blocking client of the policy router.

    `url` is the router's HTTP base URL, used for `feedback` always and for `act` when
    `transport="http"`. With `transport="grpc"`, `act` goes over gRPC to `grpc_target`
    (default: the URL's host, port 50051); `session()` always uses gRPC. `api_key`
    defaults to $ROUTER_API_KEY. `httpx_transport` replaces httpx's network layer (tests,
    proxies). Safe to share between threads except for the sessions it hands out.
    """

    def __init__(self, url: str = DEFAULT_URL, *, api_key: str | None = None,
                 transport: Transport = "http", grpc_target: str | None = None,
                 grpc_credentials: grpc.ChannelCredentials | None = None,
                 grpc_options: tuple[tuple[str, Any], ...] = (),
                 timeouts: Timeouts | None = None, retry: RetryPolicy | None = None,
                 httpx_transport: httpx.BaseTransport | None = None) -> None:
        self._config = _Config.resolve(url, api_key, transport, grpc_target, grpc_credentials,
                                       grpc_options, timeouts, retry)
        self._http = HttpTransport(self._config.url, self._config.api_key,
                                   self._config.timeouts, httpx_transport)
        self._grpc_transport: GrpcTransport | None = None
        self._grpc_lock = threading.Lock()

    @property
    def transport(self) -> Transport:
        return self._config.transport

    def _grpc(self) -> GrpcTransport:
        # Opened on first use (an HTTP-only robot never needs the channel), under a lock
        # so threads sharing the client share one channel.
        with self._grpc_lock:
            if self._grpc_transport is None:
                config = self._config
                channel = open_channel(config.grpc_target, config.grpc_credentials,
                                       config.grpc_options)
                self._grpc_transport = GrpcTransport(channel, auth_metadata(config.api_key))
            return self._grpc_transport

    def act(self, request: ActRequest) -> ActResponse:
        """Ask for an action. Raises a `RouterError` subclass (see `errors`)."""
        send = self._grpc().act if self._config.transport == "grpc" else self._http.act
        budget = act_budget(request, self._config.timeouts, self._config.retry)
        response = call_with_retries(partial(send, request), budget)
        return replace(response, client_ms=budget.elapsed_s() * 1000.0)

    def feedback(self, feedback: Feedback) -> None:
        """Report an outcome over HTTP (the gRPC API has no feedback call)."""
        budget = feedback_budget(self._config.timeouts, self._config.retry)
        call_with_retries(partial(self._http.feedback, feedback), budget)

    def session(self, robot_id: str) -> ActSession:
        """Open a StreamAct session for one robot (gRPC)."""
        return ActSession(self._grpc(), robot_id, self._config.timeouts, self._config.retry)

    def close(self) -> None:
        self._http.close()
        with self._grpc_lock:
            if self._grpc_transport is not None:
                self._grpc_transport.close()
                self._grpc_transport = None

    def __enter__(self) -> RouterClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncRouterClient:
    """The asyncio client; same arguments and behaviour as `RouterClient`, with
    `await`-able methods and `aclose()`. Use it from one event loop."""

    def __init__(self, url: str = DEFAULT_URL, *, api_key: str | None = None,
                 transport: Transport = "http", grpc_target: str | None = None,
                 grpc_credentials: grpc.ChannelCredentials | None = None,
                 grpc_options: tuple[tuple[str, Any], ...] = (),
                 timeouts: Timeouts | None = None, retry: RetryPolicy | None = None,
                 httpx_transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._config = _Config.resolve(url, api_key, transport, grpc_target, grpc_credentials,
                                       grpc_options, timeouts, retry)
        self._http = AsyncHttpTransport(self._config.url, self._config.api_key,
                                        self._config.timeouts, httpx_transport)
        self._grpc_transport: AsyncGrpcTransport | None = None

    @property
    def transport(self) -> Transport:
        return self._config.transport

    def _grpc(self) -> AsyncGrpcTransport:
        # Opened on first use, inside the running loop that will own it.
        if self._grpc_transport is None:
            config = self._config
            channel = open_aio_channel(config.grpc_target, config.grpc_credentials,
                                       config.grpc_options)
            self._grpc_transport = AsyncGrpcTransport(channel, auth_metadata(config.api_key))
        return self._grpc_transport

    async def act(self, request: ActRequest) -> ActResponse:
        send = self._grpc().act if self._config.transport == "grpc" else self._http.act
        budget = act_budget(request, self._config.timeouts, self._config.retry)
        response = await acall_with_retries(partial(send, request), budget)
        return replace(response, client_ms=budget.elapsed_s() * 1000.0)

    async def feedback(self, feedback: Feedback) -> None:
        budget = feedback_budget(self._config.timeouts, self._config.retry)
        await acall_with_retries(partial(self._http.feedback, feedback), budget)

    def session(self, robot_id: str) -> AsyncActSession:
        return AsyncActSession(self._grpc(), robot_id, self._config.timeouts,
                               self._config.retry)

    async def aclose(self) -> None:
        await self._http.aclose()
        if self._grpc_transport is not None:
            await self._grpc_transport.aclose()
            self._grpc_transport = None

    async def __aenter__(self) -> AsyncRouterClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
