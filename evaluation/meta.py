"""What a run was (`run.json`): settings, the contract's targets, every arm's contract and the
router metrics scraped at the arm's end. With `episodes.jsonl` it is all the report reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel

# Router metrics kept per arm (the raw scrape is saved next to them).
KEPT_METRICS = (
    "router_calibration_stale", "router_misroutes_total", "router_fallbacks_total",
    "router_deadline_misses_total", "router_shed_total", "router_requests_total",
    "router_errors_total", "router_decisions_total", "router_circuit_open",
)


class MetricSample(BaseModel):
    labels: dict[str, str]
    value: float


class ArmMeta(BaseModel):
    name: str
    family: str
    declare_task: bool
    perturbation: dict[str, Any]
    description: str
    contract: str  # relative to the result folder
    contract_version: str
    calibration_table: str  # absolute: the table the router routed by
    route_tasks: dict[str, list[str]]
    wall_s: float = 0.0
    router_start_s: float = 0.0
    metrics: dict[str, list[MetricSample]] = {}


class RunMeta(BaseModel):
    command: str
    started: str
    finished: str = ""
    panel: str
    tasks: list[str]
    episodes_per_cell: int
    robots: int
    transport: str
    control_hz: float
    deadline_ms: float
    max_steps: int
    rounds: int = 1
    base_contract: str
    base_contract_version: str
    success_targets: dict[str, float]
    generalist: str
    specialist_for: dict[str, str]
    ops_cost: dict[str, float]
    reference_table: str
    stack: str  # "own" or the router URL
    redis: bool
    model_versions: dict[str, str]
    arms: list[ArmMeta] = []
    cpu_count: int = 0
    load_start: list[float] = []  # 1/5/15-minute load averages when the run started
    load_end: list[float] = []
    setup_s: float = 0.0
    total_s: float = 0.0
    calibration_loop: dict[str, Any] = {}
    # route -> p50/p90/p99 ms through Triton at the start of the run; the p90s are the latency
    # priors of every derived contract (evaluation/latency_terms.py). Empty: not measured.
    served_latency_ms: dict[str, dict[str, float]] = {}
    # Which Meta-World configurations the episodes ran on, and those the calibration table was
    # measured on, checked disjoint before the run (None/empty: a run from before this was kept).
    config_seed: int | None = None
    calibration_config_seed: int | None = None
    config_ids: dict[str, list[str]] = {}  # task -> identity of configuration index i
    calibration_config_ids: dict[str, list[str]] = {}

    def arm(self, name: str) -> ArmMeta | None:
        return next((a for a in self.arms if a.name == name), None)


def parse_metrics(text: str, keep: tuple[str, ...] = KEPT_METRICS
                  ) -> dict[str, list[MetricSample]]:
    out: dict[str, list[MetricSample]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in keep:
                out.setdefault(sample.name, []).append(
                    MetricSample(labels=dict(sample.labels), value=float(sample.value)))
    return out


def write_meta(path: Path, meta: RunMeta) -> None:
    path.write_text(meta.model_dump_json(indent=2))


def read_meta(path: Path) -> RunMeta:
    return RunMeta.model_validate_json(path.read_text())
