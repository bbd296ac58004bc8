"""Fixtures for tests that run the router: a real redis-server, contracts written for whatever
session's real Triton serves, and real router processes (`python -m router_service`)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from deploy.local.local_stack import LocalStack, StackOptions
from deploy.local.process import ManagedProcess, free_ports
from deploy.local.router import RouterLaunch, router_process
from policies.serving.manifest import load_artifacts

ROBOT_KEY = "test-robot-key"
ADMIN_KEY = "test-admin-key"
REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass
class RedisServer:
    process: ManagedProcess
    port: int

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """The stack's redis-server alone (a `LocalStack` without Triton), on a free port."""
    stack = LocalStack(StackOptions(run_dir=tmp_path_factory.mktemp("redis"), triton=False))
    if not stack.use_redis:
        pytest.fail("redis-server is not installed: run scripts/install_system_deps.sh")
    with stack:
        yield RedisServer(stack.processes[0], stack.redis_port)


def contract_dict(artifacts: Path, table: Path, version: str = "test-1") -> dict[str, Any]:
    manifest = load_artifacts(artifacts).manifest
    tasks = list(manifest.tasks)
    policies: list[dict[str, Any]] = [
        {"name": "generalist", "kind": "generalist", "tasks": tasks, "ops_cost": 0.0,
         "expected_latency_ms": 10.0}
    ]
    for task in tasks:
        policies.append({"name": "specialist_" + task.replace("-", "_"), "kind": "specialist",
                         "tasks": [task], "ops_cost": 0.01, "expected_latency_ms": 10.0})
    return {
        "version": version, "panel": "test", "state_dim": manifest.obs_dim,
        "action_dim": manifest.action_dim, "default_deadline_ms": 50,
        "tasks": [{"name": t, "success_target": 0.8} for t in tasks],
        "policies": policies,
        "objective": {"latency_weight_per_ms": 0.001, "ops_cost_weight": 1.0,
                      "tie_epsilon": 0.01},
        "routing": {"min_task_confidence": 0.5, "sticky_ttl_s": 30,
                    "fallback_order": ["specialist", "generalist", "hold"],
                    "hold_action": [0.0] * manifest.action_dim,
                    "hedging": {"enabled": False, "delay_ms": 8},
                    "circuit_breaker": {"failure_threshold": 3, "open_s": 1.0}},
        "calibration": {"table": str(table), "prior_success": 0.5},
        "task_classifier": {"model": str(artifacts / "task_classifier" / "model.onnx"),
                            "norm_stats": str(artifacts / "norm_stats.json")},
    }


def calibration_table(tasks: list[str], specialist: float, generalist: float) -> dict[str, Any]:
    rows = []
    for task in tasks:
        for policy, rate in (("generalist", generalist),
                             ("specialist_" + task.replace("-", "_"), specialist)):
            n = 30
            rows.append({"task": task, "policy": policy, "episodes": n,
                         "successes": round(rate * n), "rate": rate,
                         "ci95": [max(0.0, rate - 0.15), min(1.0, rate + 0.15)]})
    return {"panel": "test", "source": "offline", "rows": rows}


@dataclass
class ContractFiles:
    """Writes contract + calibration files into one folder; tests edit and reload them."""

    folder: Path
    artifacts: Path
    tasks: list[str] = field(default_factory=list)

    def write(self, version: str = "test-1", specialist: float = 0.95, generalist: float = 0.7,
              **routing: Any) -> Path:
        table = self.folder / f"calibration-{version}.json"
        table.write_text(json.dumps(calibration_table(self.tasks, specialist, generalist)))
        data = contract_dict(self.artifacts, table, version)
        data["routing"].update(routing)
        path = self.folder / "contract.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path


@pytest.fixture
def contract_files(tmp_path: Path, triton: Any) -> ContractFiles:
    tasks = list(load_artifacts(triton.artifacts).manifest.tasks)
    files = ContractFiles(tmp_path, triton.artifacts, tasks)
    files.write()
    return files


@dataclass
class RouterProcess:
    process: ManagedProcess
    http_port: int
    grpc_port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def client(self, key: str | None = ROBOT_KEY) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10.0)

    def metrics(self) -> str:
        return httpx.get(f"{self.url}/metrics", timeout=5.0).text

    def fallbacks(self) -> list[str]:
        """The fallbacks this router took, by route and reason: what a failed assertion on a
        reply's route should print (the decision log stays inside the router)."""
        return [line for line in self.metrics().splitlines()
                if line.startswith("router_fallbacks_total{")]


RouterFactory = Callable[..., RouterProcess]


@pytest.fixture
def start_router(tmp_path: Path, triton: Any, contract_files: ContractFiles
                 ) -> Iterator[RouterFactory]:
    started: list[RouterProcess] = []

    def start(redis_url: str | None = None, contract: Path | None = None,
              **settings: Any) -> RouterProcess:
        http_port, grpc_port = free_ports(2)
        process = router_process(RouterLaunch(
            contract=contract or contract_files.folder / "contract.yaml",
            triton_grpc=triton.grpc_url, triton_http=triton.http_url, http_port=http_port,
            grpc_port=grpc_port, log_path=tmp_path / f"router-{len(started)}.log",
            robot_keys=ROBOT_KEY, admin_key=ADMIN_KEY, redis_url=redis_url,
            name=f"router-{len(started)}", startup_timeout_s=60.0,
            # Tests share 2 cores with Triton and each other: a descheduled router shows loop
            # lag that is not its own queue. Shedding on queue age is tested on its own.
            settings={"ROUTER_MAX_QUEUE_AGE_MS": "1000",
                      **{f"ROUTER_{k.upper()}": str(v) for k, v in settings.items()}}))
        router = RouterProcess(process.start(), http_port, grpc_port)
        started.append(router)
        return router

    yield start
    for router in started:
        router.process.stop()


def act_body(state: list[float], task: str | None = "reach-v3", episode: str = "ep-1",
             deadline_ms: float | None = 200.0, robot: str = "robot-1") -> dict[str, Any]:
    body: dict[str, Any] = {"robot_id": robot, "episode_id": episode,
                            "observation": {"state": state}}
    if task is not None:
        body["task"] = task
    if deadline_ms is not None:
        body["deadline_ms"] = deadline_ms
    return body
