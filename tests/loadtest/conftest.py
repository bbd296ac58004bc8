"""Fixtures for the load generator's tests.

`triton_endpoints` adapts the shared session fixture that runs the real tritonserver
(tests/conftest.py owns it; named `triton`, or `triton_server` as first announced) and skips,
saying why, when neither exists.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # loadtest_support, without a package __init__

from loadtest_support import (
    FakeRouterState,
    ServerThread,
    TritonEndpoints,
    fake_router_app,
)

REPO = Path(__file__).resolve().parents[2]


def _port(server: Any, kind: str) -> int | None:
    """Find a port on whatever shape the shared fixture has: `.ports.grpc`, `.grpc_port`, or
    a mapping with "grpc"/"grpc_port"."""
    ports = getattr(server, "ports", None)
    for holder, name in ((ports, kind), (server, f"{kind}_port"), (server, kind)):
        if holder is None:
            continue
        value = holder.get(name) if isinstance(holder, dict) else getattr(holder, name, None)
        if isinstance(value, int):
            return value
    return None


def _manifest(server: Any) -> Path:
    """The served artifacts' manifest.json: `.artifacts/manifest.json`, else a path attribute,
    else the default build."""
    artifacts = getattr(server, "artifacts", None)
    if isinstance(artifacts, (str, Path)):
        return Path(artifacts) / "manifest.json"
    for name in ("manifest_path", "manifest"):
        value = getattr(server, name, None)
        if isinstance(value, (str, Path)):
            return Path(value)
    panel = os.environ.get("PANEL", "ci")
    return REPO / "build" / "models" / panel / "manifest.json"


@pytest.fixture(scope="session")
def triton_endpoints(request: pytest.FixtureRequest) -> TritonEndpoints:
    server = None
    for name in ("triton", "triton_server"):
        try:
            server = request.getfixturevalue(name)
            break
        except pytest.FixtureLookupError:
            continue
    if server is None:
        pytest.skip(
            "no shared tritonserver fixture (`triton`/`triton_server` in tests/conftest.py)"
        )
    host = getattr(server, "host", "127.0.0.1")
    grpc_port, http_port = _port(server, "grpc"), _port(server, "http")
    if grpc_port is None or http_port is None:
        pytest.skip(f"cannot find the gRPC/HTTP ports on triton_server ({type(server).__name__})")
    manifest = _manifest(server)
    if not manifest.exists():
        pytest.skip(f"no model manifest at {manifest} (make models)")
    return TritonEndpoints(f"{host}:{grpc_port}", f"http://{host}:{http_port}", manifest)


@pytest.fixture
def fake_router() -> Iterator[tuple[str, FakeRouterState]]:
    state = FakeRouterState()
    with ServerThread(fake_router_app(state)) as server:
        yield server.url, state
