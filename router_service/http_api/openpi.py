"""`/v1/openpi`: openpi's websocket policy protocol on the router's HTTP port, so an unmodified
`openpi_client.websocket_client_policy.WebsocketClientPolicy` can act through the router
(spec: docs/clients/openpi.md; frames: router_service/openpi_protocol.py).

Each frame goes through `ActEngine.serve`, the one admission path (the key's robots and rate,
shedding, metrics), like `/v1/act/stream`. What the client sees follows openpi's own server:
- no valid key: the handshake is refused with HTTP 401 and the JSON error body (the client
  raises `InvalidStatus` from its constructor);
- a bad session parameter (robot_id missing or not covered, unknown parameter, bad
  deadline_ms): closed with 1008 and a reason naming it, before the metadata frame (the client
  raises `ConnectionClosedError` from its constructor, with that reason);
- a bad frame or any other refusal of a step: a text frame with the JSON error body (openpi's
  client raises `RuntimeError` on a str reply), then close 1011, as openpi's server does;
- overloaded (shed): the text frame with `retry_after_ms`, and the session goes on: dropping
  it would turn shedding into a reconnect storm, and the same client can simply retry;
- a frame over `ROUTER_MAX_BODY_BYTES`: closed with 1009 (by the server, `ws_max_size`, or here).
"""

from __future__ import annotations

import logging
import time

import orjson
from fastapi import APIRouter, Response, WebSocket, WebSocketDisconnect

from router_service.engine import ActEngine
from router_service.errors import ClientError, InvalidRequest, Overloaded, RouterError
from router_service.http_api.deps import Engine
from router_service.http_api.responses import error_body, error_parts, note_error
from router_service.keys import RobotKey
from router_service.msgpack_numpy import packb
from router_service.openpi_protocol import (
    SessionParams,
    metadata,
    reply_map,
    session_params,
    step_input,
)

log = logging.getLogger("router_service")
router = APIRouter(prefix="/v1", tags=["openpi"])
TRANSPORT = "openpi"
POLICY_VIOLATION, INTERNAL_ERROR, TOO_BIG, TRY_AGAIN_LATER = 1008, 1011, 1009, 1013


def _reason(exc: RouterError) -> str:
    text = f"{exc.field or exc.code}: {exc.message}"
    return text.encode()[:120].decode("utf-8", "ignore")  # a close reason is <= 123 bytes


def _refused(engine: ActEngine, exc: RouterError) -> None:
    note_error(engine.rt.metrics, exc)
    if isinstance(exc, ClientError):
        engine.rt.metrics.protocol_errors.labels(transport=TRANSPORT, code=exc.code).inc()


@router.websocket("/openpi")
async def openpi_session(websocket: WebSocket, engine: Engine) -> None:
    try:
        key = engine.keys.robot(websocket.headers.get("authorization"))
    except RouterError as exc:
        _refused(engine, exc)
        if "websocket.http.response" in websocket.scope.get("extensions", {}):
            status, body, headers = error_parts(exc)
            await websocket.send_denial_response(Response(
                body, status_code=status, headers=headers, media_type="application/json"))
        else:  # a server without the denial extension answers 403
            await websocket.close(POLICY_VIOLATION, _reason(exc))
        return
    await websocket.accept()
    sessions = engine.rt.metrics.sessions
    sessions.labels(transport=TRANSPORT, event="opened").inc()
    try:
        try:
            params = session_params(websocket.query_params, key)
        except RouterError as exc:
            _refused(engine, exc)
            await websocket.close(POLICY_VIOLATION, _reason(exc))
            return
        if not engine.rt.has_contract:
            await websocket.close(TRY_AGAIN_LATER, "contract: no contract loaded yet")
            return
        await websocket.send_bytes(packb(metadata(engine.rt.active.contract, params,
                                                  engine.rt.settings.max_body_bytes)))
        await _steps(websocket, engine, key, params)
    except (WebSocketDisconnect, OSError):  # the client went away (uvicorn: ClientDisconnected)
        pass
    except Exception:  # a bug must not kill the server, and the client gets no traceback
        log.exception("openpi session failed")
        await _close_quietly(websocket, INTERNAL_ERROR, "internal error")
    finally:
        sessions.labels(transport=TRANSPORT, event="closed").inc()


async def _steps(websocket: WebSocket, engine: ActEngine, key: RobotKey,
                 params: SessionParams) -> None:
    limit = engine.rt.settings.max_body_bytes
    episode_id = params.episode_id
    prev_total_ms: float | None = None
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            if message.get("code") == TOO_BIG:  # the server's own size limit closed it
                engine.rt.metrics.protocol_errors.labels(
                    transport=TRANSPORT, code="payload_too_large").inc()
            return
        received_at = time.monotonic()  # the step's clock starts when its frame arrived
        queued_s = engine.rt.loop_lag.queued_s
        frame = message.get("bytes")
        if frame is not None and len(frame) > limit:
            engine.rt.metrics.protocol_errors.labels(transport=TRANSPORT,
                                                     code="payload_too_large").inc()
            await websocket.close(TOO_BIG, f"frame: {len(frame)} bytes, limit {limit}")
            return
        try:
            try:
                if frame is None:
                    raise InvalidRequest("frame: must be binary msgpack (openpi's "
                                         "msgpack-numpy), got a text frame", field="frame")
                step = step_input(frame, engine.rt.active.contract, params, episode_id, key,
                                  received_at, queued_s)
            except RouterError as exc:
                engine.count_refusal(exc)  # as act_json does: a refused act request
                raise
            serve_start = time.monotonic()
            reply = await engine.serve(step)
        except Overloaded as exc:
            _refused(engine, exc)
            await websocket.send_text(_error_text(exc))
            continue  # the session goes on; the client retries after retry_after_ms
        except RouterError as exc:
            _refused(engine, exc)
            await websocket.send_text(_error_text(exc))
            await websocket.close(INTERNAL_ERROR, _reason(exc))
            return
        episode_id = step.episode_id
        infer_ms = (time.monotonic() - serve_start) * 1000
        await websocket.send_bytes(packb(reply_map(reply, episode_id, infer_ms, prev_total_ms)))
        prev_total_ms = (time.monotonic() - received_at) * 1000


def _error_text(exc: RouterError) -> str:
    return orjson.dumps(error_body(exc)).decode()


async def _close_quietly(websocket: WebSocket, code: int, reason: str) -> None:
    try:
        await websocket.send_text('{"error": {"code": "internal", "message": "internal error"}}')
        await websocket.close(code, reason)
    except Exception:  # already closed or gone: nothing left to tell
        pass
