"""KServe v2 HTTP on the router's HTTP port: health, metadata, config and inference under
`/v2` (docs/clients/kserve.md). Errors are KServe's shape, `{"error": "<field>: <message>"}`,
with the router's `code` and `field` beside it (tritonclient reads only `error`).

Liveness, readiness and server metadata are open, like `/healthz` and Triton's; model metadata,
config and inference need a robot key (`Authorization: Bearer <key>`), like `/v1/contract`
and `/v1/act`. `fast_path.py` serves only `POST /v1/act`: every `/v2` request comes here.
"""

from __future__ import annotations

import math
import time
import zlib
from typing import Literal

import orjson
from fastapi import APIRouter, Request, Response

from router_service.engine import ActInput
from router_service.errors import InvalidRequest, PayloadTooLarge, RouterError
from router_service.http_api.act import DEADLINE_HEADER, header_deadline
from router_service.http_api.deps import Engine, Runtime
from router_service.http_api.responses import note_error
from router_service.http_api.schemas import read_body
from router_service.kserve import models
from router_service.kserve.http_codec import (
    HEADER_LENGTH,
    HttpInfer,
    decode_request,
    encode_response,
)
from router_service.kserve.models import SERVER_METADATA, catalogue
from router_service.kserve.params import call_params
from router_service.kserve.service import act_input, kserve_error, serve
from router_service.metrics import RouterMetrics

router = APIRouter(prefix="/v2", tags=["kserve"])
_JSON = "application/json"
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}  # tritonclient's two


def _json(content: object, status: int = 200, headers: dict[str, str] | None = None
          ) -> Response:
    return Response(orjson.dumps(content), status_code=status, headers=headers,
                    media_type=_JSON)


def _error(metrics: RouterMetrics, exc: RouterError) -> Response:
    note_error(metrics, exc)
    err = kserve_error(exc)
    body: dict[str, object] = {"error": err.message, "code": exc.code}
    headers = {}
    if err.field:
        body["field"] = err.field
    if err.retry_after_ms is not None:  # shed (503) or over the key's rate (429)
        body["retry_after_ms"] = err.retry_after_ms
        headers["Retry-After"] = str(max(1, math.ceil(err.retry_after_ms / 1000)))
    return _json(body, err.http_status, headers)


def _inflate(raw: bytes, encoding: str | None, limit: int) -> bytes:
    """A gzip/deflate body (tritonclient's `request_compression_algorithm`), held to the
    same size limit once inflated."""
    if encoding is None or encoding == "identity":
        return raw
    wbits = _WBITS.get(encoding.lower())
    if wbits is None:
        raise InvalidRequest(f"content-encoding: {encoding!r} is not gzip or deflate",
                             field="content-encoding")
    inflater = zlib.decompressobj(wbits)
    try:
        body = inflater.decompress(raw, limit + 1)
    except zlib.error as exc:
        raise InvalidRequest(f"body: not {encoding}: {exc}", field="body") from None
    if len(body) > limit:
        raise PayloadTooLarge(f"body is over the {limit}-byte limit once inflated", field="body")
    if not inflater.eof:
        raise InvalidRequest(f"body: truncated {encoding} data", field="body")
    return body


def _version(request: Request) -> str:
    """`/versions/{version}` when the path has it (read from the path, so that the plain
    path takes no `version` query parameter)."""
    return str(request.path_params.get("version", ""))


@router.get("/health/live")
async def live() -> Response:
    return _json({"live": True})


@router.get("/health/ready")
async def ready(runtime: Runtime) -> Response:
    ok = models.server_ready(runtime)
    return _json({"ready": ok}, 200 if ok else 503)


@router.get("")
async def server_metadata() -> Response:
    return _json(SERVER_METADATA)


@router.get("/models/{name}")
@router.get("/models/{name}/versions/{version}")
async def model_metadata(name: str, request: Request, runtime: Runtime) -> Response:
    return _model_document(name, request, runtime, "metadata")


def _model_document(name: str, request: Request, runtime: Runtime,
                    part: Literal["metadata", "config"]) -> Response:
    """A model's metadata or config, for a robot key (as `/v1/contract` is)."""
    try:
        request.app.state.api_keys.robot(request.headers.get("authorization"))
        view = catalogue(runtime).model(name, _version(request))
    except RouterError as exc:
        return _error(runtime.metrics, exc)
    return _json(view.metadata if part == "metadata" else view.config)


@router.get("/models/{name}/ready")
@router.get("/models/{name}/versions/{version}/ready")
async def model_ready(name: str, request: Request, runtime: Runtime) -> Response:
    try:
        view = catalogue(runtime).model(name, _version(request))
    except RouterError as exc:
        return _error(runtime.metrics, exc)
    ok = models.model_ready(runtime, view)
    return _json({"name": name, "ready": ok}, 200 if ok else 503)


@router.get("/models/{name}/config")
@router.get("/models/{name}/versions/{version}/config")
async def model_config(name: str, request: Request, runtime: Runtime) -> Response:
    return _model_document(name, request, runtime, "config")


@router.post("/models/{name}/infer")
@router.post("/models/{name}/versions/{version}/infer")
async def infer(name: str, request: Request, engine: Engine) -> Response:
    received_at = time.monotonic()
    version = _version(request)
    queued_s = engine.rt.loop_lag.queued_s
    headers = request.headers
    limit = engine.rt.settings.max_body_bytes
    try:
        key = engine.keys.robot(headers.get("authorization"))
        try:
            raw = _inflate(await read_body(request, limit), headers.get("content-encoding"),
                           limit)
        except RouterError as exc:
            engine.count_refusal(exc)
            raise

        def prepare() -> tuple[ActInput, HttpInfer]:
            cat = catalogue(engine.rt)
            view = cat.model(name, version)
            decoded = decode_request(raw, headers.get(HEADER_LENGTH),
                                     cat.active.contract.spec.state_dim)
            act = act_input(view, decoded.observation, call_params(decoded.parameters), key,
                            received_at, queued_s,
                            header_unix_ms=header_deadline(headers.get(DEADLINE_HEADER)))
            return act, decoded

        reply, decoded = await serve(engine, prepare)
    except RouterError as exc:
        return _error(engine.rt.metrics, exc)
    body, extra = encode_response(name, decoded, reply)
    return Response(body, headers=extra,
                    media_type="application/octet-stream" if extra else _JSON)
