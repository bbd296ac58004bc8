"""The one way a router process is started here: `make up`, the tests, the evaluation and the
benchmark all describe it with a `RouterLaunch` and get a `ManagedProcess` back."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from deploy.local.process import ManagedProcess, http_ok

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class RouterLaunch:
    contract: Path
    triton_grpc: str  # host:port
    triton_http: str | None  # host:port; None: the router calls Triton over gRPC
    http_port: int
    grpc_port: int
    log_path: Path
    robot_keys: str  # ROUTER_API_KEYS: a comma list or the JSON form (router_service/keys.py)
    admin_key: str
    redis_url: str | None = None  # None: the router's in-process store
    name: str = "router"
    drain_s: float = 0.0  # SIGTERM drain; 0 where routers are stopped on purpose
    # /readyz waits for Triton and the contract; /healthz only for the process (a router
    # restarted while Triton is down must come back and answer hold actions).
    ready_path: str = "/readyz"
    startup_timeout_s: float = 90.0
    settings: Mapping[str, str] = field(default_factory=dict)  # more ROUTER_* variables

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("REDIS_URL", None)
        env.update({
            "ROUTER_CONTRACT_PATH": str(self.contract.resolve()),
            "ROUTER_TRITON_GRPC_URL": self.triton_grpc,
            "ROUTER_HTTP_PORT": str(self.http_port),
            "ROUTER_GRPC_PORT": str(self.grpc_port),
            "ROUTER_API_KEYS": self.robot_keys,
            "ROUTER_ADMIN_KEY": self.admin_key,
            "ROUTER_REPLICA_ID": self.name,
            "ROUTER_DRAIN_S": str(self.drain_s),
        })
        if self.triton_http:
            env["ROUTER_TRITON_HTTP_URL"] = self.triton_http
        else:
            env["ROUTER_TRITON_PROTOCOL"] = "grpc"
        if self.redis_url:
            env["REDIS_URL"] = self.redis_url
        env.update(self.settings)
        return env


def router_process(launch: RouterLaunch) -> ManagedProcess:
    url = f"http://127.0.0.1:{launch.http_port}{launch.ready_path}"
    return ManagedProcess(
        name=launch.name,
        argv=[sys.executable, "-m", "router_service"],
        ready=lambda: http_ok(url),
        log_path=launch.log_path,
        env=launch.env(),
        cwd=REPO_ROOT,
        startup_timeout_s=launch.startup_timeout_s,
    )
