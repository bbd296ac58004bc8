"""The deployment contract: the one versioned document that says what is served and how to route.

Loaded from YAML, validated whole (pydantic), with the calibration table resolved into it, so a
replica that receives it through the store needs no file of its own except the task classifier.
A bad contract raises `ContractError` naming the field; nothing is served from half of one.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from router_service.errors import ContractError

RouteKind = Literal["generalist", "specialist"]
HOLD_ROUTE = "hold"
# Calibration-table row of the generalist conditioned on the *inferred* task (classifier
# probabilities): what the generalist is worth when the robot does not say its task.
INFERRED_GENERALIST_ROW = "generalist+classifier"


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TaskSpec(Frozen):
    name: str
    success_target: float = Field(ge=0.0, le=1.0)


class PolicySpec(Frozen):
    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")  # the route name; also the Triton ensemble
    kind: RouteKind
    tasks: tuple[str, ...] = Field(min_length=1)
    ops_cost: float = Field(ge=0.0)
    expected_latency_ms: float = Field(gt=0.0, default=5.0)  # prior until live estimates exist


class Objective(Frozen):
    latency_weight_per_ms: float = Field(ge=0.0)  # λ: success probability traded per ms
    ops_cost_weight: float = Field(ge=0.0)  # μ
    tie_epsilon: float = Field(ge=0.0, default=0.01)


class Hedging(Frozen):
    enabled: bool = False
    delay_ms: float = Field(gt=0.0, default=8.0)  # used when not adaptive
    # Adaptive: hedge once the primary is a straggler (2x its route's predicted p90, or past its
    # p95 if later), and only on a route that straggles (router_service/hedging.py): not after a
    # fixed delay that is too late on a fast route and too early on a slow one, nor on a route
    # whose tail is only load.
    adaptive: bool = False
    # Extra upstream calls (hedges and fallback attempts together) per request, at most, over
    # any long run: hedges are what is left after fallbacks.
    max_extra_share: float = Field(ge=0.0, le=1.0, default=0.05)
    # Extra calls that can be saved up (and the most debt fallbacks can run up). Stragglers come
    # in runs: a stalled route is late for every call during its stall (the straggler A/B saw
    # runs of 10 and more), and a run longer than the savings goes unhedged.
    max_extra_burst: float = Field(ge=1.0, le=10_000.0, default=50.0)


class Batching(Frozen):
    """Cross-robot micro-batching into Triton (router_service/batching.py)."""

    enabled: bool = True
    max_batch: int = Field(ge=1, le=64, default=32)  # at most the ensembles' max_batch_size
    # The longest a row waits for others while a call for its route is in flight; never longer
    # than the row's own slack.
    max_wait_ms: float = Field(ge=0.0, le=50.0, default=2.0)


class CircuitBreakerSpec(Frozen):
    failure_threshold: int = Field(ge=1, default=5)
    open_s: float = Field(gt=0.0, default=2.0)


class Routing(Frozen):
    min_task_confidence: float = Field(ge=0.0, le=1.0, default=0.8)
    sticky_ttl_s: float = Field(gt=0.0, default=30.0)
    # An episode leaves its route after this many steps in a row on which the route did not
    # answer (a fallback), and is then scored afresh: one straggling reply must not end an
    # episode's stay on its specialist, a failing route must not hold it.
    sticky_max_failures: int = Field(ge=1, default=3)
    fallback_order: tuple[Literal["specialist", "generalist", "hold"], ...] = (
        "specialist",
        "generalist",
        "hold",
    )
    hold_action: tuple[float, ...]
    hedging: Hedging = Hedging()
    batching: Batching = Batching()
    circuit_breaker: CircuitBreakerSpec = CircuitBreakerSpec()

    @model_validator(mode="after")
    def _ends_with_hold(self) -> Routing:
        if not self.fallback_order or self.fallback_order[-1] != "hold":
            raise ValueError("fallback_order must end with 'hold' (the safe action)")
        if len(set(self.fallback_order)) != len(self.fallback_order):
            raise ValueError("fallback_order has repeated entries")
        return self


class CalibrationRow(Frozen):
    task: str
    policy: str
    episodes: int = Field(ge=0)
    successes: int = Field(ge=0)
    rate: float = Field(ge=0.0, le=1.0)
    ci95: tuple[float, float]


class CalibrationTable(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    panel: str
    source: str = "offline"
    created: str | None = None
    rows: tuple[CalibrationRow, ...]


class CalibrationSpec(Frozen):
    table: str  # path, relative to the contract file
    prior_success: float = Field(ge=0.0, le=1.0, default=0.5)


class ClassifierSpec(Frozen):
    model: str  # ONNX, relative to the contract file
    norm_stats: str


class ObservationMapping(Frozen):
    """How a third-party client's observation dict (openpi, LeRobot, ROS 2) becomes the router's
    state vector and task (router_service/observation_map.py). The router's own API needs none.
    """

    # Keys holding the whole state vector, tried in order; the first one present is used.
    state_keys: tuple[str, ...] = ("observation/state", "observation.state", "state")
    # Else: scalar keys concatenated in this order (LeRobot's per-joint `shoulder_pan.pos`...).
    state_components: tuple[str, ...] = ()
    # Keys naming the task, tried in order; a value that is not a contract task is ignored
    # (a free-text prompt) and the classifier infers the task.
    task_keys: tuple[str, ...] = ("prompt", "task")


class ContractSpec(Frozen):
    """The YAML file as written by an operator."""

    version: str = Field(min_length=1)
    panel: str
    state_dim: int = Field(gt=0)
    action_dim: int = Field(gt=0)
    default_deadline_ms: float = Field(gt=0.0)
    tasks: tuple[TaskSpec, ...] = Field(min_length=1)
    policies: tuple[PolicySpec, ...] = Field(min_length=1)
    objective: Objective
    routing: Routing
    calibration: CalibrationSpec
    task_classifier: ClassifierSpec
    observation_mapping: ObservationMapping = ObservationMapping()

    @model_validator(mode="after")
    def _consistent(self) -> ContractSpec:
        known = {t.name for t in self.tasks}
        for i, policy in enumerate(self.policies):
            for j, task in enumerate(policy.tasks):
                if task not in known:
                    raise ValueError(
                        f"policies[{i}].tasks[{j}]: unknown task {task!r} (known: {sorted(known)})"
                    )
        generalists = [p.name for p in self.policies if p.kind == "generalist"]
        if len(generalists) != 1:
            raise ValueError(f"policies: exactly one generalist required, found {generalists}")
        names = [p.name for p in self.policies]
        if len(set(names)) != len(names) or HOLD_ROUTE in names:
            raise ValueError(f"policies: names must be unique and not {HOLD_ROUTE!r}: {names}")
        if len(self.routing.hold_action) != self.action_dim:
            raise ValueError(
                f"routing.hold_action: length {len(self.routing.hold_action)} "
                f"!= action_dim {self.action_dim}"
            )
        return self


class Contract(Frozen):
    """A validated contract with its calibration table resolved: what replicas share."""

    spec: ContractSpec
    calibration: CalibrationTable
    source_path: str
    loaded_at: str

    @property
    def version(self) -> str:
        return self.spec.version

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.spec.tasks]

    @property
    def generalist(self) -> PolicySpec:
        return next(p for p in self.spec.policies if p.kind == "generalist")

    def policy(self, name: str) -> PolicySpec:
        return next(p for p in self.spec.policies if p.name == name)

    def calibration_row(self, task: str, route: str, inferred: bool) -> CalibrationRow | None:
        """The table row that predicts `route` on `task`; an inferred task reads the generalist's
        inferred-task row where the table has one."""
        names = [route]
        if inferred and route == self.generalist.name:
            names.insert(0, INFERRED_GENERALIST_ROW)
        for name in names:
            for row in self.calibration.rows:
                if row.task == task and row.policy == name:
                    return row
        return None

    def classifier_paths(self) -> tuple[Path, Path]:
        base = Path(self.source_path).parent
        spec = self.spec.task_classifier
        return base / spec.model, base / spec.norm_stats


def _format_validation(exc: ValidationError, source: str) -> str:
    problems = []
    for err in exc.errors():
        where = ".".join(str(part) for part in err["loc"]) or "(top level)"
        problems.append(f"{where}: {err['msg']}")
    return f"invalid contract {source}: " + "; ".join(problems)


def parse_contract(text: str, source_path: Path) -> Contract:
    """Validate contract YAML text and resolve its calibration table (relative to source_path)."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ContractError(f"invalid contract {source_path}: not YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ContractError(f"invalid contract {source_path}: top level must be a mapping")
    try:
        spec = ContractSpec.model_validate(raw)
    except ValidationError as exc:
        raise ContractError(_format_validation(exc, str(source_path))) from exc
    table_path = source_path.parent / spec.calibration.table
    try:
        table = CalibrationTable.model_validate(json.loads(table_path.read_text()))
    except FileNotFoundError as exc:
        raise ContractError(
            f"invalid contract {source_path}: calibration.table: file not found: {table_path}",
            field="calibration.table",
        ) from exc
    except (ValidationError, json.JSONDecodeError) as exc:
        raise ContractError(
            f"invalid contract {source_path}: calibration.table: {table_path} is malformed: {exc}",
            field="calibration.table",
        ) from exc
    for path, field in zip(
        (source_path.parent / spec.task_classifier.model,
         source_path.parent / spec.task_classifier.norm_stats),
        ("task_classifier.model", "task_classifier.norm_stats"),
        strict=True,
    ):
        if not path.exists():
            raise ContractError(
                f"invalid contract {source_path}: {field}: file not found: {path}", field=field
            )
    return Contract(
        spec=spec,
        calibration=table,
        source_path=str(source_path.resolve()),
        loaded_at=datetime.now().astimezone().isoformat(timespec="seconds"),
    )


def load_contract(path: Path) -> Contract:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ContractError(f"cannot read contract {path}: {exc}", field="contract_path") from exc
    return parse_contract(text, path)


def contract_from_json(payload: str) -> Contract:
    """A contract as shared through the store (already validated by the replica that stored it,
    validated again here: a replica never trusts what it did not check)."""
    try:
        return Contract.model_validate_json(payload)
    except ValidationError as exc:
        raise ContractError(_format_validation(exc, "(from store)")) from exc
