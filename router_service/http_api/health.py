"""`/healthz` (the process is up), `/readyz` (able to serve), `/metrics` (Prometheus)."""

from __future__ import annotations

import os

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from router_service.http_api.deps import Runtime
from router_service.http_api.responses import FastJSON

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> Response:
    return FastJSON({"status": "ok"})


@router.get("/readyz")
async def readyz(runtime: Runtime) -> Response:
    checks: dict[str, object] = {
        "contract": runtime.has_contract,
        "triton": runtime.triton_ready,
        "draining": runtime.drain.draining,  # SIGTERM received: still serving, going away
    }
    if runtime.has_contract:
        checks["models"] = {r: h.model_ready for r, h in runtime.active.health.items()}
        checks["contract_version"] = runtime.active.contract.version
    ready = bool(not runtime.drain.draining and runtime.has_contract and runtime.triton_ready
                 and all(h.model_ready for h in runtime.active.health.values()))
    return FastJSON({"ready": ready, "checks": checks}, status_code=200 if ready else 503)


@router.get("/metrics")
async def metrics(runtime: Runtime) -> Response:
    runtime.metrics.decision_log_buffered.set(runtime.decision_log.buffered)
    registry = runtime.metrics.registry
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # several workers: every one's values
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
