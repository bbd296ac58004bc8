"""Scenario files: what fleet to simulate, against what, and what SLA the run must meet.

A scenario is YAML validated by pydantic. Every validation error is re-raised as
`ScenarioError` whose message starts with the dotted field path (`sla.budget_ms: ...`), so a
typo in a file points at the line to fix instead of at a pydantic traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

TargetName = Literal["router", "direct-triton", "baseline-proxy"]
# ws and grpc-stream: one session per robot (WebSocket /v1/act/stream, gRPC StreamAct); router only
# openpi, kserve-grpc, kserve-http: the third-party client protocols (loadtest/targets/clients.py)
Transport = Literal["http", "grpc", "ws", "grpc-stream", "openpi", "kserve-grpc", "kserve-http"]

# Short names accepted on the command line (`--target direct`) next to the scenario spellings.
TARGET_ALIASES: dict[str, TargetName] = {
    "router": "router",
    "direct": "direct-triton",
    "direct-triton": "direct-triton",
    "triton": "direct-triton",
    "baseline": "baseline-proxy",
    "baseline-proxy": "baseline-proxy",
}


class ScenarioError(ValueError):
    """A scenario file is unreadable or invalid; the message names the offending field(s)."""


class SLA(BaseModel):
    """`quantile_within_budget` of all requests in the measured window must be answered OK within
    `budget_ms` of their scheduled send time. Errors, overflow and (by default) `hold` answers
    count as misses: a router that holds every robot must not pass."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    quantile_within_budget: float = Field(gt=0.0, le=1.0)
    budget_ms: float = Field(gt=0.0)
    hold_counts_as_miss: bool = True


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    label: str | None = None  # free text carried into results (e.g. "hedging-on")
    robots: int = Field(ge=1, le=100_000)
    control_hz: float = Field(gt=0.0, le=10_000.0)
    task_mix: dict[str, float] = Field(min_length=1)
    hidden_task_share: float = Field(default=0.0, ge=0.0, le=1.0)
    deadline_ms: float = Field(gt=0.0)
    duration_s: float = Field(gt=0.0)
    ramp_s: float = Field(default=0.0, ge=0.0)
    transport: Transport = "http"
    target: TargetName = "router"
    sla: SLA
    seed: int = 0
    obs_dim: int = Field(default=39, ge=1)
    # A robot keeps one task (and one declared/hidden choice) for a whole episode, as a real
    # controller does; the task is redrawn from the mix at each new episode.
    episode_steps: int = Field(default=500, ge=1)
    # Open loop: in-flight requests above this cap are recorded as `overflow` errors instead of
    # being queued, so a slow server can never silently slow the generator down.
    max_outstanding: int = Field(default=2_000, ge=1)
    # Router targets send each request's absolute deadline (schedule + deadline_ms, Unix ms):
    # the robot needed its action by then, however late the generator sent it, and the router
    # can only be honest about `deadline_met` if it knows.
    absolute_deadline: bool = True
    # How long the client waits for an answer (HTTP, and gRPC to Triton directly). The router's
    # gRPC call deadline is `deadline_ms` instead: that is the protocol's budget.
    client_timeout_ms: float = Field(default=1_000.0, gt=0.0)
    # direct-triton / baseline-proxy have no router: the generator picks the ensemble itself from
    # the true task, either that task's specialist or the generalist with a task one-hot.
    direct_policy: Literal["specialist", "generalist"] = "specialist"
    observations: Path | None = None  # recorded states (.npy, .json, .jsonl); None = synthetic

    @field_validator("task_mix")
    @classmethod
    def _weights_positive(cls, mix: dict[str, float]) -> dict[str, float]:
        for task, weight in mix.items():
            if not task:
                raise ValueError("task names must be non-empty")
            if not weight > 0.0:
                raise ValueError(f"weight of {task!r} must be > 0, got {weight}")
        return mix

    @model_validator(mode="after")
    def _ramp_inside_run(self) -> Scenario:
        if self.ramp_s >= self.duration_s:
            raise ValueError(
                f"ramp_s ({self.ramp_s}) must be shorter than duration_s ({self.duration_s})"
            )
        if self.target == "baseline-proxy" and self.transport != "http":
            raise ValueError("target baseline-proxy speaks HTTP only (transport: http)")
        return self

    @property
    def period_s(self) -> float:
        return 1.0 / self.control_hz

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(self.task_mix)


def _format_errors(err: ValidationError) -> str:
    lines = []
    for item in err.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(scenario)"
        lines.append(f"{where}: {item['msg']}")
    return "; ".join(lines)


def scenario_from_dict(data: dict[str, Any]) -> Scenario:
    try:
        return Scenario.model_validate(data)
    except ValidationError as err:
        raise ScenarioError(_format_errors(err)) from None


def load_scenario(path: Path, overrides: dict[str, Any] | None = None) -> Scenario:
    """Read and validate a scenario; `overrides` (from CLI flags) are validated with it."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as err:
        raise ScenarioError(f"cannot read scenario {path}: {err}") from None
    except yaml.YAMLError as err:
        raise ScenarioError(f"{path} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ScenarioError(f"{path}: top level must be a mapping of fields")
    obs = data.get("observations")
    if isinstance(obs, str) and not Path(obs).is_absolute():
        # A recorded-state path in the file is relative to the file, not to the caller's cwd
        # (a path given as an override is the caller's, relative to the cwd).
        data["observations"] = str(path.parent / obs)
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return scenario_from_dict(data)


def with_overrides(scenario: Scenario, **overrides: Any) -> Scenario:
    """A re-validated copy (model_copy would skip validation)."""
    data = scenario.model_dump()
    data.update({k: v for k, v in overrides.items() if v is not None})
    return scenario_from_dict(data)
