"""Support for the load generator's tests.

The stand-ins here test the load generator itself (its clock, its bookkeeping, its parsing): a
target that sleeps, and a tiny router-shaped HTTP server with a controllable delay. They are not
models of the router; the router's own behaviour is tested against the real one.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from deploy.local.process import free_port
from loadtest.targets.base import Outcome


@dataclass(frozen=True)
class TritonEndpoints:
    """Where the shared `triton_server` fixture serves (see conftest.triton_endpoints)."""

    grpc: str  # host:port
    http: str  # http://host:port
    manifest: Path


class SleepTarget:
    """`send` sleeps for `service_s(i, now)` seconds; remembers when each request was sent."""

    name = "sleep"

    def __init__(self, service_s: Callable[[int, float], float], clock: Callable[[], float]):
        self.service_s = service_s
        self.clock = clock
        self.sent_at: dict[int, float] = {}
        self.max_concurrent = 0
        self._inflight = 0

    async def start(self) -> None:
        pass

    async def preflight(self) -> None:
        pass

    async def send(self, i: int) -> Outcome:
        now = self.clock()
        self.sent_at[i] = now
        self._inflight += 1
        self.max_concurrent = max(self.max_concurrent, self._inflight)
        try:
            await asyncio.sleep(self.service_s(i, now))
        finally:
            self._inflight -= 1
        return Outcome("ok", "fake_route")

    async def close(self) -> None:
        pass


@dataclass
class FakeRouterState:
    api_key: str = "test-key"
    delay_ms: float = 1.0
    upstream_per_request: int = 1  # 2 imitates a hedged request in the metrics
    status: int = 200
    requests: int = 0
    upstream: dict[str, int] = field(default_factory=dict)
    bodies: list[dict[str, Any]] = field(default_factory=list)


def fake_router_app(state: FakeRouterState) -> FastAPI:
    app = FastAPI()

    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        return {"status": "ready"}

    @app.post("/v1/act")
    async def act(request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {state.api_key}":
            return JSONResponse({"error": {"code": "unauthenticated", "message": "no"}}, 401)
        body = await request.json()
        state.requests += 1
        if len(state.bodies) < 50:
            state.bodies.append(body)
        await asyncio.sleep(state.delay_ms / 1000.0)
        if state.status != 200:
            err = {"error": {"code": "overloaded", "message": "shed", "retry_after_ms": 5}}
            return JSONResponse(err, state.status)
        task = body.get("task")
        route = f"specialist_{task.replace('-', '_')}" if task else "generalist"
        state.upstream[route] = state.upstream.get(route, 0) + state.upstream_per_request
        return JSONResponse(
            {
                "action": [0.0, 0.0, 0.0, 0.0],
                "route": route,
                "task": task or "reach-v3",
                "task_source": "declared" if task else "inferred",
                "fallback": None,
                "deadline_met": True,
                "decision_id": "d",
            }
        )

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        lines = ["# TYPE router_upstream_duration_seconds histogram"]
        for route, n in sorted(state.upstream.items()):
            lines.append(f'router_upstream_duration_seconds_count{{route="{route}"}} {n}')
        lines.append("# TYPE router_requests_total counter")
        lines.append(f'router_requests_total{{route="all",outcome="ok"}} {state.requests}')
        return PlainTextResponse("\n".join(lines) + "\n")

    return app


class ServerThread:
    """uvicorn in a background thread, on a free port of 127.0.0.1."""

    def __init__(self, app: FastAPI) -> None:
        self.port = free_port()
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            access_log=False,
            loop="asyncio",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
