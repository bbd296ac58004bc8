"""`POST /v1/act`: one observation in, one action out, inside the request's deadline."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response

from router_service.engine import ActInput
from router_service.errors import RouterError
from router_service.http_api.deps import Engine, RobotAuth, Settings
from router_service.http_api.responses import FastJSON
from router_service.http_api.schemas import ActBody, parse_body, read_body

router = APIRouter(prefix="/v1", tags=["act"])


@router.post(
    "/act",
    dependencies=[RobotAuth],
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": ActBody.model_json_schema()}}}},
)
async def act(request: Request, engine: Engine, settings: Settings) -> Response:
    received_at = time.monotonic()
    try:
        engine.admit()
        body = parse_body(ActBody, await read_body(request, settings.max_body_bytes),
                      settings.max_body_bytes)
    except RouterError as exc:
        engine.count_refusal(exc)
        raise
    engine.rt.inflight += 1
    engine.rt.metrics.inflight.inc()
    try:
        reply = await engine.act(ActInput(
            robot_id=body.robot_id, episode_id=body.episode_id, task=body.task,
            state=body.observation.state, deadline_ms=body.deadline_ms, received_at=received_at,
        ))
    except RouterError as exc:
        engine.count_refusal(exc)
        raise
    finally:
        engine.rt.inflight -= 1
        engine.rt.metrics.inflight.dec()
    return FastJSON(vars(reply))  # shallow: asdict() would deep-copy every reply
