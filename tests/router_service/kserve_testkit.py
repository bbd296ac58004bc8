"""What the KServe v2 facade's end-to-end modules share: one router per module (starting one
per test would be most of its time), its keys, and the reach specialist's observation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from deploy.local.process import free_ports
from deploy.local.router import RouterLaunch, router_process
from policies.serving.manifest import load_artifacts
from tests.router_fixtures import ADMIN_KEY, ROBOT_KEY, ContractFiles, RedisServer, RouterProcess

ARM_KEY = "arm-only-key"  # covers robots `arm-*` only
KEYS = {ROBOT_KEY: {"robots": ["*"]}, ARM_KEY: {"robots": ["arm-*"]}}
AUTH = {"authorization": f"Bearer {ROBOT_KEY}"}  # copied per call: see `auth`
SPEC = "specialist_reach_v3"
STATE = np.random.default_rng(7).normal(0, 0.3, (1, 39)).astype(np.float32)


def kserve_router(triton: Any, redis_server: RedisServer, folder: Path) -> Iterator[RouterProcess]:
    """A router over `triton` for a module's tests (a generator: the module's fixture)."""
    files = ContractFiles(folder, triton.artifacts,
                          list(load_artifacts(triton.artifacts).manifest.tasks))
    http_port, grpc_port = free_ports(2)
    process = router_process(RouterLaunch(
        contract=files.write(), triton_grpc=triton.grpc_url, triton_http=triton.http_url,
        http_port=http_port, grpc_port=grpc_port, log_path=folder / "router.log",
        robot_keys=json.dumps(KEYS), admin_key=ADMIN_KEY, redis_url=redis_server.url,
        name="router-kserve", startup_timeout_s=60.0,
        settings={"ROUTER_MAX_QUEUE_AGE_MS": "1000"}))  # 2 shared cores: see start_router
    process.start()
    yield RouterProcess(process, http_port, grpc_port)
    process.stop()


def auth() -> dict[str, str]:
    """A fresh headers dict: tritonclient.http's `infer` writes Inference-Header-Content-Length
    into the dict it is given, and a later JSON-only call with the same dict sends it stale."""
    return dict(AUTH)
