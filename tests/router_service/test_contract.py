"""The deployment contract refuses bad input naming the field, and resolves its calibration."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from router_service.contract import load_contract
from router_service.errors import ContractError
from tests.conftest import write_standin_artifacts
from tests.router_fixtures import calibration_table, contract_dict

TASKS = ["reach-v3", "pick-place-v3", "peg-insert-side-v3"]


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_standin_artifacts(tmp_path_factory.mktemp("contract-artifacts"))


def write(tmp_path: Path, artifacts: Path, mutate: Any = None) -> Path:
    table = tmp_path / "table.json"
    table.write_text(json.dumps(calibration_table(TASKS, 0.9, 0.8)))
    data = contract_dict(artifacts, table)
    if mutate:
        mutate(data)
    path = tmp_path / "contract.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_valid_contract_resolves_calibration(tmp_path: Path, artifacts: Path) -> None:
    contract = load_contract(write(tmp_path, artifacts))
    assert contract.version == "test-1"
    assert contract.generalist.name == "generalist"
    assert len(contract.calibration.rows) == 2 * len(TASKS)
    assert contract.task_names == TASKS


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d["policies"][1]["tasks"].append("fly-v3"), "policies[1].tasks[1]"),
        (lambda d: d["routing"].update(hold_action=[0.0]), "routing.hold_action"),
        (lambda d: d["routing"].update(fallback_order=["generalist", "specialist"]),
         "routing"),
        (lambda d: d.pop("version"), "version"),
        (lambda d: d["objective"].update(latency_weight_per_ms=-1), "objective"),
        (lambda d: d.update(surprise=1), "surprise"),
        (lambda d: d["policies"].append(dict(d["policies"][0])), "policies"),
        (lambda d: d["calibration"].update(table="/nonexistent/table.json"), "calibration.table"),
        (lambda d: d["task_classifier"].update(model="/nonexistent.onnx"),
         "task_classifier.model"),
    ],
)
def test_bad_contract_names_the_field(tmp_path: Path, artifacts: Path, mutate: Any,
                                      field: str) -> None:
    with pytest.raises(ContractError) as info:
        load_contract(write(tmp_path, artifacts, mutate))
    assert field in str(info.value)


def test_not_yaml_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("version: [unclosed")
    with pytest.raises(ContractError, match="not YAML"):
        load_contract(path)


def test_malformed_calibration_table(tmp_path: Path, artifacts: Path) -> None:
    path = write(tmp_path, artifacts)
    (tmp_path / "table.json").write_text('{"rows": "nope"}')
    with pytest.raises(ContractError, match=r"calibration\.table"):
        load_contract(path)


def test_shipped_ci_contract_is_valid_when_models_are_built() -> None:
    path = Path(__file__).resolve().parents[2] / "deploy" / "contracts" / "ci.yaml"
    if not (path.parent / "../../build/models/ci/offline_matrix.json").exists():
        pytest.skip("ci models not built (make models)")
    contract = load_contract(path)
    assert {p.name for p in contract.spec.policies} >= {"generalist", "specialist_reach_v3"}
