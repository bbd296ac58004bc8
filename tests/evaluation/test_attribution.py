"""Failure attribution on constructed episodes: one label each, decided by the written rules in
their order."""

from __future__ import annotations

import pytest
from eval_testkit import ROUTE_TASKS, SPECIALIST, episode, reference_rows

from evaluation.arms import Perturbation
from evaluation.attribution import (
    CONTROLLER_MISMATCH,
    DEADLINE_MISS,
    EVALUATION_ERROR,
    LABELS,
    MODEL_ERROR,
    ROUTER_ERROR,
    RULES,
    STALE_CALIBRATION,
    AttributionContext,
    attribute,
)
from evaluation.contracts import inverted_rows

REFERENCE = {(r.task, r.policy): r for r in reference_rows()}
PLAIN = AttributionContext(route_tasks=ROUTE_TASKS, reference_table=REFERENCE,
                           arm_table=REFERENCE)


def label(ep: object, ctx: AttributionContext = PLAIN) -> str:
    found = attribute(ep, ctx)  # type: ignore[arg-type]
    assert found is not None
    return found.label


def test_success_gets_no_label() -> None:
    assert attribute(episode(success=True), PLAIN) is None


def test_rules_cover_every_label_in_order() -> None:
    assert tuple(name for name, _ in RULES) == LABELS


def test_env_exception_is_evaluation_error_even_with_other_symptoms() -> None:
    ep = episode(eval_error="step 7: ValueError: mujoco", wrong_task_steps=50, late_steps=50)
    found = attribute(ep, PLAIN)
    assert found is not None and found.label == EVALUATION_ERROR
    assert "mujoco" in found.summary


def test_no_steps_is_evaluation_error() -> None:
    assert label(episode(steps=0)) == EVALUATION_ERROR


def test_wrong_task_is_router_error_with_evidence() -> None:
    found = attribute(episode(wrong_task_steps=30, late_steps=50), PLAIN)
    assert found is not None and found.label == ROUTER_ERROR  # before deadline miss
    assert found.evidence["wrong_task_share"] == pytest.approx(0.3)
    assert found.evidence["wrong_tasks"] == ["pick-place-v3"]  # the testkit's default


def test_wrong_route_is_router_error() -> None:
    # Right task, but served by another task's specialist.
    ep = episode(task="reach-v3", route=SPECIALIST["peg-insert-side-v3"])
    found = attribute(ep, PLAIN)
    assert found is not None and found.label == ROUTER_ERROR
    assert found.evidence["wrong_route_share"] == 1.0


def test_below_threshold_wrong_task_is_not_router_error() -> None:
    assert label(episode(wrong_task_steps=9)) == MODEL_ERROR  # 9% < 10%


def test_late_steps_are_deadline_miss() -> None:
    found = attribute(episode(late_steps=10), PLAIN)
    assert found is not None and found.label == DEADLINE_MISS
    assert found.evidence["late_share"] == pytest.approx(0.1)


def test_no_reply_steps_count_as_deadline_miss() -> None:
    found = attribute(episode(no_reply_steps=20), PLAIN)
    assert found is not None and found.label == DEADLINE_MISS
    assert found.evidence["statuses"] == {"ok": 80, "shed": 20}


def test_fallback_steps_are_deadline_miss() -> None:
    assert label(episode(fallback_steps=15)) == DEADLINE_MISS


def test_router_stale_flag_from_feedback_is_stale_calibration() -> None:
    ep = episode(feedback={"status": 202, "calibration_stale": True, "route": "generalist"})
    assert label(ep) == STALE_CALIBRATION


def test_wrong_table_is_stale_calibration_with_rates() -> None:
    stale = {(r.task, r.policy): r for r in inverted_rows(reference_rows())}
    ctx = AttributionContext(route_tasks=ROUTE_TASKS, arm_table=stale,
                             reference_table=REFERENCE)
    found = attribute(episode(task="peg-insert-side-v3"), ctx)
    assert found is not None and found.label == STALE_CALIBRATION
    assert found.evidence["table_rate"] == pytest.approx(0.1)
    assert found.evidence["reference_rate"] == pytest.approx(0.9)


def test_deadline_miss_beats_stale_calibration() -> None:
    ep = episode(late_steps=40, feedback={"calibration_stale": True})
    assert label(ep) == DEADLINE_MISS


@pytest.mark.parametrize("perturbation", [Perturbation(action_delay_steps=3),
                                          Perturbation(obs_delay_steps=2),
                                          Perturbation(obs_noise_std=0.01)])
def test_controller_perturbation_is_controller_mismatch(perturbation: Perturbation) -> None:
    ctx = AttributionContext(route_tasks=ROUTE_TASKS, perturbation=perturbation,
                             arm_table=REFERENCE, reference_table=REFERENCE)
    found = attribute(episode(), ctx)
    assert found is not None and found.label == CONTROLLER_MISMATCH
    assert found.evidence["perturbation"] == perturbation.describe()


def test_slow_route_is_not_a_controller_perturbation() -> None:
    ctx = AttributionContext(route_tasks=ROUTE_TASKS, arm_table=REFERENCE,
                             reference_table=REFERENCE,
                             perturbation=Perturbation(slow_route="specialist_reach_v3",
                                                       slow_delay_ms=60, slow_prob=0.5))
    assert label(episode(), ctx) == MODEL_ERROR


def test_clean_failure_is_model_error() -> None:
    found = attribute(episode(late_steps=5, fallback_steps=5, wrong_task_steps=5), PLAIN)
    assert found is not None and found.label == MODEL_ERROR
    assert found.evidence["main_route"] == SPECIALIST["reach-v3"]


def test_hold_is_not_a_wrong_route() -> None:
    # A held step is a fallback (deadline rule), never a misroute.
    found = attribute(episode(route="hold", fallback_steps=100), PLAIN)
    assert found is not None and found.label == DEADLINE_MISS


def test_controller_perturbation_beats_the_routers_stale_flag() -> None:
    # The router flags staleness from outcomes: failures the noise caused must not be blamed
    # on the table.
    ctx = AttributionContext(route_tasks=ROUTE_TASKS, arm_table=REFERENCE,
                             reference_table=REFERENCE,
                             perturbation=Perturbation(obs_noise_std=0.01))
    ep = episode(feedback={"status": 202, "calibration_stale": True})
    assert label(ep, ctx) == CONTROLLER_MISMATCH
