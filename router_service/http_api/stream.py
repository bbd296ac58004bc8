"""`/v1/act/stream`: a robot's session over WebSocket, the same messages as `POST /v1/act`.

Each text (or binary, UTF-8) frame is one act body plus an optional `sequence`; each reply is
the act reply, or the error body, with that `sequence`, one reply per message, in order. A bad
message gets an error frame naming the field and the session goes on (so does a message for a
robot the session's key does not cover: 403 naming robot_id, or one over the key's rate: 429);
a session without a valid key is closed with code 1008 and a reason naming the `authorization`
header; a frame over the body limit closes it with 1009 (enforced by the server, `ws_max_size`).

A session costs less than unary calls: the connection, auth and HTTP parsing are paid once.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from router_service.errors import RouterError
from router_service.http_api.act import act_json
from router_service.http_api.deps import Engine

router = APIRouter(prefix="/v1", tags=["act"])
POLICY_VIOLATION = 1008


@router.websocket("/act/stream")
async def act_stream(websocket: WebSocket, engine: Engine) -> None:
    await websocket.accept()
    try:
        key = engine.keys.robot(websocket.headers.get("authorization"))
    except RouterError as exc:
        await websocket.close(POLICY_VIOLATION, f"{exc.field}: {exc.message}"[:120])
        return
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            received_at = time.monotonic()
            queued_s = engine.rt.loop_lag.queued_s
            raw = message.get("bytes") or (message.get("text") or "").encode()
            _, payload, _ = await act_json(engine, key, raw, received_at, queued_s,
                                           stream=True)
            await websocket.send_text(payload.decode())
    except WebSocketDisconnect:
        return
