"""`POST /v1/feedback`: an episode's outcome and true task, for misroutes and calibration."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from router_service.feedback import FeedbackInput, record_feedback
from router_service.http_api.deps import Caller, Engine, Settings
from router_service.http_api.responses import FastJSON
from router_service.http_api.schemas import FeedbackBody, parse_body, read_body

router = APIRouter(prefix="/v1", tags=["feedback"])


@router.post(
    "/feedback",
    status_code=202,
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": FeedbackBody.model_json_schema()}}}},
)
async def feedback(request: Request, engine: Engine, settings: Settings,
                   key: Caller) -> Response:
    body = parse_body(FeedbackBody, await read_body(request, settings.max_body_bytes),
                      settings.max_body_bytes)
    result = await record_feedback(engine, FeedbackInput(
        robot_id=body.robot_id, episode_id=body.episode_id, decision_id=body.decision_id,
        success=body.success, true_task=body.true_task, key=key,
    ))
    return FastJSON(result, status_code=202)
