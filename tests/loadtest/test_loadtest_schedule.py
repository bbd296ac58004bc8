from __future__ import annotations

from typing import Any

import numpy as np

from loadtest.scenario import Scenario
from loadtest.schedule import build_plan


def scenario(**kw: Any) -> Scenario:
    data: dict[str, Any] = {
        "name": "t",
        "robots": 8,
        "control_hz": 50,
        "task_mix": {"a": 1, "b": 3},
        "deadline_ms": 20,
        "duration_s": 4,
        "ramp_s": 1,
        "sla": {"quantile_within_budget": 0.99, "budget_ms": 20},
        "seed": 3,
    }
    return Scenario.model_validate(data | kw)


def test_each_robot_sends_on_its_fixed_grid() -> None:
    s = scenario()
    plan = build_plan(s, 64)
    assert np.all(np.diff(plan.scheduled_s) >= 0), "plan must be time-sorted"
    assert plan.scheduled_s.min() >= 0 and plan.scheduled_s.max() < s.duration_s
    for r in range(s.robots):
        mine = plan.robot == r
        times = plan.scheduled_s[mine]
        steps = plan.step[mine]
        assert np.array_equal(steps, np.arange(steps.size)), "steps in order, none missing"
        np.testing.assert_allclose(times, plan.start_s[r] + steps * s.period_s, rtol=0, atol=1e-9)
        # the grid runs to the end of the run: the next tick would be past duration_s
        assert times[-1] + s.period_s >= s.duration_s


def test_ramp_and_phase_jitter_bounds() -> None:
    s = scenario(robots=20, ramp_s=2)
    plan = build_plan(s, 64)
    ramp_offset = s.ramp_s * np.arange(s.robots) / s.robots
    phase = plan.start_s - ramp_offset
    assert np.all(phase >= 0) and np.all(phase < s.period_s)
    assert len(set(np.round(phase, 9))) > s.robots // 2, "phases are jittered, not aligned"
    for r in range(s.robots):
        first = plan.scheduled_s[plan.robot == r].min()
        assert ramp_offset[r] <= first < ramp_offset[r] + s.period_s


def test_no_ramp_means_everyone_starts_within_one_period() -> None:
    s = scenario(ramp_s=0)
    plan = build_plan(s, 64)
    assert plan.start_s.max() < s.period_s


def test_same_seed_same_plan_other_seed_other_plan() -> None:
    a, b = build_plan(scenario(), 64), build_plan(scenario(), 64)
    c = build_plan(scenario(seed=4), 64)
    assert np.array_equal(a.scheduled_s, b.scheduled_s) and np.array_equal(a.task, b.task)
    assert not np.array_equal(a.scheduled_s, c.scheduled_s)


def test_task_mix_and_hidden_share_follow_the_scenario() -> None:
    # one-step episodes: every request is an independent draw
    s = scenario(robots=50, episode_steps=1, hidden_task_share=0.25, duration_s=10, ramp_s=0)
    plan = build_plan(s, 64)
    share_b = float(np.mean(plan.task == 1))
    assert abs(share_b - 0.75) < 0.02
    assert abs(float(plan.hidden.mean()) - 0.25) < 0.02


def test_task_and_hidden_are_constant_within_an_episode() -> None:
    s = scenario(episode_steps=10, hidden_task_share=0.5)
    plan = build_plan(s, 64)
    for r in range(s.robots):
        for e in np.unique(plan.episode[plan.robot == r]):
            sel = (plan.robot == r) & (plan.episode == e)
            assert np.unique(plan.task[sel]).size == 1
            assert np.unique(plan.hidden[sel]).size == 1
    assert np.array_equal(plan.episode, plan.step // 10)


def test_observation_rows_stay_inside_the_pool() -> None:
    plan = build_plan(scenario(), 7)
    assert plan.obs.min() >= 0 and plan.obs.max() < 7
