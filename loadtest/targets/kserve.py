"""Choosing a Triton ensemble without a router, and KServe v2 request pieces.

Used by direct-triton and by the baseline proxy's client: both send each request to the ensemble
the scenario's true task implies (`specialist_<task_id>`, or `generalist` plus `task_onehot` in
the manifest's task order). The generator knows the true task even when the router would have
to infer it, so `hidden_task_share` does not apply to these targets.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import orjson

from loadtest.scenario import Scenario
from loadtest.targets.base import PlanLists, task_id


class ManifestError(ValueError):
    pass


def manifest_tasks(path: Path) -> tuple[list[str], int | None]:
    """(ordered tasks, obs_dim) from a build manifest (docs/interfaces.md)."""
    try:
        data: Any = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as err:
        raise ManifestError(f"cannot read manifest {path}: {err}") from None
    tasks = data.get("tasks") if isinstance(data, dict) else None
    if not isinstance(tasks, list) or not all(isinstance(t, str) for t in tasks):
        raise ManifestError(f"{path}: 'tasks' must be a list of task names")
    obs_dim = data.get("obs_dim")
    return tasks, obs_dim if isinstance(obs_dim, int) else None


@dataclass(frozen=True)
class EnsembleChoice:
    """Per scenario task index: the ensemble name and the one-hot (generalist only)."""

    models: tuple[str, ...]
    onehots: tuple[list[float] | None, ...]


def choose_ensembles(scenario: Scenario, manifest: Path | None) -> EnsembleChoice:
    known: list[str] | None = None
    if manifest is not None and manifest.exists():
        known, obs_dim = manifest_tasks(manifest)
        unknown = [t for t in scenario.tasks if t not in known]
        if unknown:
            raise ManifestError(f"task_mix: {unknown} not in manifest tasks {known}")
        if obs_dim is not None and obs_dim != scenario.obs_dim:
            raise ManifestError(f"obs_dim: scenario {scenario.obs_dim}, manifest {obs_dim}")
    if scenario.direct_policy == "specialist":
        models = tuple(f"specialist_{task_id(t)}" for t in scenario.tasks)
        return EnsembleChoice(models, tuple(None for _ in scenario.tasks))
    if known is None:
        raise ManifestError(
            f"direct_policy generalist needs the task order from a manifest; {manifest} not found"
        )
    onehots = []
    for t in scenario.tasks:
        vec = [0.0] * len(known)
        vec[known.index(t)] = 1.0
        onehots.append(vec)
    return EnsembleChoice(tuple("generalist" for _ in scenario.tasks), tuple(onehots))


def v2_json_body(model: str, state: np.ndarray[Any, Any], onehot: list[float] | None) -> bytes:
    """KServe v2 JSON inference request for one observation (batch of 1); `model` goes in the
    URL, not the body."""
    del model
    inputs: list[dict[str, Any]] = [
        {
            "name": "observation",
            "shape": [1, int(state.shape[0])],
            "datatype": "FP32",
            "data": state,
        }
    ]
    if onehot is not None:
        inputs.append(
            {"name": "task_onehot", "shape": [1, len(onehot)], "datatype": "FP32", "data": onehot}
        )
    body = {"inputs": inputs, "outputs": [{"name": "action"}]}
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)


class Bodies(Protocol):
    choice: EnsembleChoice
    lists: PlanLists

    def get(self, i: int) -> tuple[str, Any]: ...


class BodyCache:
    """Request bodies keyed by (task index, pool row), all built before the run (at most
    tasks x pool entries): the hot path is one dict lookup."""

    def __init__(self, lists: PlanLists, choice: EnsembleChoice, build: Any) -> None:
        self.lists = lists
        self.choice = choice
        self._cache: dict[tuple[int, int], Any] = {
            (t, row): build(choice.models[t], lists.pool[row], choice.onehots[t])
            for t, row in set(zip(lists.task, lists.obs, strict=True))
        }

    def get(self, i: int) -> tuple[str, Any]:
        ls = self.lists
        task = ls.task[i]
        return self.choice.models[task], self._cache[(task, ls.obs[i])]
