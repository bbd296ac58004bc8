"""Closed-loop offline evaluation of the exported ONNX policies on held-out configurations.

Every policy runs on every task (a specialist off its own task shows what a misroute costs).
The generalist gets the true task one-hot; `generalist+classifier` gets the task classifier's
probabilities for the current observation instead, as a router without a declared task would.
All episodes of a (task, policy) cell are stepped together with one batched forward per step.
"""

from __future__ import annotations

import csv
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel

from policies.card import CellRecord, ModelCard
from policies.export import session
from policies.jsonio import read_json, write_json
from policies.panel import (
    MAX_EPISODE_STEPS,
    FloatArray,
    Panel,
    eval_configurations,
    expert_action,
    make_env,
    make_expert,
    task_id,
)
from policies.train import NormStats
from router_service.contract import INFERRED_GENERALIST_ROW
from router_service.intervals import wilson_interval

COMBINED_POLICY = INFERRED_GENERALIST_ROW  # the router reads this row for inferred tasks
EXPERT_POLICY = "expert"  # reference only: written to a separate file, never to the matrix
CSV_COLUMNS = ("task", "policy", "episodes", "successes", "rate", "ci95_lo", "ci95_hi")


class MatrixRow(BaseModel):
    task: str
    policy: str
    episodes: int
    successes: int
    rate: float
    ci95: tuple[float, float]

    @classmethod
    def from_counts(cls, task: str, policy: str, episodes: int, successes: int) -> MatrixRow:
        lo, hi = wilson_interval(successes, episodes)
        rate = successes / episodes if episodes else 0.0
        return cls(
            task=task,
            policy=policy,
            episodes=episodes,
            successes=successes,
            rate=round(rate, 4),
            ci95=(round(lo, 4), round(hi, 4)),
        )


class CalibrationTable(BaseModel):
    panel: str
    source: Literal["offline", "closed_loop"]
    created: str
    rows: list[MatrixRow]


def write_matrix(folder: Path, table: CalibrationTable, stem: str = "offline_matrix") -> None:
    write_json(folder / f"{stem}.json", table)
    with (folder / f"{stem}.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for r in table.rows:
            writer.writerow([r.task, r.policy, r.episodes, r.successes, r.rate, *r.ci95])


@dataclass(frozen=True)
class EvalSpec:
    panel: Panel
    episodes_per_cell: int = 30
    max_steps: int = MAX_EPISODE_STEPS
    include_expert: bool = True
    extra_generalists: tuple[str, ...] = ()  # the width sweep and the large generalist


def policy_names(tasks: tuple[str, ...], extra_generalists: tuple[str, ...] = ()) -> list[str]:
    return ["generalist", *extra_generalists, *(f"specialist_{task_id(t)}" for t in tasks),
            COMBINED_POLICY]


class CellPolicy:
    """raw observations [B, 39] -> actions [B, 4] for one (task, policy) cell.

    ONNX policies see the observation as float32, as Triton receives it, normalised with the
    shared stats. The task classifier conditions `generalist+classifier` and also scores the
    expert's states (without steering them); its last probabilities are kept in `probs`.
    """

    def __init__(self, name: str, models_dir: Path, norm: NormStats, spec: EvalSpec, task: str):
        self.name, self.norm = name, norm
        self.onehot = np.eye(len(spec.panel.tasks), dtype=np.float32)[spec.panel.tasks.index(task)]
        self.expert = make_expert(task) if name == EXPERT_POLICY else None
        model = "generalist" if name == COMBINED_POLICY else name
        self.policy = (
            None if self.expert is not None else session(models_dir / model / "model.onnx")
        )
        uses_classifier = name in (COMBINED_POLICY, EXPERT_POLICY)
        classifier_path = models_dir / "task_classifier" / "model.onnx"
        self.classifier = session(classifier_path) if uses_classifier else None
        self.probs: FloatArray | None = None
        inputs = {i.name for i in self.policy.get_inputs()} if self.policy is not None else set()
        self.conditioned = "task_onehot" in inputs  # any generalist, whatever its name

    def act(self, obs: npt.NDArray[np.float64]) -> FloatArray:
        feeds = {"obs_norm": self.norm.normalise(obs.astype(np.float32))}
        if self.classifier is not None:
            self.probs = self.classifier.run(["task_probs"], feeds)[0]
            assert self.probs is not None
        if self.expert is not None:
            return np.stack([expert_action(self.expert, o) for o in obs])
        assert self.policy is not None
        if self.name == COMBINED_POLICY and self.probs is not None:
            feeds["task_onehot"] = self.probs
        elif self.conditioned:
            feeds["task_onehot"] = np.tile(self.onehot, (len(obs), 1))
        actions: FloatArray = self.policy.run(["action"], feeds)[0]
        return actions


@dataclass(frozen=True)
class CellOutcome:
    task: str
    policy: str
    episodes: int
    successes: int
    classified_states: int = 0  # states the task classifier saw in this cell (if it ran)
    correct_states: int = 0  # ... and how many it put on the true task


def step_active(envs: list[Any], idx: npt.NDArray[np.intp], actions: FloatArray,
                obs: npt.NDArray[np.float64], active: npt.NDArray[np.bool_],
                success: npt.NDArray[np.bool_]) -> None:
    """Steps the active envs (`idx`) with their rows of `actions`, in place; an env leaves
    `active` at its first success or when it is truncated."""
    for row, i in enumerate(idx):
        next_obs, _, _, truncated, info = envs[i].step(actions[row])
        obs[i] = next_obs
        if info["success"]:
            success[i], active[i] = True, False
        elif truncated:
            active[i] = False


def run_cell(envs: list[Any], policy: CellPolicy, task_index: int, max_steps: int) -> CellOutcome:
    obs = np.stack([env.reset()[0] for env in envs])
    active = np.ones(len(envs), dtype=bool)
    success = np.zeros(len(envs), dtype=bool)
    states = correct = 0
    for _ in range(max_steps):
        idx = np.flatnonzero(active)
        if len(idx) == 0:
            break
        actions = policy.act(obs[idx])
        if policy.probs is not None:
            states += len(idx)
            correct += int((policy.probs.argmax(axis=1) == task_index).sum())
        step_active(envs, idx, actions, obs, active, success)
    return CellOutcome("", policy.name, len(envs), int(success.sum()), states, correct)


def evaluate_task(models_dir: Path, spec: EvalSpec, task: str) -> list[CellOutcome]:
    norm = NormStats.from_json(read_json(models_dir / "norm_stats.json"))
    configs = eval_configurations(spec.panel, task, spec.episodes_per_cell)
    envs = [make_env(task, c) for c in configs]
    names = policy_names(spec.panel.tasks, spec.extra_generalists) + (
        [EXPERT_POLICY] if spec.include_expert else [])
    outcomes = []
    own = f"specialist_{task_id(task)}"
    for name in names:
        policy = CellPolicy(name, models_dir, norm, spec, task)
        off_diagonal = name.startswith("specialist_") and name != own
        cell_envs = (envs[:spec.panel.off_diagonal_episodes]
                     if off_diagonal and spec.panel.off_diagonal_episodes else envs)
        cell = run_cell(cell_envs, policy, spec.panel.tasks.index(task), spec.max_steps)
        outcomes.append(replace(cell, task=task))
    for env in envs:
        env.close()
    return outcomes


def evaluate_panel(models_dir: Path, spec: EvalSpec, workers: int = 1) -> list[CellOutcome]:
    tasks = list(spec.panel.tasks)
    if workers > 1:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            per_task = list(
                pool.map(evaluate_task, [models_dir] * len(tasks), [spec] * len(tasks), tasks)
            )
    else:
        per_task = [evaluate_task(models_dir, spec, t) for t in tasks]
    return [outcome for outcomes in per_task for outcome in outcomes]


def tables(panel: str, outcomes: list[CellOutcome]) -> tuple[CalibrationTable, CalibrationTable]:
    """(policy matrix, expert reference), ordered by task then policy."""
    created = datetime.now(UTC).isoformat(timespec="seconds")

    def table(rows: list[CellOutcome]) -> CalibrationTable:
        return CalibrationTable(
            panel=panel,
            source="offline",
            created=created,
            rows=[MatrixRow.from_counts(o.task, o.policy, o.episodes, o.successes) for o in rows],
        )

    return (
        table([o for o in outcomes if o.policy != EXPERT_POLICY]),
        table([o for o in outcomes if o.policy == EXPERT_POLICY]),
    )


def _record(n: int, k: int) -> CellRecord:
    rate = round(k / n, 4) if n else 0.0
    lo, hi = wilson_interval(k, n)
    return CellRecord(episodes=n, successes=k, rate=rate, ci95=(round(lo, 4), round(hi, 4)))


CLASSIFIER_NOTE = (
    "per-state accuracy (episodes = states, successes = states put on the true task); "
    "offline_success: states of held-out generalist+classifier rollouts (what a router sees "
    "when it infers the task); offline_accuracy_expert_states: states of held-out expert rollouts"
)


def fill_model_cards(models_dir: Path, outcomes: list[CellOutcome]) -> None:
    """Write each ONNX model's offline results into its card (the version does not change)."""
    for card_path in sorted(models_dir.glob("*/model_card.json")):
        card = ModelCard.model_validate(read_json(card_path))
        update: dict[str, object]
        if card.kind == "task_classifier":
            update = {
                "offline_success": {
                    o.task: _record(o.classified_states, o.correct_states)
                    for o in outcomes
                    if o.policy == COMBINED_POLICY
                },
                "offline_accuracy_expert_states": {
                    o.task: _record(o.classified_states, o.correct_states)
                    for o in outcomes
                    if o.policy == EXPERT_POLICY
                }
                or None,
                "offline_note": CLASSIFIER_NOTE,
            }
        else:
            update = {
                "offline_success": {
                    o.task: _record(o.episodes, o.successes)
                    for o in outcomes
                    if o.policy == card.name
                },
                "offline_note": "closed-loop success on held-out configurations (MT1 eval seed)",
            }
        write_json(card_path, card.model_copy(update=update))
