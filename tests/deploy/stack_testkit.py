"""The local stack as `make up` runs it (`python -m deploy.local.stack up`), started on free
ports for a test, with a load driver that records every answer the way a robot sees it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from deploy_testkit import REPO_ROOT, contract_for

from deploy.local.process import free_port
from policies.repository import generate
from tests.conftest import served_artifacts

KEY = "supervisor-test-key"
DEADLINE_MS = 50.0


@dataclass
class Answer:
    sent: float  # monotonic
    status: int  # 0: no HTTP answer at all (connection refused or reset)
    rtt_ms: float
    route: str = ""
    deadline_met: bool | None = None
    decision_id: str = ""
    reason: str = ""


@dataclass
class Stack:
    proc: subprocess.Popen[bytes]
    run_dir: Path
    ports: dict[str, int]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports['http-port']}"

    def status(self) -> dict[str, Any]:
        path = self.run_dir / "supervisor.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/readyz", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False


def wait_until(predicate: Any, timeout_s: float, what: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if predicate():
            return time.monotonic()
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def start_stack(tmp_path: Path, standin_artifacts: Path) -> Stack:
    artifacts = served_artifacts(standin_artifacts)
    repository = tmp_path / "repository"
    generate(artifacts, repository, "cpu")
    ports = {name: free_port() for name in ("http-port", "grpc-port", "redis-port",
                                            "triton-http-port", "triton-grpc-port",
                                            "triton-metrics-port")}
    argv = [sys.executable, "-m", "deploy.local.stack", "up", "--no-prometheus",
            "--contract", str(contract_for(artifacts, tmp_path)),
            "--repository", str(repository), "--run-dir", str(tmp_path / "run"),
            *(f"--{name}={port}" for name, port in ports.items())]
    env = {**os.environ, "ROUTER_API_KEYS": KEY}
    proc = subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    stack = Stack(proc, tmp_path / "run", ports)
    wait_until(lambda: stack.ready() or proc.poll() is not None, 180, "the stack to be ready")
    assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
    return stack


def drive(stack: Stack, stop: threading.Event, answers: list[Answer]) -> None:
    body = {"robot_id": "robot-1", "episode_id": "ep-1", "task": "reach-v3",
            "deadline_ms": DEADLINE_MS, "observation": {"state": [0.1] * 39}}
    with httpx.Client(base_url=stack.url, headers={"Authorization": f"Bearer {KEY}"},
                      timeout=5.0) as client:
        while not stop.is_set():
            sent = time.monotonic()
            # The robot's own deadline, as the load generator sends it: the router then counts
            # the time before the request reached it, and `deadline_met` means in time here.
            body["deadline_unix_ms"] = time.time() * 1000 + DEADLINE_MS
            try:
                reply = client.post("/v1/act", json=body)
            except httpx.HTTPError:
                answers.append(Answer(sent, 0, (time.monotonic() - sent) * 1000))
                time.sleep(0.02)  # a robot retries at its control rate, not in a tight loop
                continue
            rtt = (time.monotonic() - sent) * 1000
            data = reply.json() if reply.status_code == 200 else {}
            answers.append(Answer(sent, reply.status_code, rtt, data.get("route", ""),
                                  data.get("deadline_met"), data.get("decision_id", ""),
                                  data.get("reason", "")))
            time.sleep(0.02)


def group_members(pgid: int) -> list[int]:
    """Live members of the dead tritonserver's process group (its python-backend stubs)."""
    left = []
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            if os.getpgid(int(pid)) == pgid:
                left.append(int(pid))
        except ProcessLookupError:
            continue
    return left


