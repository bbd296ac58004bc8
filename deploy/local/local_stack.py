"""The one stack object: tritonserver, redis-server and router processes on this machine.

`make up`, the test suite, the evaluation and the benchmark all compose the stack through a
`LocalStack`; what differs between them is an option of `StackOptions`, not a second copy:
- ports: fixed (`make up`: 8000-8002, 6379; checked free first, one line naming the holder) or
  free ones picked at start (tests, evaluation, benchmark: never touching someone's stack);
- the model repository: served as built by `make repository`, or generated from artifacts into
  the run directory with fault injection (`faults/policy_<name>.json`, one writer: `faults`);
- which components: Triton and Redis each optional (a test's Redis alone, an evaluation against
  a Triton already running);
- supervision: `make up` restarts what dies (deploy/local/supervisor.py); elsewhere a death is
  the test's or the benchmark's business.
Routers (and Prometheus) join with `add`; `stop` ends everything in reverse order.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deploy.local.faults import FaultFile
from deploy.local.ports import check_free, wait_free
from deploy.local.process import ManagedProcess, free_ports
from deploy.local.redis import redis_process
from deploy.local.router import RouterLaunch, router_process
from deploy.local.supervisor import Component, Supervisor
from deploy.local.triton import TritonPorts, triton_process


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class StackOptions:
    run_dir: Path  # logs, generated repository, fault files, Redis data
    repository: Path | None = None  # serve this repository as it is ...
    artifacts: Path | None = None  # ... or generate one from these, with fault injection
    triton: bool = True
    triton_ports: TritonPorts | None = None  # None: free ports
    triton_args: tuple[str, ...] = ()
    redis: bool = True  # when redis-server is installed
    redis_port: int | None = None  # None: a free port
    supervise: bool = False  # restart a component that dies (make up)
    log: Callable[[str], None] = _stderr

    def __post_init__(self) -> None:
        if self.triton and (self.repository is None) == (self.artifacts is None):
            raise ValueError("StackOptions: give exactly one of repository and artifacts")


@dataclass
class LocalStack:
    options: StackOptions
    _started: list[ManagedProcess] = field(default_factory=list, init=False)
    _supervisor: Supervisor | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        o = self.options
        self.run_dir = o.run_dir
        self.fault_dir = o.run_dir / "faults"
        fixed = o.triton_ports is not None or o.redis_port is not None
        picks = iter(free_ports(4))
        self.triton_ports = o.triton_ports or TritonPorts(next(picks), next(picks), next(picks))
        self.redis_port = o.redis_port or next(picks)
        self.use_redis = o.redis and shutil.which("redis-server") is not None
        self.repository = o.repository or o.run_dir / "model_repository"
        self._check_ports = fixed

    # -- addresses ----------------------------------------------------------------------------
    @property
    def triton_grpc(self) -> str:
        return f"127.0.0.1:{self.triton_ports.grpc}"

    @property
    def triton_http(self) -> str:
        return f"127.0.0.1:{self.triton_ports.http}"

    @property
    def redis_url(self) -> str | None:
        return f"redis://127.0.0.1:{self.redis_port}/0" if self.use_redis else None

    @property
    def faults(self) -> FaultFile:
        """The fault file of a generated repository (one writer for every caller)."""
        return FaultFile(self.fault_dir)

    @property
    def processes(self) -> tuple[ManagedProcess, ...]:
        """What is running, in start order (Triton, Redis, then what was added)."""
        return tuple(self._started)

    def ports(self) -> dict[str, int]:
        """What this stack listens on, by name (checked free before start, after stop)."""
        wanted: dict[str, int] = {}
        if self.options.triton:
            p = self.triton_ports
            wanted |= {"Triton HTTP": p.http, "Triton gRPC": p.grpc, "Triton metrics": p.metrics}
        if self.use_redis:
            wanted["redis-server"] = self.redis_port
        return wanted

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self, extra_ports: Mapping[str, int] | None = None) -> LocalStack:
        """Triton and Redis; `extra_ports` (routers, Prometheus to come) are checked free too.
        Raises `PortBusy` before anything starts."""
        o = self.options
        if self._started:
            raise RuntimeError("LocalStack.start: already started")
        if self._check_ports or extra_ports:
            check_free({**self.ports(), **(extra_ports or {})})
        if o.supervise:
            self._supervisor = Supervisor(o.log, o.run_dir / "supervisor.json")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        try:
            if o.triton:
                if o.artifacts is not None:
                    from policies.repository import generate  # only where one is generated

                    self.fault_dir.mkdir(exist_ok=True)
                    self.faults.clear()
                    generate(o.artifacts, self.repository, "cpu", self.fault_dir)
                triton = triton_process(self.repository, self.run_dir / "tritonserver.log",
                                        self.triton_ports, extra_args=o.triton_args)
                self.add(triton, before_restart=triton.reap_group)
            if self.use_redis:
                self.add(redis_process(self.run_dir / "redis", port=self.redis_port))
        except BaseException:
            self.stop()
            raise
        return self

    def add(self, process: ManagedProcess,
            before_restart: Callable[[], None] | None = None) -> ManagedProcess:
        """Start `process` as part of the stack (supervised when the stack is); stopped, in
        reverse order, by `stop`."""
        self.options.log(f"starting {process.name} (log {process.log_path}) ...")
        process.start()
        self._started.append(process)
        if self._supervisor is not None:
            self._supervisor.watch(Component(process, before_restart or (lambda: None)))
        return process

    def router_launch(self, **launch: Any) -> RouterLaunch:
        """A `RouterLaunch` pointed at this stack's Triton (HTTP) and Redis; `launch` gives the
        rest (contract, ports, keys, log_path ...) and may override either address."""
        defaults: dict[str, Any] = {"triton_grpc": self.triton_grpc,
                                    "triton_http": self.triton_http,
                                    "redis_url": self.redis_url}
        return RouterLaunch(**{**defaults, **launch})

    def router(self, **launch: Any) -> ManagedProcess:
        """A router process on this stack, not started: `add` it, or use it as a context."""
        return router_process(self.router_launch(**launch))

    def remove(self, process: ManagedProcess) -> None:
        """Stop one process of the stack (e.g. a router about to be replaced)."""
        process.stop()
        if process in self._started:
            self._started.remove(process)

    def stop(self) -> None:
        if self._supervisor is not None:
            self._supervisor.stop()  # stop watching first, so nothing is restarted
            self._supervisor = None
        for process in reversed(self._started):
            process.stop()
        self._started.clear()

    def wait_ports_free(self, extra_ports: Mapping[str, int] | None = None) -> list[str]:
        return wait_free({**self.ports(), **(extra_ports or {})})

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
