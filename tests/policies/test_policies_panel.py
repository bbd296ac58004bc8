from __future__ import annotations

import numpy as np
import pytest
from metaworld.env_dict import ALL_V3_ENVIRONMENTS, MT10_V3

from policies.panel import (
    OBS_DIM,
    PANELS,
    Panel,
    configurations,
    demo_configuration,
    eval_configurations,
    get_panel,
    make_env,
    task_id,
)


def test_ci_panel_is_the_three_documented_tasks() -> None:
    assert get_panel("ci").tasks == ("reach-v3", "pick-place-v3", "peg-insert-side-v3")


def test_mt10_is_metaworlds_mt10_in_order() -> None:
    assert get_panel("mt10").tasks == tuple(MT10_V3)
    assert len(get_panel("mt10").tasks) == 10


def test_panel30_has_30_distinct_mt50_tasks() -> None:
    tasks = get_panel("panel30").tasks
    assert len(tasks) == 30
    assert len(set(tasks)) == 30
    assert set(tasks) <= set(ALL_V3_ENVIRONMENTS)


def test_seeds_are_fixed_and_evaluation_is_held_out() -> None:
    for panel in PANELS.values():
        assert panel.demo_config_seeds == tuple(range(10))
        assert panel.eval_config_seed == 1000
    with pytest.raises(ValueError, match="never be used"):
        Panel("bad", ("reach-v3",), demo_config_seeds=(0, 1000), eval_config_seed=1000)


def test_unknown_panel_and_task_are_rejected() -> None:
    with pytest.raises(ValueError, match="known"):
        get_panel("nope")
    with pytest.raises(ValueError, match="unknown tasks"):
        Panel("bad", ("no-such-task-v3",))


def test_task_id_replaces_dashes() -> None:
    assert task_id("peg-insert-side-v3") == "peg_insert_side_v3"


def test_eval_configurations_never_appear_in_demo_configurations() -> None:
    panel = get_panel("ci")
    held_out = {cfg.data for cfg in eval_configurations(panel, "reach-v3", 30)}
    # The first 200 demo attempts (four MT1 seeds) are what a default build uses.
    demo = {demo_configuration(panel, "reach-v3", i).data for i in range(200)}
    assert len(held_out) == 30
    assert not held_out & demo


def test_configurations_are_deterministic() -> None:
    first = configurations("reach-v3", 1000)[0].data
    configurations.cache_clear()
    assert configurations("reach-v3", 1000)[0].data == first


def test_env_gives_the_documented_observation() -> None:
    env = make_env("reach-v3", eval_configurations(get_panel("ci"), "reach-v3", 1)[0])
    obs, _ = env.reset()
    assert obs.shape == (OBS_DIM,)
    assert np.any(obs[36:39] != 0)  # goal visible: fully observable, as the policies assume
