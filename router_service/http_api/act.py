"""`POST /v1/act`: one observation in, one action out, inside the request's deadline.

`act_json` is the whole HTTP act path, from raw bytes to reply bytes; three adapters call it:
the FastAPI route below (what the OpenAPI schema documents), the lean ASGI path in
`fast_path.py` that serves the same route without the framework's per-request round trip, and
each message of the WebSocket session (`stream.py`).
"""

from __future__ import annotations

import time
from dataclasses import fields

import orjson
from fastapi import APIRouter, Request, Response

from router_service.engine import ActEngine, ActInput, ActReply
from router_service.errors import InvalidRequest, RouterError
from router_service.http_api.deps import Caller, Engine, Settings
from router_service.http_api.responses import error_parts, note_error
from router_service.http_api.schemas import ActBody, StreamActBody, parse_body, read_body
from router_service.keys import RobotKey

DEADLINE_HEADER = "x-deadline-unix-ms"
router = APIRouter(prefix="/v1", tags=["act"])


def header_deadline(value: str | None) -> float | None:
    """The `X-Deadline-Unix-Ms` header (every HTTP route that takes one)."""
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        raise InvalidRequest(f"{DEADLINE_HEADER}: must be Unix time in ms, got {value[:40]!r}",
                             field=DEADLINE_HEADER) from None


def to_input(body: ActBody, key: RobotKey, received_at: float, queued_s: float,
             header_deadline: float | None = None) -> ActInput:
    unix_ms = body.deadline_unix_ms
    if header_deadline is not None:
        unix_ms = header_deadline if unix_ms is None else min(unix_ms, header_deadline)
    return ActInput(
        robot_id=body.robot_id, episode_id=body.episode_id, task=body.task,
        state=body.observation.state, deadline_ms=body.deadline_ms, deadline_unix_ms=unix_ms,
        received_at=received_at, key=key, queued_s=queued_s,
    )


_REPLY_FIELDS = tuple(f.name for f in fields(ActReply))


def reply_bytes(reply: ActReply, sequence: int | None = None) -> bytes:
    if sequence is None:
        return orjson.dumps(reply)
    return orjson.dumps({**{k: getattr(reply, k) for k in _REPLY_FIELDS}, "sequence": sequence})


async def act_json(engine: ActEngine, key: RobotKey, raw: bytes, received_at: float,
                   queued_s: float, deadline_header: str | None = None, stream: bool = False
                   ) -> tuple[int, bytes, dict[str, str]]:
    """(status, body, extra headers) for one act body; errors become their JSON body."""
    sequence = None
    try:
        try:
            model = StreamActBody if stream else ActBody
            body = parse_body(model, raw, engine.rt.settings.max_body_bytes)
            sequence = body.sequence if isinstance(body, StreamActBody) else None
            act_input = to_input(body, key, received_at, queued_s,
                                 header_deadline(deadline_header))
        except RouterError as exc:
            engine.count_refusal(exc)
            raise
        reply = await engine.serve(act_input)
    except RouterError as exc:
        note_error(engine.rt.metrics, exc)
        status, payload, headers = error_parts(exc, sequence)
        return status, payload, headers
    return 200, reply_bytes(reply, sequence), {}


@router.post(
    "/act",
    openapi_extra={
        "requestBody": {"required": True, "content": {
            "application/json": {"schema": ActBody.model_json_schema()}}},
        "parameters": [{"name": "X-Deadline-Unix-Ms", "in": "header", "required": False,
                        "schema": {"type": "number"},
                        "description": "Absolute deadline, Unix time in ms"}],
    },
)
async def act(request: Request, engine: Engine, settings: Settings, key: Caller) -> Response:
    received_at = time.monotonic()
    queued_s = engine.rt.loop_lag.queued_s
    try:
        raw = await read_body(request, settings.max_body_bytes)
    except RouterError as exc:
        engine.count_refusal(exc)
        raise
    status, payload, headers = await act_json(engine, key, raw, received_at, queued_s,
                                              request.headers.get(DEADLINE_HEADER))
    return Response(payload, status_code=status, headers=headers,
                    media_type="application/json")
