"""Route choice: best score, ties and low confidence to the generalist, stickiness, budget."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from router_service.contract import HOLD_ROUTE, Contract, load_contract
from router_service.scoring import decide, score_candidates
from tests.conftest import write_standin_artifacts
from tests.router_fixtures import calibration_table, contract_dict

TASKS = ["reach-v3", "pick-place-v3", "peg-insert-side-v3"]
SPEC = "specialist_reach_v3"


def make_contract(tmp: Path, specialist: float, generalist: float) -> Contract:
    artifacts = write_standin_artifacts(tmp / "a")
    table = tmp / "t.json"
    table.write_text(json.dumps(calibration_table(TASKS, specialist, generalist)))
    path = tmp / "c.yaml"
    path.write_text(yaml.safe_dump(contract_dict(artifacts, table)))
    return load_contract(path)


@pytest.fixture(scope="module")
def strong_specialist(tmp_path_factory: pytest.TempPathFactory) -> Contract:
    return make_contract(tmp_path_factory.mktemp("s"), specialist=0.95, generalist=0.6)


@pytest.fixture(scope="module")
def equal(tmp_path_factory: pytest.TempPathFactory) -> Contract:
    return make_contract(tmp_path_factory.mktemp("e"), specialist=0.9, generalist=0.9)


def choose(contract: Contract, budget: float = 20.0, confidence: float = 1.0,
           sticky: str | None = None, latency: dict[str, float] | None = None,
           usable: dict[str, bool] | None = None) -> tuple[str, str]:
    cands = score_candidates(contract, "reach-v3", budget, latency or {}, usable or {})
    decision = decide(contract, cands, confidence, sticky)
    return decision.route, decision.reason


def test_only_covering_policies_are_candidates(strong_specialist: Contract) -> None:
    cands = score_candidates(strong_specialist, "reach-v3", 20.0, {}, {})
    assert {c.route for c in cands} == {"generalist", SPEC}


def test_score_formula(strong_specialist: Contract) -> None:
    cands = {c.route: c for c in score_candidates(strong_specialist, "reach-v3", 20.0,
                                                  {SPEC: 4.0, "generalist": 2.0}, {})}
    # 0.95 - 0.001*4 - 1.0*0.01 ; 0.6 - 0.001*2 - 0
    assert cands[SPEC].score == pytest.approx(0.936)
    assert cands["generalist"].score == pytest.approx(0.598)


def test_better_specialist_wins(strong_specialist: Contract) -> None:
    assert choose(strong_specialist) == (SPEC, "best_score")


def test_tie_goes_to_generalist(equal: Contract) -> None:
    # specialist 0.9 - 0.003 - 0.01 = 0.887 vs generalist 0.9 - 0.015 = 0.885: the specialist
    # is ahead by less than epsilon (0.01).
    route, reason = choose(equal, latency={"generalist": 15.0, SPEC: 3.0})
    assert (route, reason) == ("generalist", "tie_to_generalist")


def test_low_confidence_goes_to_generalist(strong_specialist: Contract) -> None:
    assert choose(strong_specialist, confidence=0.3) == ("generalist", "low_task_confidence")


def test_sticky_route_is_kept(strong_specialist: Contract) -> None:
    assert choose(strong_specialist, sticky="generalist") == ("generalist", "sticky")


def test_sticky_route_not_kept_when_unusable(strong_specialist: Contract) -> None:
    route, _ = choose(strong_specialist, sticky=SPEC, usable={SPEC: False})
    assert route == "generalist"


def test_route_that_cannot_fit_budget_is_skipped(strong_specialist: Contract) -> None:
    route, _ = choose(strong_specialist, budget=5.0, latency={SPEC: 9.0, "generalist": 2.0})
    assert route == "generalist"


def test_nothing_fits_tries_generalist_then_hold(strong_specialist: Contract) -> None:
    slow = {SPEC: 50.0, "generalist": 50.0}
    assert choose(strong_specialist, budget=5.0, latency=slow) == (
        "generalist", "no_route_fits_budget")
    down = {SPEC: False, "generalist": False}
    assert choose(strong_specialist, usable=down) == (HOLD_ROUTE, "no_usable_route")


def test_inferred_task_reads_the_generalists_inferred_row(tmp_path: Path) -> None:
    artifacts = write_standin_artifacts(tmp_path / "a")
    table = calibration_table(TASKS, specialist=0.9, generalist=0.9)
    table["rows"].append({"task": "reach-v3", "policy": "generalist+classifier", "episodes": 30,
                          "successes": 12, "rate": 0.4, "ci95": [0.25, 0.58]})
    (tmp_path / "t.json").write_text(json.dumps(table))
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(contract_dict(artifacts, tmp_path / "t.json")))
    contract = load_contract(path)
    declared = {c.route: c.success for c in score_candidates(contract, "reach-v3", 20.0, {}, {})}
    inferred = {c.route: c.success
                for c in score_candidates(contract, "reach-v3", 20.0, {}, {}, inferred=True)}
    assert declared["generalist"] == 0.9 and inferred["generalist"] == 0.4
    assert inferred[SPEC] == declared[SPEC] == 0.9
    # no inferred row for this task: the declared-task row stands
    assert contract.calibration_row("pick-place-v3", "generalist", inferred=True).rate == 0.9
