"""Derived contracts must pass the router's own validation, and serve what the arm says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from eval_testkit import SPECIALIST, TASKS, reference_rows, write_table

from evaluation.arms import ArmSettings, build_arm, build_arms
from evaluation.contracts import (
    NEVER_WINS_OPS_COST,
    derive_contract,
    load_base,
    policy_tasks,
    write_closed_loop,
)
from router_service.contract import load_contract
from router_service.scoring import decide, score_candidates

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def base(tmp_path: Path) -> dict[str, object]:
    """deploy/contracts/ci.yaml, pointed at a constructed table and stand-in classifier files
    (the router validates that they exist; nothing here loads them)."""
    raw = yaml.safe_load((REPO / "deploy" / "contracts" / "ci.yaml").read_text())
    raw["calibration"]["table"] = str(write_table(tmp_path / "offline.json", reference_rows()))
    for key in ("model", "norm_stats"):
        stub = tmp_path / f"{key}.bin"
        stub.write_bytes(b"")
        raw["task_classifier"][key] = str(stub)
    path = tmp_path / "ci.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_base(path)


ARMS = build_arms(["generalist", "specialist", "router", "stale_calibration"], ArmSettings(),
                  "specialist_reach_v3")


@pytest.mark.parametrize("arm", ARMS, ids=[a.name for a in ARMS])
def test_derived_contract_is_valid_for_the_router(base: dict[str, object], tmp_path: Path,
                                                  arm: object) -> None:
    path = derive_contract(base, arm, tmp_path / "contracts")  # type: ignore[arg-type]
    contract = load_contract(path)  # raises ContractError on anything the router refuses
    assert contract.version.endswith(arm.name)  # type: ignore[attr-defined]


def test_generalist_arm_serves_only_the_generalist(base: dict[str, object],
                                                   tmp_path: Path) -> None:
    path = derive_contract(base, build_arm("generalist", ArmSettings(), ""), tmp_path)
    assert policy_tasks(load_base(path)) == {"generalist": TASKS}


def test_specialist_arm_always_scores_the_specialist(base: dict[str, object],
                                                     tmp_path: Path) -> None:
    path = derive_contract(base, build_arm("specialist", ArmSettings(), ""), tmp_path)
    contract = load_contract(path)
    assert contract.generalist.ops_cost == NEVER_WINS_OPS_COST
    assert contract.spec.routing.fallback_order == ("specialist", "hold")
    for task in TASKS:
        # Even with the generalist far faster, the specialist wins the score.
        candidates = score_candidates(contract, task, 20.0,
                                      {"generalist": 0.5, SPECIALIST[task]: 15.0}, {})
        assert decide(contract, candidates, 1.0, None).route == SPECIALIST[task]


def test_stale_arm_inverts_the_table(base: dict[str, object], tmp_path: Path) -> None:
    path = derive_contract(base, build_arm("stale_calibration", ArmSettings(), ""), tmp_path)
    contract = load_contract(path)
    rows = {(r.task, r.policy): r for r in contract.calibration.rows}
    for ref in reference_rows():
        row = rows[ref.task, ref.policy]
        assert row.successes == ref.episodes - ref.successes
        assert row.rate == pytest.approx(1 - ref.rate, abs=1e-4)
    assert contract.calibration.source == "stale_on_purpose"


def test_closed_loop_table_and_contract(base: dict[str, object], tmp_path: Path) -> None:
    table, path = write_closed_loop(base, "ci", reference_rows(), tmp_path, "abc123")
    data = json.loads(table.read_text())
    assert data["source"] == "closed_loop" and data["panel"] == "ci"
    assert set(data["rows"][0]) == {"task", "policy", "episodes", "successes", "rate", "ci95"}
    contract = load_contract(path)
    assert contract.calibration.source == "closed_loop"
    assert contract.version == "ci-1-closed-loop-abc123"


def test_unknown_or_repeated_arm_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown arm"):
        build_arm("nonsense", ArmSettings(), "")
    with pytest.raises(ValueError, match="twice"):
        build_arms(["router", "router"], ArmSettings(), "")


def test_large_generalist_arms_swap_the_generalist_and_take_measured_latency(
    base: dict[str, object], tmp_path: Path
) -> None:
    """The transformer plays the contract's one generalist; every latency prior is the p90
    measured through Triton, not the hand-set number of the base contract."""
    served = {"generalist_large": 3.25, "specialist_reach_v3": 1.5, "generalist": 0.9}
    for name in ("generalist_large", "router_large"):
        path = derive_contract(base, build_arm(name, ArmSettings(), ""), tmp_path, served)
        contract = load_contract(path)
        assert contract.generalist.name == "generalist_large"
        assert contract.generalist.expected_latency_ms == 3.25
        assert "generalist" not in {p.name for p in contract.spec.policies}
    router = load_contract(derive_contract(base, build_arm("router_large", ArmSettings(), ""),
                                           tmp_path, served))
    latencies = {p.name: p.expected_latency_ms for p in router.spec.policies}
    assert latencies["specialist_reach_v3"] == 1.5
    # A route with no measurement keeps the base contract's prior.
    assert latencies["specialist_pick_place_v3"] == next(
        p["expected_latency_ms"] for p in base["policies"]  # type: ignore[attr-defined]
        if p["name"] == "specialist_pick_place_v3")
