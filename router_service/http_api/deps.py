"""FastAPI dependencies as `Annotated` aliases; tests override `get_runtime`/`get_engine`.

All are `async def` although none awaits: FastAPI runs a plain `def` dependency in a worker
thread, a thread hop (and GIL hand-off) on every request of a latency-bound endpoint."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.requests import HTTPConnection

from router_service.engine import ActEngine
from router_service.keys import RobotKey
from router_service.runtime import RouterRuntime
from router_service.settings import RouterSettings


async def get_runtime(conn: HTTPConnection) -> RouterRuntime:
    runtime: RouterRuntime = conn.app.state.runtime
    return runtime


async def get_engine(conn: HTTPConnection) -> ActEngine:
    engine: ActEngine = conn.app.state.engine
    return engine


async def get_settings(conn: HTTPConnection) -> RouterSettings:
    settings: RouterSettings = conn.app.state.settings
    return settings


Runtime = Annotated[RouterRuntime, Depends(get_runtime)]
Engine = Annotated[ActEngine, Depends(get_engine)]
Settings = Annotated[RouterSettings, Depends(get_settings)]


async def require_robot(request: Request) -> RobotKey:
    key: RobotKey = request.app.state.api_keys.robot(request.headers.get("authorization"))
    return key


async def require_admin(request: Request) -> None:
    request.app.state.api_keys.check_admin(request.headers.get("authorization"))


RobotAuth = Depends(require_robot)
AdminAuth = Depends(require_admin)
Caller = Annotated[RobotKey, RobotAuth]  # the authenticated key, for what it may do
