"""JSON out via orjson, and the one error body every endpoint uses:
`{"error": {"code", "message", "field"?, "retry_after_ms"?, "known_tasks"?}}` (a WebSocket
session's error also carries the message's `sequence` when it had one)."""

from __future__ import annotations

import math
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import JSONResponse, Response

from router_service.errors import ClientError, Overloaded, RouterError, UnknownTask
from router_service.metrics import RouterMetrics


class FastJSON(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error_body(exc: RouterError) -> dict[str, Any]:
    body: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if exc.field:
        body["field"] = exc.field
    if exc.retry_after_ms is not None:  # shed (503) or over the key's rate (429)
        body["retry_after_ms"] = exc.retry_after_ms
    if isinstance(exc, UnknownTask):
        body["known_tasks"] = exc.known
    return {"error": body}


def error_parts(exc: RouterError, sequence: int | None = None
                ) -> tuple[int, bytes, dict[str, str]]:
    """(HTTP status, JSON body, headers) of an error."""
    status = exc.http_status if isinstance(exc, ClientError | Overloaded) else 500
    headers = {}
    if exc.retry_after_ms is not None:  # whole seconds, rounded up: the header has no finer
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_ms / 1000)))
    body = error_body(exc)
    if sequence is not None:
        body["sequence"] = sequence
    return status, orjson.dumps(body), headers


def note_error(metrics: RouterMetrics, exc: RouterError) -> None:
    metrics.errors.labels(kind=exc.code).inc()


def error_response(exc: RouterError) -> Response:
    status, body, headers = error_parts(exc)
    return Response(body, status_code=status, headers=headers, media_type="application/json")


async def router_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RouterError)
    runtime = getattr(request.app.state, "runtime", None)
    if runtime is not None:
        note_error(runtime.metrics, exc)
    return error_response(exc)
