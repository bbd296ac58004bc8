from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from loadtest.scenario import Scenario, ScenarioError, load_scenario, with_overrides

SCENARIOS = Path(__file__).resolve().parents[2] / "loadtest" / "scenarios"


def base() -> dict[str, Any]:
    return {
        "name": "t",
        "robots": 2,
        "control_hz": 50,
        "task_mix": {"reach-v3": 1, "pick-place-v3": 2},
        "deadline_ms": 20,
        "duration_s": 2,
        "ramp_s": 0.5,
        "sla": {"quantile_within_budget": 0.99, "budget_ms": 20},
    }


def write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_scenarios_validate(path: Path) -> None:
    scenario = load_scenario(path)
    assert scenario.robots >= 1 and scenario.sla.budget_ms > 0


def test_default_scenario_is_about_a_minute_of_ten_robots_at_50hz() -> None:
    s = load_scenario(SCENARIOS / "default.yaml")
    assert (s.robots, s.control_hz) == (10, 50)
    assert s.duration_s <= 90


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"robots": 0}, "robots"),
        ({"control_hz": -5}, "control_hz"),
        ({"task_mix": {"reach-v3": 0}}, "task_mix"),
        ({"task_mix": {}}, "task_mix"),
        ({"hidden_task_share": 1.5}, "hidden_task_share"),
        ({"transport": "udp"}, "transport"),
        ({"target": "redis"}, "target"),
        ({"sla": {"quantile_within_budget": 0.99}}, "sla.budget_ms"),
        ({"sla": {"quantile_within_budget": 1.2, "budget_ms": 20}}, "sla.quantile_within_budget"),
        ({"colour": "blue"}, "colour"),
        ({"ramp_s": 5}, "ramp_s"),
        ({"target": "baseline-proxy", "transport": "grpc"}, "baseline-proxy"),
    ],
)
def test_validation_errors_name_the_field(
    tmp_path: Path, patch: dict[str, Any], field: str
) -> None:
    data = base() | patch
    with pytest.raises(ScenarioError) as err:
        load_scenario(write(tmp_path, data))
    assert field in str(err.value)


def test_missing_required_field_is_named(tmp_path: Path) -> None:
    data = base()
    del data["deadline_ms"]
    with pytest.raises(ScenarioError, match=r"^deadline_ms: Field required"):
        load_scenario(write(tmp_path, data))


def test_not_a_mapping_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="mapping"):
        load_scenario(write(tmp_path, [1, 2]))
    bad = tmp_path / "bad.yaml"
    bad.write_text("robots: [1,\n")
    with pytest.raises(ScenarioError, match="not valid YAML"):
        load_scenario(bad)
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "absent.yaml")


def test_observation_path_is_relative_to_the_scenario(tmp_path: Path) -> None:
    data = base() | {"observations": "states.npy"}
    scenario = load_scenario(write(tmp_path, data))
    assert scenario.observations == tmp_path / "states.npy"


def test_overrides_are_validated() -> None:
    s = Scenario.model_validate(base())
    assert with_overrides(s, robots=7, label=None).robots == 7
    with pytest.raises(ScenarioError, match="robots"):
        with_overrides(s, robots=-1)


def test_an_observation_override_stays_relative_to_the_caller(tmp_path: Path) -> None:
    path = write(tmp_path, base() | {"observations": "in_file.npy"})
    scenario = load_scenario(path, {"observations": "given/on_cli.npy"})
    assert scenario.observations == Path("given/on_cli.npy")
