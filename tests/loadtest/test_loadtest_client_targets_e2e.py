"""The load generator's third-party client transports (openpi, KServe gRPC and HTTP) against a
real router, Triton behind it: every request gets an answer the generator can classify, with
the route the router chose and its `deadline_met`, as the native transports do. What the bench
reports for these paths rests on this."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.router_fixtures import ROBOT_KEY, RouterFactory

pytestmark = [pytest.mark.slow, pytest.mark.triton]
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("transport", ["openpi", "kserve-grpc", "kserve-http"])
def test_client_transport_runs_against_the_router(start_router: RouterFactory, tmp_path: Path,
                                                  transport: str) -> None:
    router = start_router()
    url = (f"127.0.0.1:{router.grpc_port}" if transport == "kserve-grpc" else router.url)
    out = tmp_path / "out"
    scenario = REPO / "loadtest" / "scenarios" / "default.yaml"
    proc = subprocess.run(
        [sys.executable, "-m", "loadtest", "run", str(scenario), "--target", "router",
         "--transport", transport, "--url", url, "--robots", "2", "--duration", "3",
         "--ramp", "1", "--api-key", ROBOT_KEY, "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode in (0, 2), proc.stdout + proc.stderr  # 2: SLA missed on 2 cores
    result: dict[str, Any] = json.loads((out / "result.json").read_text())
    assert result["run"]["transport"] == transport
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    assert len(records) >= 200  # 2 robots x 50 Hz x 3 s, ramp included
    statuses = {r["status"] for r in records}
    assert statuses <= {"ok", "http_503", "grpc_RESOURCE_EXHAUSTED", "grpc_DEADLINE_EXCEEDED",
                        "client_timeout"}, statuses
    ok = [r for r in records if r["status"] == "ok"]
    assert len(ok) >= 0.8 * len(records)
    routes = {r["route"] for r in ok}
    assert routes and routes <= {"generalist", "hold", "specialist_reach_v3",
                                 "specialist_pick_place_v3", "specialist_peg_insert_side_v3"}
    assert all(isinstance(r["deadline_met"], bool) for r in ok)
