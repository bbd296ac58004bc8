"""`GET /v1/contract` (robots and operators) and the admin-only reload."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request, Response

from router_service.http_api.deps import AdminAuth, RobotAuth, Runtime, Settings
from router_service.http_api.responses import FastJSON
from router_service.http_api.schemas import ReloadBody, parse_body, read_body

router = APIRouter(tags=["contract"])


@router.get("/v1/contract", dependencies=[RobotAuth])
async def get_contract(runtime: Runtime) -> Response:
    return FastJSON(runtime.active.contract.model_dump(mode="json"))


@router.post("/v1/admin/contract/reload", dependencies=[AdminAuth])
async def reload_contract(request: Request, runtime: Runtime, settings: Settings) -> Response:
    raw = await read_body(request, settings.max_body_bytes)
    body = parse_body(ReloadBody, raw or b"{}", settings.max_body_bytes)
    contract = await runtime.reload_from_file(Path(body.path) if body.path else None)
    return FastJSON({"version": contract.version, "loaded_at": contract.loaded_at,
                     "source_path": contract.source_path})
