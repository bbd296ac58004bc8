"""Counterfactual failure attribution on constructed episode pairs: a failed episode against the
same configuration under the reference arm (oracle specialist route, no perturbation, fresh
calibration, on time). One label each; a cause is named only when it is the one recorded
difference, otherwise `unattributed`."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from eval_testkit import ROUTE_TASKS, SPECIALIST, episode, reference_rows

from evaluation.arms import Perturbation
from evaluation.attribution import (
    CONTROLLER_MISMATCH,
    DEADLINE_MISS,
    EVALUATION_ERROR,
    MODEL_ERROR,
    ROUTER_ERROR,
    STALE_CALIBRATION,
    AttributionContext,
)
from evaluation.contracts import inverted_rows
from evaluation.counterfactual import (
    COUNTERFACTUAL_LABELS,
    COUNTERFACTUAL_RULES,
    UNATTRIBUTED,
    counterfactual,
)
from evaluation.records import EpisodeResult
from evaluation.runner import saturated

REFERENCE = {(r.task, r.policy): r for r in reference_rows()}
ROUTER = AttributionContext(route_tasks=ROUTE_TASKS, arm_table=REFERENCE,
                            reference_table=REFERENCE)
ORACLE = AttributionContext(route_tasks=ROUTE_TASKS, arm_table=REFERENCE,
                            reference_table=REFERENCE, family="specialist")
GENERALIST_ONLY = AttributionContext(route_tasks={"generalist": ROUTE_TASKS["generalist"]},
                                     arm_table=REFERENCE, reference_table=REFERENCE,
                                     family="generalist")
STALE = AttributionContext(route_tasks=ROUTE_TASKS,
                           arm_table={(r.task, r.policy): r for r in inverted_rows(
                               reference_rows())},
                           reference_table=REFERENCE,
                           perturbation=Perturbation(stale_calibration=True))


def ref(success: bool = True, **kwargs: Any) -> EpisodeResult:
    return episode(arm="specialist", success=success, index=3, **kwargs)


def failed(**kwargs: Any) -> EpisodeResult:
    return episode(arm="router", success=False, index=3, **kwargs)


def cf(ep: EpisodeResult, reference: EpisodeResult | None, ctx: AttributionContext = ROUTER
       ) -> tuple[str, str | None]:
    found = counterfactual(ep, ctx, reference, ORACLE)
    assert found is not None and found.method == "counterfactual"
    return found.label, found.subcategory


def test_success_gets_no_label() -> None:
    assert counterfactual(episode(success=True, index=3), ROUTER, ref()) is None


def test_rules_list_every_label() -> None:
    assert {name for name, _ in COUNTERFACTUAL_RULES} == set(COUNTERFACTUAL_LABELS)


def test_no_reference_is_unattributed_never_guessed() -> None:
    # Symptoms that the rules would call a router error: no reference, no claim.
    found = counterfactual(failed(wrong_task_steps=50), ROUTER, None)
    assert found is not None and found.label == UNATTRIBUTED
    assert "no reference episode" in found.summary


def test_reference_of_another_configuration_is_refused() -> None:
    other = episode(arm="specialist", success=True, index=4)
    with pytest.raises(ValueError, match="not the configuration"):
        counterfactual(failed(), ROUTER, other)


def test_fails_in_the_reference_too_is_model_error_whatever_the_symptoms() -> None:
    # Wrong task and late steps, but the oracle fails on this configuration as well.
    found = counterfactual(failed(wrong_task_steps=50, late_steps=30), ROUTER, ref(False))
    assert found is not None and found.label == MODEL_ERROR
    assert found.subcategory == "unspecified"
    assert found.evidence["reference_episode"] == "specialist.reach-v3.003"


def test_model_error_control_subcategory_needs_saturation_evidence() -> None:
    assert cf(failed(saturated_steps=50), ref(False)) == (MODEL_ERROR, "control")
    assert cf(failed(saturated_steps=49), ref(False)) == (MODEL_ERROR, "unspecified")
    assert cf(failed(), ref(False)) == (MODEL_ERROR, "unspecified")  # no record: no evidence


def test_invalid_episode_is_evaluation_error_not_model_error() -> None:
    assert cf(failed(eval_error="step 2: RuntimeError: mujoco"), ref(False)) == (
        EVALUATION_ERROR, None)
    assert cf(failed(steps=0), None) == (EVALUATION_ERROR, None)


@pytest.mark.parametrize("reference", [
    ref(False, eval_error="step 1: ValueError"),
    ref(True, late_steps=10),  # 10% late: not an on-time reference
    ref(False, fallback_steps=20),
])
def test_unclean_reference_is_unattributed(reference: EpisodeResult) -> None:
    assert cf(failed(), reference)[0] == UNATTRIBUTED


def test_only_the_route_differs_is_router_error() -> None:
    # The router chose the generalist; the oracle specialist solved this configuration.
    found = counterfactual(failed(route="generalist"), ROUTER, ref())
    assert found is not None and found.label == ROUTER_ERROR
    assert found.evidence["factors"] == [ROUTER_ERROR]
    assert (found.evidence["route"], found.evidence["reference_route"]) == (
        "generalist", SPECIALIST["reach-v3"])


def test_wrong_task_with_the_same_route_is_router_error() -> None:
    found = counterfactual(failed(wrong_task_steps=10), ROUTER, ref())
    assert found is not None and found.label == ROUTER_ERROR
    assert "acted on pick-place-v3 on 10% of steps" in found.summary


def test_only_a_perturbation_differs_is_controller_mismatch() -> None:
    ctx = AttributionContext(route_tasks=ROUTE_TASKS, arm_table=REFERENCE,
                             reference_table=REFERENCE,
                             perturbation=Perturbation(obs_noise_std=0.01))
    assert cf(failed(), ref(), ctx) == (CONTROLLER_MISMATCH, None)


def test_only_late_actions_differ_is_deadline_miss() -> None:
    assert cf(failed(late_steps=10), ref()) == (DEADLINE_MISS, None)
    assert cf(failed(late_steps=9), ref()) == (UNATTRIBUTED, None)  # below 10%: no difference


def test_fallback_to_another_route_is_the_deadline_not_the_router() -> None:
    # A slow specialist: 40 steps served by the generalist as a fallback. The router's own
    # choice (non-fallback steps) is still the specialist.
    ep = failed(fallback_steps=40, fallback_route="generalist")
    assert cf(ep, ref()) == (DEADLINE_MISS, None)


def test_stale_table_and_another_route_is_stale_calibration() -> None:
    assert cf(failed(route="generalist"), ref(), STALE) == (STALE_CALIBRATION, None)


def test_stale_table_with_the_reference_route_is_no_difference() -> None:
    # The table acts only through the route: same route, nothing else differs.
    assert cf(failed(), ref(), STALE) == (UNATTRIBUTED, None)


def test_table_outside_the_reference_interval_counts_as_stale_without_the_flag() -> None:
    ctx = AttributionContext(route_tasks=ROUTE_TASKS, reference_table=REFERENCE,
                             arm_table=STALE.arm_table)
    assert cf(failed(route="generalist"), ref(), ctx) == (STALE_CALIBRATION, None)


def test_two_differences_are_confounded_and_unattributed() -> None:
    found = counterfactual(failed(route="generalist", late_steps=30), ROUTER, ref())
    assert found is not None and found.label == UNATTRIBUTED
    assert found.evidence["factors"] == [ROUTER_ERROR, DEADLINE_MISS]
    assert "confounded" in found.summary


def test_nothing_differs_is_unattributed() -> None:
    found = counterfactual(failed(), ROUTER, ref())
    assert found is not None and found.label == UNATTRIBUTED
    assert found.evidence["factors"] == []


def test_fixed_policy_arm_failing_where_the_oracle_succeeds_is_its_model_error() -> None:
    # The generalist arm cannot choose a route: a different route is a different policy.
    ep = episode(arm="generalist", route="generalist", success=False, index=3)
    assert cf(ep, ref(), GENERALIST_ONLY) == (MODEL_ERROR, "unspecified")


def test_reference_arm_failure_is_its_own_reference() -> None:
    ep = ref(False)
    assert cf(ep, ep, ORACLE) == (MODEL_ERROR, "unspecified")


def test_saturated_reads_only_the_position_part() -> None:
    assert saturated(np.array([0.995, 0.0, 0.0, 0.0]))
    assert saturated(np.array([0.0, 0.0, -1.0, 0.0]))
    assert not saturated(np.array([0.98, -0.5, 0.2, 1.0]))  # gripper fully closed: normal


NOISY = AttributionContext(route_tasks=ROUTE_TASKS, arm_table=REFERENCE,
                           reference_table=REFERENCE,
                           perturbation=Perturbation(obs_noise_std=0.01))


def plain_router(success: bool, **kwargs: Any) -> EpisodeResult:
    """The unperturbed router arm's episode of the same configuration."""
    return episode(arm="router", success=success, index=3, **kwargs)


def noisy_failure() -> EpisodeResult:
    # The noisy arm took the generalist, like the router arm: route and noise both differ
    # from the oracle reference.
    return episode(arm="obs_noise", success=False, index=3, route="generalist")


def test_route_and_perturbation_confounded_without_the_unperturbed_arm() -> None:
    found = counterfactual(noisy_failure(), NOISY, ref(), ORACLE)
    assert found is not None and found.label == UNATTRIBUTED
    assert found.evidence["factors"] == [ROUTER_ERROR, CONTROLLER_MISMATCH]


def test_unperturbed_success_on_the_same_route_blames_the_perturbation() -> None:
    found = counterfactual(noisy_failure(), NOISY, ref(), ORACLE,
                           plain_router(True, route="generalist"))
    assert found is not None and found.label == CONTROLLER_MISMATCH
    assert found.evidence["unperturbed_episode"] == "router.reach-v3.003"


def test_unperturbed_failure_on_the_same_route_blames_the_route() -> None:
    found = counterfactual(noisy_failure(), NOISY, ref(), ORACLE,
                           plain_router(False, route="generalist"))
    assert found is not None and found.label == ROUTER_ERROR
    assert "failed too" in found.summary


@pytest.mark.parametrize("unperturbed", [
    plain_router(True),  # another route (the specialist): not the same comparison
    plain_router(True, route="generalist", late_steps=20),  # late: not clean
    plain_router(True, route="generalist", eval_error="step 0: boom"),
])
def test_unusable_unperturbed_episode_leaves_it_confounded(unperturbed: EpisodeResult) -> None:
    found = counterfactual(noisy_failure(), NOISY, ref(), ORACLE, unperturbed)
    assert found is not None and found.label == UNATTRIBUTED


def test_unperturbed_episode_does_not_split_other_confounds() -> None:
    # Route and late steps, no perturbation: the router arm cannot separate those.
    ep = failed(route="generalist", late_steps=30)
    found = counterfactual(ep, ROUTER, ref(), ORACLE, plain_router(True, route="generalist"))
    assert found is not None and found.label == UNATTRIBUTED
