"""The serving stack an evaluation talks to: its own (tritonserver with a fault-injectable model
repository, redis-server, one router process at a time) or one already running.

Every arm gets a fresh router process on its own Redis database: route latency estimates,
circuit breakers, stickiness leases and feedback outcome counts are per-router state, and an
arm that slowed a route or fed a wrong calibration table must not leak into the next arm.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from deploy.local.faults import FaultFile
from deploy.local.local_stack import LocalStack, StackOptions
from deploy.local.process import free_ports

REDIS_DATABASES = 16  # redis-server's default `databases`


@dataclass(frozen=True)
class RouterEndpoint:
    http_url: str
    grpc_target: str | None
    robot_key: str
    admin_key: str | None
    contract_version: str


def contract_version(http_url: str, robot_key: str) -> str:
    reply = httpx.get(f"{http_url}/v1/contract", timeout=5.0,
                      headers={"Authorization": f"Bearer {robot_key}"})
    reply.raise_for_status()
    return str(reply.json()["spec"]["version"])


def reload_contract(http_url: str, admin_key: str, path: Path) -> dict[str, object]:
    """`POST /v1/admin/contract/reload` with a contract file the router can read."""
    reply = httpx.post(f"{http_url}/v1/admin/contract/reload", timeout=30.0,
                       headers={"Authorization": f"Bearer {admin_key}"},
                       json={"path": str(path.resolve())})
    if reply.status_code != 200:
        raise RuntimeError(f"contract reload refused ({reply.status_code}): {reply.text}")
    result: dict[str, object] = reply.json()
    return result


def scrape_metrics(http_url: str) -> str:
    return httpx.get(f"{http_url}/metrics", timeout=5.0).text


class OwnStack:
    """tritonserver + redis-server started once per run (a `LocalStack`); routers per arm.

    With `triton_grpc` (and the `fault_dir` its repository was generated with) an already
    running tritonserver is used instead of starting one: the test suite's session server."""

    def __init__(self, run_dir: Path, artifacts: Path, use_redis: bool = True,
                 triton_grpc: str | None = None, fault_dir: Path | None = None) -> None:
        self.run_dir = run_dir
        self.artifacts = artifacts
        self._stack = LocalStack(StackOptions(
            run_dir=run_dir, artifacts=None if triton_grpc else artifacts,
            triton=triton_grpc is None, redis=use_redis))
        self.faults = FaultFile(fault_dir) if fault_dir else self._stack.faults
        self.robot_key = secrets.token_hex(16)
        self.admin_key = secrets.token_hex(16)
        self._triton_grpc = triton_grpc or self._stack.triton_grpc
        # An external server is known by its gRPC address only: routers call it over gRPC.
        self._triton_http = None if triton_grpc else self._stack.triton_http
        self._routers_started = 0

    @property
    def triton_grpc(self) -> str:
        return self._triton_grpc

    @property
    def triton_http(self) -> str | None:
        """Triton's HTTP host:port when this stack started it."""
        return self._triton_http

    @property
    def has_redis(self) -> bool:
        return self._stack.use_redis

    def start(self) -> None:
        self.faults.fault_dir.mkdir(parents=True, exist_ok=True)
        self._stack.start()

    def stop(self) -> None:
        self._stack.stop()

    def _fresh_redis_url(self) -> str | None:
        if not self.has_redis:
            return None
        import redis  # the router's own dependency

        db = 1 + self._routers_started % (REDIS_DATABASES - 1)
        url = f"redis://127.0.0.1:{self._stack.redis_port}/{db}"
        # A router loads the store's contract before its file: start every arm from empty.
        client = redis.Redis.from_url(url)
        try:
            client.flushdb()
        finally:
            client.close()
        return url

    @contextmanager
    def router(self, contract: Path, name: str) -> Iterator[RouterEndpoint]:
        http_port, grpc_port = free_ports(2)
        self._routers_started += 1
        process = self._stack.router(
            contract=contract, triton_grpc=self._triton_grpc, triton_http=self._triton_http,
            http_port=http_port, grpc_port=grpc_port,
            log_path=self.run_dir / f"router-{name}.log", robot_keys=self.robot_key,
            admin_key=self.admin_key, redis_url=self._fresh_redis_url(),
            name=f"eval-{name}", startup_timeout_s=120.0)
        with process:
            url = f"http://127.0.0.1:{http_port}"
            yield RouterEndpoint(url, f"127.0.0.1:{grpc_port}", self.robot_key, self.admin_key,
                                 contract_version(url, self.robot_key))


@dataclass(frozen=True)
class RunningStack:
    """A stack someone else started: arms switch contracts by reload, and the original contract
    is reloaded at the end. Router state (latency estimates, outcome counts) is shared by the
    arms here, which the report says."""

    http_url: str
    grpc_target: str | None
    robot_key: str
    admin_key: str | None
    fault_dir: Path | None

    @property
    def faults(self) -> FaultFile | None:
        return FaultFile(self.fault_dir) if self.fault_dir else None

    def original_contract(self) -> Path:
        reply = httpx.get(f"{self.http_url}/v1/contract", timeout=5.0,
                          headers={"Authorization": f"Bearer {self.robot_key}"})
        reply.raise_for_status()
        return Path(reply.json()["source_path"])

    @contextmanager
    def router(self, contract: Path, name: str) -> Iterator[RouterEndpoint]:
        if self.admin_key is None:
            raise RuntimeError(f"arm {name}: switching contracts needs --admin-key")
        reload_contract(self.http_url, self.admin_key, contract)
        yield RouterEndpoint(self.http_url, self.grpc_target, self.robot_key, self.admin_key,
                             contract_version(self.http_url, self.robot_key))
