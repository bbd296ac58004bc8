"""The run's episode order (every arm's episodes in interleaved, rotated blocks) and its
configurations (never the calibration table's)."""

from __future__ import annotations

import pickle
from collections import Counter

import numpy as np
import pytest
from metaworld.types import Task

from evaluation.arms import ArmSettings, build_arms
from evaluation.plan import (
    CLOSED_LOOP_CONFIG_SEED,
    RunPlan,
    calibration_configurations,
    check_disjoint,
    check_seeds,
    config_identity,
    configuration_ids,
    evaluation_configurations,
    schedule,
)
from policies.panel import PANELS, get_panel

ARMS = build_arms(["generalist", "specialist", "router"], ArmSettings(), "specialist_reach_v3")


@pytest.mark.parametrize(("episodes", "rounds"), [(20, 4), (5, 4), (1, 4), (7, 3), (3, 1)])
def test_every_episode_once(episodes: int, rounds: int) -> None:
    blocks = schedule(ARMS, episodes, rounds)
    seen = Counter((arm.name, i) for arm, indices in blocks for i in indices)
    assert set(seen.values()) == {1}
    assert len(seen) == len(ARMS) * episodes


def test_arms_rotate_between_rounds() -> None:
    blocks = schedule(ARMS, 20, 4)
    firsts = [blocks[r * len(ARMS)][0].name for r in range(4)]
    assert firsts == ["generalist", "specialist", "router", "generalist"]
    assert [list(indices) for arm, indices in blocks if arm.name == "router"] == [
        list(range(0, 5)), list(range(5, 10)), list(range(10, 15)), list(range(15, 20))]


def config(task: str, *vec: float) -> Task:
    """A configuration as MT1 serialises it (only rand_vec identifies it)."""
    return Task(env_name=task, data=pickle.dumps({"rand_vec": np.array(vec),
                                                  "partially_observable": False}))


def test_identity_is_the_placement_not_the_object() -> None:
    a = config("reach-v3", 0.1, 0.6, 0.02)
    same = config("reach-v3", 0.1, 0.6, 0.02)
    other = config("reach-v3", 0.1, 0.6, 0.03)
    assert config_identity(a) == config_identity(same)
    assert config_identity(a) != config_identity(other)
    assert config_identity(a) != config_identity(config("push-v3", 0.1, 0.6, 0.02))
    assert config_identity(a).startswith("reach-v3:")


def test_disjoint_configurations_pass() -> None:
    evaluation = {"reach-v3": configuration_ids([config("reach-v3", 0.1, 0.1, 0.1)])}
    calibration = {"reach-v3": configuration_ids([config("reach-v3", 0.2, 0.2, 0.2)])}
    check_disjoint(evaluation, calibration)  # no exception


def test_overlapping_configurations_raise_and_name_them() -> None:
    shared = config("reach-v3", 0.1, 0.1, 0.1)
    evaluation = {"reach-v3": configuration_ids([shared, config("reach-v3", 0.3, 0.3, 0.3)]),
                  "push-v3": configuration_ids([config("push-v3", 0.1, 0.1, 0.1)])}
    calibration = {"reach-v3": configuration_ids([config("reach-v3", 0.2, 0.2, 0.2), shared]),
                   "push-v3": configuration_ids([config("push-v3", 0.5, 0.5, 0.5)])}
    with pytest.raises(ValueError, match="overlap: reach-v3: 1") as info:
        check_disjoint(evaluation, calibration)
    assert config_identity(shared) in str(info.value) and "push-v3" not in str(info.value)


def test_default_seed_is_neither_a_calibration_nor_a_demo_seed() -> None:
    for panel in PANELS.values():
        check_seeds(panel, CLOSED_LOOP_CONFIG_SEED)  # no exception
        assert panel.eval_config_seed != CLOSED_LOOP_CONFIG_SEED
    plan_default = RunPlan.__dataclass_fields__["config_seed"].default
    assert plan_default == CLOSED_LOOP_CONFIG_SEED


def test_calibration_or_demo_seed_is_refused() -> None:
    panel = get_panel("ci")
    with pytest.raises(ValueError, match="calibration table"):
        check_seeds(panel, panel.eval_config_seed)
    with pytest.raises(ValueError, match="demonstration seed"):
        check_seeds(panel, panel.demo_config_seeds[0])
    with pytest.raises(ValueError, match="calibration table"):
        evaluation_configurations(panel, "reach-v3", 5, panel.eval_config_seed)


def test_real_evaluation_configurations_are_disjoint_from_calibration() -> None:
    # Two MT1 benchmarks (~1 s each): the default evaluation seed's 50 configurations of one
    # task against all 50 of the calibration seed's.
    panel = get_panel("ci")
    task = panel.tasks[0]
    evaluation = configuration_ids(
        evaluation_configurations(panel, task, 50, CLOSED_LOOP_CONFIG_SEED))
    calibration = configuration_ids(calibration_configurations(panel, task))
    assert len(set(evaluation)) == len(set(calibration)) == 50
    check_disjoint({task: evaluation}, {task: calibration})
    # The check is not vacuous: the calibration configurations themselves overlap.
    with pytest.raises(ValueError, match="overlap"):
        check_disjoint({task: calibration[:5]}, {task: calibration})
