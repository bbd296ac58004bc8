"""The families table's paired comparisons and the shipped contract, on constructed runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from eval_testkit import SPECIALIST, TASKS, constructed_run, episode

from evaluation.families import comparisons
from evaluation.meta import write_meta
from evaluation.records import write_jsonl
from evaluation.ship import NothingToShip, write
from router_service.contract import load_contract

REPO = Path(__file__).resolve().parents[2]


def test_router_is_compared_paired_with_the_best_single_family() -> None:
    # 40 configurations of one task: the specialist solves 36, the generalist 30, and the
    # router solves exactly what the specialist solves plus nothing else.
    eps = []
    for i in range(40):
        eps.append(episode("reach-v3", "generalist", i < 30, index=i))
        eps.append(episode("reach-v3", "specialist", i < 36, index=i))
        eps.append(episode("reach-v3", "router", i < 36, index=i))
    lines = comparisons(eps, ["generalist", "specialist", "router"])
    assert any("generalist 75.0% on average, specialists 90.0%" in line for line in lines)
    assert any("Best single family on average: **specialist**" in line for line in lines)
    router = next(line for line in lines if line.startswith("- router vs specialist"))
    assert "+0.0%" in router and "0 configurations only router solved, 0 only specialist" in router
    assert "**no significant difference**" in router
    spec = next(line for line in lines if line.startswith("- specialist vs generalist"))
    assert "6 configurations only specialist solved, 0 only generalist" in spec


def _contract(tmp_path: Path) -> Path:
    raw = yaml.safe_load((REPO / "deploy" / "contracts" / "ci.yaml").read_text())
    for key in ("model", "norm_stats"):
        stub = tmp_path / f"{key}.bin"
        stub.write_bytes(b"")
        raw["task_classifier"][key] = str(stub)
    table = tmp_path / "table.json"
    table.write_text('{"panel": "ci", "source": "offline", "created": "x", "rows": []}')
    raw["calibration"]["table"] = str(table)
    path = tmp_path / "base.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_ship_writes_the_decisions_set_with_measured_latency(tmp_path: Path) -> None:
    meta, eps = constructed_run(tmp_path / "run", n=40, reference_ok=True)
    # Every arm solves everything: the generalist alone is the smallest set.
    eps = [e.model_copy(update={"success": True, "late": [False] * len(e.late)}) for e in eps]
    write_jsonl(tmp_path / "run" / "episodes.jsonl", eps)
    meta.served_latency_ms = {"generalist": {"p50": 1.0, "p90": 2.5, "p99": 4.0}}
    meta.base_contract = str(_contract(tmp_path))
    write_meta(tmp_path / "run" / "run.json", meta)
    out = write(tmp_path / "run", tmp_path / "shipped.yaml")
    contract = load_contract(out)  # the router accepts it
    assert [p.name for p in contract.spec.policies] == ["generalist"]
    assert contract.generalist.expected_latency_ms == 2.5
    assert contract.spec.routing.fallback_order == ("generalist", "hold")
    header = out.read_text()
    assert "# - routes removed: " + ", ".join(SPECIALIST[t] for t in TASKS) in header
    assert "given up: reach-v3: specialist" in header


def test_ship_refuses_when_no_set_covers_the_contract(tmp_path: Path) -> None:
    meta, _ = constructed_run(tmp_path / "run", n=3)  # far too few episodes for any target
    meta.base_contract = str(_contract(tmp_path))
    write_meta(tmp_path / "run" / "run.json", meta)
    with pytest.raises(NothingToShip, match="no policy set meets the contract"):
        write(tmp_path / "run", tmp_path / "shipped.yaml")
    assert not (tmp_path / "shipped.yaml").exists()
