"""LeRobot 0.6.1's real `RobotClient` (its threads, gRPC stub and pickles, in its own Python
3.12 venv) against a real router in front of the real Triton. `make test-lerobot` builds the
venv (build/lerobot-venv, requirements-lerobot.lock) and runs this, and so does `make test`.
LEROBOT_PYTHON names the interpreter; when it is set (as make sets it) and missing, the test
fails; only a bare pytest run without it and without the venv skips."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.router_fixtures import ContractFiles, RouterFactory
from tests.router_service.test_lerobot_e2e import LeRobotRouter, start_lerobot_router
from tests.router_service.test_lerobot_unpickle import VALUES

REPO_ROOT = Path(__file__).resolve().parents[2]
REQUIRED = "LEROBOT_PYTHON" in os.environ
PYTHON = REPO_ROOT / os.environ.get("LEROBOT_PYTHON", "build/lerobot-venv/bin/python")
SCRIPT = Path(__file__).with_name("lerobot_real_client.py")
STEPS = 12

pytestmark = [
    pytest.mark.slow, pytest.mark.triton,
    pytest.mark.skipif(not REQUIRED and not PYTHON.exists(),
                       reason=f"no LeRobot venv at {PYTHON} (make test-lerobot builds it)"),
]


@pytest.fixture
def lerobot_router(start_router: RouterFactory, contract_files: ContractFiles) -> LeRobotRouter:
    return start_lerobot_router(start_router, contract_files)


@pytest.mark.parametrize("actions_per_chunk", [1, 3])
def test_real_robot_client_executes_the_routers_actions(
        lerobot_router: LeRobotRouter, tmp_path: Path, actions_per_chunk: int) -> None:
    """The robot is told to do exactly what POST /v1/act answers for its observation, one
    action per step, and every reply loaded into LeRobot's own TimedAction with torch
    tensors. actions_per_chunk=1 does not stall the client (its first action would, were it
    labelled with the observation's own step as LeRobot's server labels it)."""
    out = tmp_path / "client.json"
    proc = subprocess.run(
        [str(PYTHON), str(SCRIPT), "run", "--server", f"127.0.0.1:{lerobot_router.port}",
         "--steps", str(STEPS), "--timeout", "60", "--actions-per-chunk",
         str(actions_per_chunk), "--out", str(out)],
        cwd=tmp_path, capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    result = json.loads(out.read_text())
    assert result["lerobot"] == "0.6.1"
    expected = lerobot_router.act(VALUES["state"], VALUES["task"])
    performed = result["performed"]
    assert len(performed) >= STEPS
    for action in performed:
        assert [action[f"a{i}"] for i in range(len(expected))] == pytest.approx(expected,
                                                                                abs=1e-6), (
            action, lerobot_router.router.fallbacks())
    chunks = result["chunks"]
    assert chunks and all(c["real_types"] for c in chunks)
    assert all(len(c["timesteps"]) == actions_per_chunk for c in chunks)
    firsts = [c["timesteps"][0] for c in chunks]
    assert firsts == sorted(firsts) and firsts[0] == 1
