"""policies.robustness: each perturbation does what it claims; `none` is the offline matrix."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from policies.jsonio import read_json
from policies.offline_eval import CalibrationTable
from policies.panel import eval_configurations, make_env
from policies.perturb import (
    PERTURBATIONS,
    Controller,
    Perturbation,
    PerturbSettings,
    body_name,
    episode_seed,
    manipulated_body,
    ood_placement,
    scale_mass,
)
from policies.robustness import (
    Job,
    evaluate_task,
    load_panel,
    main,
    mark_expert_solved,
    pair_with_none,
    run_episodes,
)
from policies.robustness_report import (
    CSV_COLUMNS,
    ConfigSet,
    Family,
    RobustnessReport,
    RobustnessRow,
)

SETTINGS = PerturbSettings()


class RecordingEnv:
    """Stand-in env: the observation counts the steps; every applied action is recorded."""

    def __init__(self) -> None:
        self.applied: list[np.ndarray[Any, Any]] = []

    def reset(self) -> tuple[np.ndarray[Any, Any], dict[str, Any]]:
        return np.zeros(39), {}

    def step(self, action: np.ndarray[Any, Any]) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        self.applied.append(np.asarray(action).copy())
        obs = np.full(39, float(len(self.applied)))
        return obs, 0.0, False, len(self.applied) >= 3, {"success": False}


class EchoPolicy:
    """Acts with the first observation value, so an action names the step it was computed at."""

    def __init__(self) -> None:
        self.fed: list[np.ndarray[Any, Any]] = []

    def act(self, obs: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        self.fed.append(obs.copy())
        return np.tile(obs[:, :1], (1, 4)).astype(np.float32) + 1.0


def test_noise_changes_the_fed_observation_reproducibly() -> None:
    obs, idx = np.zeros((2, 39)), np.arange(2)
    seeds = [episode_seed("reach-v3", "generalist", "obs_noise", i) for i in range(2)]
    fed = Controller("obs_noise", SETTINGS, seeds).observe(obs, idx)
    assert fed.shape == obs.shape and not np.allclose(fed, obs)
    assert 0.03 < fed.std() < 0.07  # σ = 0.05 in raw units, on every value
    again = Controller("obs_noise", SETTINGS, seeds).observe(obs, idx)
    np.testing.assert_array_equal(fed, again)  # seeded per (task, policy, perturbation, index)
    assert not np.allclose(fed[0], fed[1])
    np.testing.assert_array_equal(Controller("none", SETTINGS, seeds).observe(obs, idx), obs)


def test_delay_applies_the_previous_action() -> None:
    env, policy = RecordingEnv(), EchoPolicy()
    run_episodes([env], policy, Controller("action_delay", SETTINGS, [0]), 3)  # type: ignore[arg-type]
    # Computed at steps 0, 1, 2 as 1, 2, 3; applied one step late, zeros first.
    assert [a[0] for a in env.applied] == [0.0, 1.0, 2.0]
    env, policy = RecordingEnv(), EchoPolicy()
    run_episodes([env], policy, Controller("none", SETTINGS, [0]), 3)  # type: ignore[arg-type]
    assert [a[0] for a in env.applied] == [1.0, 2.0, 3.0]


@pytest.mark.parametrize("task", ["reach-v3", "pick-place-v3", "peg-insert-side-v3"])
def test_ood_moves_the_placement_outside_the_training_box(ci_artifacts: Path, task: str) -> None:
    panel = load_panel(ci_artifacts)
    for config in eval_configurations(panel, task, 3):
        env = make_env(task, config)
        space = env._random_reset_space
        clean = env.reset()[0]
        placement = ood_placement(env, task, SETTINGS)
        obs = env.reset()[0]
        # reach places its goal (it touches no object); the others their object.
        where = env._target_pos if placement.part == "goal" else env.obj_init_pos
        seen = slice(36, 39) if placement.part == "goal" else slice(4, 7)
        moved = np.subtract(placement.placed, placement.original)[list(placement.axes)]
        shown = (obs[seen] - clean[seen])[[a % 3 for a in placement.axes]]
        np.testing.assert_allclose(shown, moved, atol=1e-3)  # the policy sees it moved
        for axis, beyond in zip(placement.axes, placement.beyond_m, strict=True):
            value = where[axis % 3]
            low, high = space.low[axis], space.high[axis]
            outside = max(low - value, value - high)
            assert outside >= SETTINGS.ood_margin - 1e-6
            assert outside == pytest.approx(beyond, abs=1e-4)
        after_step = env.step(np.zeros(4))[0]
        np.testing.assert_allclose(after_step[36:39], env._target_pos, atol=1e-6)  # not clipped
        env.close()


def test_mass_doubles_the_manipulated_body() -> None:
    for task, expected in (("pick-place-v3", "obj"), ("peg-insert-side-v3", "peg")):
        env = make_env(task)
        body = manipulated_body(env, task)
        assert body is not None and body_name(env.model, body) == expected
        before = float(env.model.body_mass[body])
        change = scale_mass(env, body, 2.0)
        assert change.bodies[0] == expected and change.before_kg[0] == pytest.approx(before)
        assert float(env.model.body_mass[body]) == pytest.approx(2 * before)
        assert float(env.model.body(expected).mass[0]) == pytest.approx(2 * before)
        env.close()
    assert manipulated_body(make_env("reach-v3"), "reach-v3") is None  # marked n/a


@pytest.mark.slow
def test_none_reproduces_the_offline_matrix(ci_artifacts: Path) -> None:
    matrix = CalibrationTable.model_validate(read_json(ci_artifacts / "offline_matrix.json"))
    cell = next(r for r in matrix.rows if r.task == "reach-v3" and r.policy == "generalist")
    max_steps = int(read_json(ci_artifacts / "manifest.json")["build_options"]["max_steps"])
    job = Job(load_panel(ci_artifacts), cell.episodes, max_steps, ("none",), ("generalist",),
              expert=False)
    _, rows = evaluate_task(ci_artifacts, job, "reach-v3")
    assert [(r.episodes, r.successes) for r in rows] == [(cell.episodes, cell.successes)]
    assert rows[0].configs.indices == list(range(cell.episodes))


@pytest.mark.slow
def test_end_to_end_writes_three_valid_files(ci_artifacts: Path, tmp_path: Path) -> None:
    main(["--artifacts", str(ci_artifacts), "--episodes", "2", "--out", str(tmp_path),
          "--tasks", "pick-place-v3", "--max-steps", "40"])
    report = RobustnessReport.model_validate(read_json(tmp_path / "robustness.json"))
    # 5 perturbations x 2 families, plus the expert on none, OOD and mass.
    assert len(report.rows) == len(PERTURBATIONS) * 2 + 3
    for row in report.rows:
        assert row.episodes == 2 and row.configs.indices == [0, 1] and row.configs.seed == 1000
        assert row.rate == pytest.approx(row.successes / 2) and row.ci95 is not None
        paired = row.perturbation != "none"
        assert (row.versus_none is not None) == paired
    assert report.tasks[0].mass_bodies[0] == "obj" and report.tasks[0].ood_part == "object"
    with (tmp_path / "robustness.csv").open() as handle:
        lines = list(csv.reader(handle))
    assert tuple(lines[0]) == CSV_COLUMNS and len(lines) == len(report.rows) + 1
    text = (tmp_path / "robustness.md").read_text()
    assert all(f"## `{p}`" in text for p in PERTURBATIONS) and "panel mean" in text


def test_pairing_with_none_and_the_expert_reference() -> None:
    configs = ConfigSet(seed=1000, indices=[0, 1, 2, 3])

    def row(family: Family, perturbation: Perturbation, outcomes: list[bool]) -> RobustnessRow:
        return RobustnessRow(
            task="push-v3", family=family, policy=family, perturbation=perturbation,
            applicable=True, episodes=4, successes=sum(outcomes), rate=sum(outcomes) / 4,
            ci95=(0.0, 1.0), configs=configs, outcomes=outcomes)

    rows = [row("generalist", "none", [True, True, True, False]),
            row("generalist", "ood_placement", [True, False, False, False]),
            row("expert", "ood_placement", [True, True, False, True])]
    pair_with_none(rows)
    mark_expert_solved(rows)
    drop = rows[1].versus_none
    assert drop is not None and drop.diff == pytest.approx(-0.5)  # 1/4 against 3/4, paired
    assert (drop.both, drop.only_perturbed, drop.only_none, drop.neither) == (1, 0, 2, 1)
    assert rows[0].versus_none is None and rows[2].versus_none is None  # no expert `none` row
    assert rows[1].on_expert_solved == (1, 3) and rows[0].on_expert_solved is None
