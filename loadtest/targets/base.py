"""What every target shares: the outcome of one request, error taxonomy, the plan as lists.

Targets build each request from pre-serialised pieces (observation JSON/bytes cached per pool
row) so the hot path is a few concatenations and one await: the generator shares the CPU with
the server under test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Protocol

import numpy as np
import orjson

from loadtest.observations import F32
from loadtest.schedule import Plan


class Outcome(NamedTuple):
    """`status`: "ok", "http_<code>", "grpc_<CODE>", "client_timeout", "transport_error",
    "overflow", "client_error". `error_kind` groups statuses into what an operator acts on."""

    status: str
    route: str | None = None
    fallback: str | None = None
    deadline_met: bool | None = None
    error_kind: str | None = None
    error_code: str | None = None  # the server's own error code (router JSON / gRPC detail)


class TargetUnavailable(RuntimeError):
    """Preflight failed: the target is not reachable or not ready; nothing was measured."""


class Target(Protocol):
    name: str

    async def start(self) -> None: ...

    async def preflight(self) -> None: ...

    async def send(self, i: int) -> Outcome: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class TargetOptions:
    url: str | None = None
    api_key: str | None = None
    manifest: str = "build/models/ci/manifest.json"
    run_id: str = "lt"


def http_error_kind(code: int) -> str:
    if code == 408:
        return "deadline"
    if code in (429, 503):
        return "shed"
    if code in (401, 403):
        return "auth"
    if 400 <= code < 500:
        return "rejected"
    return "server_error"


_GRPC_KINDS = {
    "DEADLINE_EXCEEDED": "deadline",
    "RESOURCE_EXHAUSTED": "shed",
    "UNAVAILABLE": "unavailable",
    "UNAUTHENTICATED": "auth",
    "PERMISSION_DENIED": "auth",
    "INVALID_ARGUMENT": "rejected",
    "FAILED_PRECONDITION": "rejected",
    "OUT_OF_RANGE": "rejected",
    "NOT_FOUND": "rejected",
    "CANCELLED": "cancelled",
}


def grpc_error_kind(code_name: str) -> str:
    return _GRPC_KINDS.get(code_name, "server_error")


def robot_name(run_id: str, robot: int) -> str:
    """Unique per run, so router state keyed by robot/episode never carries across runs."""
    return f"{run_id}-robot-{robot:05d}"


def task_id(task: str) -> str:
    return task.replace("-", "_")


class PlanLists:
    """The plan as Python lists: indexing a list is several times cheaper than a numpy scalar."""

    def __init__(self, plan: Plan, pool: F32, run_id: str = "lt") -> None:
        self.scheduled_s: list[float] = plan.scheduled_s.tolist()
        self.origin_unix: float | None = None  # Unix time of the plan's t=0, set by the runner
        self.robot: list[int] = plan.robot.tolist()
        self.episode: list[int] = plan.episode.tolist()
        self.step: list[int] = plan.step.tolist()
        self.task: list[int] = plan.task.tolist()
        self.hidden: list[bool] = plan.hidden.tolist()
        self.obs: list[int] = plan.obs.tolist()
        self.tasks = plan.tasks
        self.pool = pool
        # shortest float32 repr: smaller bodies than float64 repr of the same values
        self.state_json: list[bytes] = [
            orjson.dumps(np.ascontiguousarray(row), option=orjson.OPT_SERIALIZE_NUMPY)
            for row in pool
        ]
        self.state_list: list[list[float]] = pool.tolist()
        # robot_id per robot (also the episode_id prefix); bytes for the HTTP bodies
        robots = range(int(plan.robot.max(initial=-1)) + 1)
        self.robot_name: list[str] = [robot_name(run_id, r) for r in robots]
        self.robot_id: list[bytes] = [name.encode() for name in self.robot_name]

    def __len__(self) -> int:
        return len(self.robot)

    def deadline_unix_ms(self, i: int, deadline_ms: float) -> float | None:
        """When request `i` had to be answered: its scheduled time plus its deadline."""
        if self.origin_unix is None:
            return None
        return (self.origin_unix + self.scheduled_s[i]) * 1000.0 + deadline_ms
