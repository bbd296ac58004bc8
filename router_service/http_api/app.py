"""The FastAPI application. `create_app(settings)` builds it; its lifespan owns the runtime
(Triton client, store, metrics, decision log) and the gRPC server sharing the same engine.
`serve_app()` is what the server runs: the app behind the lean `POST /v1/act` path."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from router_service.auth import ApiKeys
from router_service.engine import ActEngine
from router_service.errors import RouterError
from router_service.gc_pauses import GcPauses
from router_service.http_api import act, contract, feedback, health, openpi, stream
from router_service.http_api.fast_path import LeanActPath
from router_service.http_api.responses import router_error_handler
from router_service.keys import describe
from router_service.kserve import http_routes as kserve_http
from router_service.runtime import RouterRuntime
from router_service.settings import RouterSettings

log = logging.getLogger("router_service")


def create_app(settings: RouterSettings | None = None) -> FastAPI:
    settings = settings or RouterSettings()
    # Before anything starts: a bad key configuration stops the process, naming the field.
    api_keys = ApiKeys.from_settings(settings)
    log.info("robot keys (by key_id): %s", describe(api_keys.robot_keys))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from router_service.grpc_api.server import start_grpc_server  # grpc only when serving

        runtime = RouterRuntime(settings)
        await runtime.start()
        runtime.drain.install(asyncio.get_running_loop())
        engine = ActEngine(runtime, api_keys)
        app.state.runtime, app.state.engine = runtime, engine
        grpc_server = await start_grpc_server(engine, settings) if settings.grpc_port else None
        lerobot_server = None  # LeRobot's AsyncInference (no auth: off unless enabled)
        if settings.lerobot_enabled:
            from router_service.lerobot.server import start_lerobot_server

            lerobot_server = await start_lerobot_server(engine, settings)
        # Everything built at start-up (models, clients, contract) lives as long as the process:
        # move it out of the collector's sight so full collections stay short under load.
        gc.collect()
        gc.freeze()
        pauses = GcPauses(runtime.metrics.gc_pause)
        pauses.install()
        try:
            yield
        finally:
            pauses.remove()
            if lerobot_server is not None:
                await lerobot_server.stop(grace=1.0)
            if grpc_server is not None:
                await grpc_server.stop(grace=2.0)
            await runtime.close()

    app = FastAPI(title="Robot policy router", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.api_keys = api_keys
    app.add_exception_handler(RouterError, router_error_handler)
    for module in (act, stream, openpi, feedback, contract, health, kserve_http):
        app.include_router(module.router)
    return app


def serve_app() -> LeanActPath:
    """The ASGI app uvicorn serves (`--factory`; each worker process calls it)."""
    return LeanActPath(create_app())
