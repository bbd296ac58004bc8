"""Short real runs straight to tritonserver (the shared `triton_server` session fixture), and
through the baseline proxy to it. Skipped, with the reason, while that fixture is absent."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from loadtest_support import TritonEndpoints

from deploy.local.process import ManagedProcess, free_port, http_ok
from loadtest.cli import main
from loadtest.cli_args import EXIT_PASS
from loadtest.targets.kserve import manifest_tasks

pytestmark = [pytest.mark.slow, pytest.mark.triton]
REPO = Path(__file__).resolve().parents[2]


def scenario_file(tmp_path: Path, manifest: Path, **kw: Any) -> Path:
    tasks, obs_dim = manifest_tasks(manifest)
    data: dict[str, Any] = {
        "name": "triton-short",
        "robots": 4,
        "control_hz": 20,
        "task_mix": {t: 1 for t in tasks},
        "deadline_ms": 200,
        "duration_s": 5,
        "ramp_s": 1,
        "episode_steps": 10,
        "target": "direct-triton",
        "transport": "grpc",
        "obs_dim": obs_dim or 39,
        # generous: this checks the pipeline against the real server, not a performance target
        "sla": {"quantile_within_budget": 0.99, "budget_ms": 200},
        "seed": 11,
    }
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(data | kw))
    return path


def run(tmp_path: Path, scenario: Path, url: str, manifest: Path, *extra: str) -> dict[str, Any]:
    out = tmp_path / "out"
    code = main(
        [
            "run",
            str(scenario),
            "--url",
            url,
            "--manifest",
            str(manifest),
            "--out",
            str(out),
            "--quiet",
            "--no-plot",
            *extra,
        ]
    )
    doc: dict[str, Any] = orjson.loads((out / "result.json").read_bytes())
    assert code == EXIT_PASS, doc["summary"]["overall"]
    return doc


def test_direct_grpc_specialists(triton_endpoints: TritonEndpoints, tmp_path: Path) -> None:
    ep = triton_endpoints
    doc = run(tmp_path, scenario_file(tmp_path, ep.manifest), ep.grpc, ep.manifest)
    overall = doc["summary"]["overall"]
    assert overall["errors"] == 0 and overall["requests"] > 0
    tasks, _ = manifest_tasks(ep.manifest)
    assert set(doc["summary"]["routes"]) == {f"specialist_{t.replace('-', '_')}" for t in tasks}


def test_direct_http_generalist(triton_endpoints: TritonEndpoints, tmp_path: Path) -> None:
    ep = triton_endpoints
    scenario = scenario_file(tmp_path, ep.manifest, transport="http", direct_policy="generalist")
    doc = run(tmp_path, scenario, ep.http, ep.manifest)
    assert doc["summary"]["overall"]["errors"] == 0
    assert set(doc["summary"]["routes"]) == {"generalist"}


# A new httpx client per request costs tens of ms of CPU (TLS context set-up) in the proxy, so
# the per-request mode gets a load it can carry: this checks forwarding, not capacity.
@pytest.mark.parametrize(("mode", "robots", "hz"), [("shared", 4, 20), ("per-request", 1, 5)])
def test_baseline_proxy_in_front_of_triton(
    triton_endpoints: TritonEndpoints, tmp_path: Path, mode: str, robots: int, hz: int
) -> None:
    ep = triton_endpoints
    scenario = scenario_file(
        tmp_path,
        ep.manifest,
        target="baseline-proxy",
        transport="http",
        robots=robots,
        control_hz=hz,
    )
    port = free_port()
    proxy = ManagedProcess(
        name="baseline-proxy",
        argv=[
            sys.executable,
            "-m",
            "loadtest.baseline_proxy",
            "--triton-url",
            ep.http,
            "--client",
            mode,
            "--port",
            str(port),
        ],
        ready=lambda: http_ok(f"http://127.0.0.1:{port}/healthz"),
        log_path=tmp_path / "proxy.log",
        cwd=REPO,
        startup_timeout_s=60,
    )
    with proxy:
        doc = run(tmp_path, scenario, f"http://127.0.0.1:{port}", ep.manifest)
    assert doc["summary"]["overall"]["errors"] == 0
