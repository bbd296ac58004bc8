"""The lean ASGI path for `POST /v1/act`: the router's hottest endpoint, served without
Starlette's routing, dependency resolution and Request/Response objects (about 0.15 ms of CPU
per request on these machines, shared/notes/serving-costs-on-cpu.md). It wraps the FastAPI app:
every other request, and this one when the app has not started, goes to FastAPI unchanged.

Behaviour is the FastAPI route's, by construction: both call `act.act_json` with the caller's
key and the raw body, after the same auth check and body-size limit, so the OpenAPI schema
FastAPI publishes for `/v1/act` stays true.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI

from router_service.engine import ActEngine
from router_service.errors import ClientGone, PayloadTooLarge, RouterError
from router_service.http_api.act import act_json
from router_service.http_api.responses import error_parts, note_error

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
_JSON = (b"content-type", b"application/json")


class LeanActPath:
    def __init__(self, app: FastAPI) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        engine: ActEngine | None = getattr(self.app.state, "engine", None)
        if (engine is None or scope["type"] != "http" or scope["path"] != "/v1/act"
                or scope["method"] != "POST"):
            await self.app(scope, receive, send)
            return
        received_at = time.monotonic()
        queued_s = engine.rt.loop_lag.queued_s
        headers = dict(scope["headers"])
        try:
            key = engine.keys.robot(headers.get(b"authorization"))
            raw = await self._body(engine, headers, receive)
        except ClientGone as exc:
            engine.count_refusal(exc)
            return  # nobody is listening for the answer
        except RouterError as exc:
            note_error(engine.rt.metrics, exc)
            await _respond(send, *error_parts(exc))
            return
        deadline = headers.get(b"x-deadline-unix-ms")
        status, payload, extra = await act_json(
            engine, key, raw, received_at, queued_s,
            deadline.decode("latin-1") if deadline else None)
        await _respond(send, status, payload, extra)

    @staticmethod
    async def _body(engine: ActEngine, headers: dict[bytes, bytes], receive: Receive) -> bytes:
        limit = engine.rt.settings.max_body_bytes
        declared = headers.get(b"content-length")
        try:
            if declared is not None and declared.isdigit() and int(declared) > limit:
                raise PayloadTooLarge(f"body is {declared.decode()} bytes, limit {limit}",
                                      field="body")
            chunks: list[bytes] = []
            size = 0
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ClientGone("client disconnected before its request was read")
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"body is over the {limit}-byte limit", field="body")
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(chunks)
        except PayloadTooLarge as exc:
            engine.count_refusal(exc)
            raise


async def _respond(send: Send, status: int, payload: bytes, extra: dict[str, str]) -> None:
    headers = [_JSON, (b"content-length", str(len(payload)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in extra.items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
