"""Fixtures for the evaluation tests: a deployment contract for whatever artifacts the session's
real Triton serves (the CI build when there is one, else the random-weight stand-ins)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))  # eval_testkit, without a package __init__

from eval_testkit import reference_rows, write_table

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def served_contract(triton: Any, tmp_path: Path) -> Path:
    """deploy/contracts/ci.yaml pointed at the served artifacts' classifier and calibration
    table (a constructed table when the artifacts have none)."""
    artifacts: Path = triton.artifacts
    raw = yaml.safe_load((REPO / "deploy" / "contracts" / "ci.yaml").read_text())
    tasks = json.loads((artifacts / "manifest.json").read_text())["tasks"]
    assert [t["name"] for t in raw["tasks"]] == tasks, "the session serves another panel"
    table = artifacts / "offline_matrix.json"
    if not table.is_file():
        table = write_table(tmp_path / "offline_matrix.json", reference_rows())
    raw["calibration"]["table"] = str(table)
    raw["task_classifier"] = {"model": str(artifacts / "task_classifier" / "model.onnx"),
                              "norm_stats": str(artifacts / "norm_stats.json")}
    path = tmp_path / "contract.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path
