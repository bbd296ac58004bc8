"""The benchmark's own stack: real tritonserver, redis-server (when installed) and the router.

Everything runs on free ports with its files under `<out>/stack/`, so the benchmark never
touches a stack someone else is running (`make up` uses the fixed ports 8000-8002/8080).
The model repository is generated with fault injection: each policy model re-reads
`faults/policy_<name>.json` on every execute, which is how one specialist becomes a straggler.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from deploy.local.local_stack import LocalStack, StackOptions
from deploy.local.process import ManagedProcess, free_port, free_ports, http_ok, port_open
from policies.serving.manifest import task_id
from router_service.forwarding import HEDGE_MIN_MS
from router_service.hedging import MIN_STRAGGLER_SHARE

REPO = Path(__file__).resolve().parents[2]
ROBOT_KEY = "bench-robot-key"  # local, throwaway: this stack listens on 127.0.0.1 only
ADMIN_KEY = "bench-admin-key"
# Success rates in the benchmark's calibration table: each task's specialist far above the
# generalist, so that with declared tasks the router picks `specialist_<task>`, the same ensemble
# the direct path calls, and the comparison measures the router, not a different model.
SPECIALIST_RATE, GENERALIST_RATE = 0.99, 0.50


def calibration_table(tasks: list[str]) -> dict[str, Any]:
    rows = []
    for task in tasks:
        for policy, rate in (("generalist", GENERALIST_RATE),
                             (f"specialist_{task_id(task)}", SPECIALIST_RATE)):
            n = 100
            rows.append({"task": task, "policy": policy, "episodes": n,
                         "successes": round(rate * n), "rate": rate,
                         "ci95": [max(0.0, rate - 0.1), min(1.0, rate + 0.1)]})
    return {"panel": "bench", "source": "benchmark (not measured: fixes the route)", "rows": rows}


def bench_contract(base: Path, table: Path, hedging: bool, version: str) -> dict[str, Any]:
    """The deployment contract `base` (deploy/contracts/ci.yaml) with absolute paths, the
    benchmark calibration table and hedging on or off; everything else as deployed."""
    data: dict[str, Any] = yaml.safe_load(base.read_text())
    here = base.parent.resolve()
    data["version"] = version
    data["calibration"]["table"] = str(table.resolve())
    for key in ("model", "norm_stats"):
        data["task_classifier"][key] = str((here / data["task_classifier"][key]).resolve())
    # Adaptive: the hedge fires once the primary straggles (2x its p90) on a route that straggles,
    # within the extra-call budget (forwarding.py, hedging.py), not after a fixed delay.
    data["routing"]["hedging"].update(enabled=hedging, adaptive=True)
    return data


@dataclass
class BenchStack:
    """A `LocalStack` (Triton on a fault-injectable repository, Redis) plus the benchmark's
    router, its contract and its calibration table."""

    root: Path  # <out>/stack
    artifacts: Path = REPO / "build" / "models" / "ci"
    base_contract: Path = REPO / "deploy" / "contracts" / "ci.yaml"
    use_redis: bool = True
    router_env: dict[str, str] = field(default_factory=dict)  # extra ROUTER_* settings
    _router: ManagedProcess | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.root = self.root.resolve()
        self.local = LocalStack(StackOptions(run_dir=self.root, artifacts=self.artifacts,
                                             redis=self.use_redis))
        self.triton_ports = self.local.triton_ports
        self.router_http_port, self.router_grpc_port = free_ports(2)
        self.fault_dir = self.local.fault_dir
        self.contract_path = self.root / "contract.yaml"

    # -- addresses ----------------------------------------------------------------------------
    @property
    def redis_url(self) -> str | None:
        return self.local.redis_url

    @property
    def router_url(self) -> str:
        return f"http://127.0.0.1:{self.router_http_port}"

    @property
    def router_grpc(self) -> str:
        return f"127.0.0.1:{self.router_grpc_port}"

    @property
    def triton_grpc(self) -> str:
        return self.local.triton_grpc

    @property
    def triton_http(self) -> str:
        return f"http://{self.local.triton_http}"

    @property
    def manifest(self) -> Path:
        return self.artifacts / "manifest.json"

    @property
    def router_pid(self) -> int | None:
        return self._router.pid if self._router else None

    def tasks(self) -> list[str]:
        return list(json.loads(self.manifest.read_text())["tasks"])

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        table = self.root / "calibration-bench.json"
        table.write_text(json.dumps(calibration_table(self.tasks()), indent=2))
        self.write_contract(hedging=False)
        self.local.start()
        try:
            self._router = self.local.add(self._router_process())
        except BaseException:
            self.stop()
            raise

    def _router_process(self) -> ManagedProcess:
        return self.local.router(
            contract=self.contract_path, http_port=self.router_http_port,
            grpc_port=self.router_grpc_port, log_path=self.root / "router.log",
            robot_keys=ROBOT_KEY, admin_key=ADMIN_KEY, name="bench-router",
            settings=self.router_env)

    def restart_router(self, workers: int) -> None:
        """The router again, with `workers` processes on the same ports (same store)."""
        if self._router is not None:
            self.local.remove(self._router)
        self.router_env["ROUTER_WORKERS"] = str(workers)
        self._router = self.local.add(self._router_process())

    def stop(self) -> None:
        self.local.stop()
        self._router = None

    def __enter__(self) -> BenchStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- contract and faults ------------------------------------------------------------------
    def write_contract(self, hedging: bool) -> Path:
        version = f"bench-hedging-{'on' if hedging else 'off'}"
        data = bench_contract(self.base_contract, self.root / "calibration-bench.json",
                              hedging, version)
        tmp = self.contract_path.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump(data, sort_keys=False))
        tmp.replace(self.contract_path)  # the router never reads a half-written file
        return self.contract_path

    def hedge_delay_ms(self) -> str:
        data: dict[str, Any] = yaml.safe_load(self.contract_path.read_text())
        hedging = data["routing"]["hedging"]
        share = float(hedging.get("max_extra_share", 0.05))
        if hedging.get("adaptive"):
            return ("adaptive: once the primary is a straggler (2x its route's p90, or its p95 "
                    f"if later, at least {HEDGE_MIN_MS:g} ms), only "
                    f"on a route of which at least "
                    f"{MIN_STRAGGLER_SHARE:.0%} of recent calls straggled; extra calls "
                    f"(hedges and fallbacks) at most {share:.0%} of requests, "
                    f"{float(hedging.get('max_extra_burst', 50.0)):g} saved up at most")
        return f"{float(hedging['delay_ms']):g} ms"

    def set_hedging(self, enabled: bool) -> dict[str, Any]:
        """Rewrite the contract and reload it through the admin endpoint (as an operator)."""
        self.write_contract(hedging=enabled)
        resp = httpx.post(f"{self.router_url}/v1/admin/contract/reload", json={},
                          headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=10.0)
        resp.raise_for_status()
        reply: dict[str, Any] = resp.json()
        return reply

    def set_fault(self, policy_model: str, delay_ms: float, delay_prob: float) -> None:
        self.local.faults.set(policy_model, delay_ms, delay_prob)

    def clear_faults(self) -> None:
        self.local.faults.clear()

    # -- the hand-written baseline proxy ------------------------------------------------------
    @contextmanager
    def baseline_proxy(self, mode: str) -> Iterator[str]:
        port = free_port()
        proc = ManagedProcess(
            name=f"baseline-proxy-{mode}",
            argv=[sys.executable, "-m", "loadtest.baseline_proxy", "--triton-url",
                  self.triton_http, "--client", mode, "--port", str(port)],
            ready=lambda: http_ok(f"http://127.0.0.1:{port}/healthz"),
            log_path=self.root / f"baseline-{mode}.log", cwd=REPO, startup_timeout_s=60.0,
        )
        with proc:
            yield f"http://127.0.0.1:{port}"


    @contextmanager
    def floor_proxy(self) -> Iterator[tuple[str, int]]:
        """The naive design's floor (`loadtest/floor_proxy.py`): (URL, pid)."""
        port = free_port()
        proc = ManagedProcess(
            name="floor-proxy",
            argv=[sys.executable, "-m", "loadtest.floor_proxy", "--triton-grpc",
                  self.triton_grpc, "--port", str(port)],
            ready=lambda: http_ok(f"http://127.0.0.1:{port}/healthz"),
            log_path=self.root / "floor-proxy.log", cwd=REPO, startup_timeout_s=60.0,
        )
        with proc:
            assert proc.pid is not None
            yield f"http://127.0.0.1:{port}", proc.pid

    @contextmanager
    def grpc_floor(self) -> Iterator[tuple[str, int]]:
        """The gRPC transport alone (`loadtest/grpc_floor.py`): (host:port, pid)."""
        port = free_port()
        proc = ManagedProcess(
            name="grpc-floor",
            argv=[sys.executable, "-m", "loadtest.grpc_floor", "--port", str(port)],
            ready=lambda: port_open("127.0.0.1", port),
            log_path=self.root / "grpc-floor.log", cwd=REPO, startup_timeout_s=60.0,
        )
        with proc:
            assert proc.pid is not None
            yield f"127.0.0.1:{port}", proc.pid


def settle(seconds: float) -> None:
    """Let queues drain and circuit breakers close between measurements."""
    time.sleep(seconds)
