"""Contracts and calibration tables for the arms, derived from the deployed contract and written
into the result folder, so every arm is served by the same router code and the run records
exactly what each arm was served under."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from evaluation.arms import Arm
from evaluation.stats import wilson_interval

# A generalist that costs this much can never outscore a specialist (success is at most 1).
NEVER_WINS_OPS_COST = 10.0


@dataclass(frozen=True)
class TableRow:
    task: str
    policy: str
    episodes: int
    successes: int
    rate: float
    ci95: tuple[float, float]


def row_from_counts(task: str, policy: str, episodes: int, successes: int) -> TableRow:
    lo, hi = wilson_interval(successes, episodes)
    rate = successes / episodes if episodes else 0.0
    return TableRow(task, policy, episodes, successes, round(rate, 4), (round(lo, 4), round(hi, 4)))


def load_base(path: Path) -> dict[str, Any]:
    """The contract YAML with its file references made absolute, so derived copies written
    anywhere still point at the same calibration table and task classifier."""
    raw: dict[str, Any] = yaml.safe_load(path.read_text())
    base = path.resolve().parent
    raw["calibration"]["table"] = str((base / raw["calibration"]["table"]).resolve())
    for key in ("model", "norm_stats"):
        raw["task_classifier"][key] = str((base / raw["task_classifier"][key]).resolve())
    return raw


def load_table(path: Path) -> dict[tuple[str, str], TableRow]:
    data = json.loads(path.read_text())
    return {
        (r["task"], r["policy"]): TableRow(r["task"], r["policy"], int(r["episodes"]),
                                           int(r["successes"]), float(r["rate"]),
                                           (float(r["ci95"][0]), float(r["ci95"][1])))
        for r in data["rows"]
    }


def table_json(panel: str, source: str, rows: Iterable[TableRow], note: str = "") -> dict[str, Any]:
    """The calibration-table format of `offline_matrix.json` (docs/interfaces.md)."""
    out: dict[str, Any] = {
        "panel": panel, "source": source,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "rows": [{"task": r.task, "policy": r.policy, "episodes": r.episodes,
                  "successes": r.successes, "rate": r.rate, "ci95": list(r.ci95)} for r in rows],
    }
    if note:
        out["note"] = note
    return out


def inverted_rows(rows: Iterable[TableRow]) -> list[TableRow]:
    """Every rate r becomes 1 - r (counts flipped, interval recomputed): the router now expects
    the worse of two routes to be the better one, and feedback must contradict it."""
    return [row_from_counts(r.task, r.policy, r.episodes, r.episodes - r.successes) for r in rows]


def _write_yaml(raw: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def derive_contract(base: dict[str, Any], arm: Arm, out_dir: Path,
                    served_p90_ms: dict[str, float] | None = None) -> Path:
    """Write the contract the arm is served under; returns its path. `served_p90_ms` (route ->
    measured p90 through Triton) replaces the latency priors, after any generalist swap."""
    raw = copy.deepcopy(base)
    raw["version"] = f"{base['version']}-eval-{arm.name}"
    generalists = [p for p in raw["policies"] if p["kind"] == "generalist"]
    if arm.generalist:
        for policy in generalists:
            policy["name"] = arm.generalist
    if arm.family == "generalist":
        raw["policies"] = generalists
        raw["routing"]["fallback_order"] = ["generalist", "hold"]
    elif arm.family == "specialist":
        served = {t for p in raw["policies"] if p["kind"] == "specialist" for t in p["tasks"]}
        missing = [t["name"] for t in raw["tasks"] if t["name"] not in served]
        if missing:
            raise ValueError(f"arm {arm.name}: no specialist in the contract for {missing}")
        # The contract must keep exactly one generalist; this one never wins on score and is
        # left out of the fallback chain, so only a budget emergency can route to it (counted).
        for policy in generalists:
            policy["ops_cost"] = NEVER_WINS_OPS_COST
        raw["routing"]["fallback_order"] = ["specialist", "hold"]
    if arm.perturbation.stale_calibration:
        table_path = Path(raw["calibration"]["table"])
        reference = json.loads(table_path.read_text())
        stale = table_json(
            reference["panel"], "stale_on_purpose", inverted_rows(load_table(table_path).values()),
            note=f"deliberately wrong: every rate of {table_path} inverted (r -> 1 - r)",
        )
        stale_path = out_dir / f"{arm.name}.calibration.json"
        stale_path.parent.mkdir(parents=True, exist_ok=True)
        stale_path.write_text(json.dumps(stale, indent=2))
        raw["calibration"]["table"] = str(stale_path.resolve())
    if served_p90_ms:
        raw = with_latency_terms(raw, served_p90_ms)
    return _write_yaml(raw, out_dir / f"{arm.name}.yaml")


def write_closed_loop(base: dict[str, Any], panel: str, rows: list[TableRow], out_dir: Path,
                      stamp: str) -> tuple[Path, Path]:
    """A fresh calibration table from this run (`source: closed_loop`) and a contract that
    points at it. (table path, contract path)."""
    table_path = out_dir / "calibration_closed_loop.json"
    table_path.write_text(json.dumps(table_json(panel, "closed_loop", rows), indent=2))
    raw = copy.deepcopy(base)
    raw["version"] = f"{base['version']}-closed-loop-{stamp}"
    raw["calibration"]["table"] = str(table_path.resolve())
    return table_path, _write_yaml(raw, out_dir / "contract_closed_loop.yaml")


def with_latency_terms(base: dict[str, Any], served_p90_ms: dict[str, float]) -> dict[str, Any]:
    """The contract with each policy's latency prior set from its measured serving latency
    (`evaluation/latency_terms.py`), so no route starts from a hand-set number."""
    raw = copy.deepcopy(base)
    for policy in raw["policies"]:
        if policy["name"] in served_p90_ms:
            policy["expected_latency_ms"] = round(served_p90_ms[policy["name"]], 3)
    return raw


def policy_tasks(raw: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    """route name -> tasks it serves (what 'the right route' means for a task)."""
    return {p["name"]: tuple(p["tasks"]) for p in raw["policies"]}
