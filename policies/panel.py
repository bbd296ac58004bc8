"""Task panels, their fixed configuration seeds, and helpers to build environments and experts.

A *configuration* is one Meta-World `Task` (object and goal placement) of a task such as
`reach-v3`. Demonstrations come from the configurations of the `demo_config_seeds` MT1
benchmarks; evaluation uses `eval_config_seed`, so no evaluation configuration is ever seen
during training.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import metaworld
import numpy as np
import numpy.typing as npt
from metaworld.env_dict import ALL_V3_ENVIRONMENTS
from metaworld.policies import ENV_POLICY_MAP
from metaworld.policies.policy import Policy as ExpertPolicy
from metaworld.types import Task

FloatArray = npt.NDArray[np.float32]
Array = npt.NDArray[Any]  # arrays of several dtypes stored side by side (npz columns)

OBS_DIM = 39
ACTION_DIM = 4
ACTION_LOW = -1.0
ACTION_HIGH = 1.0
MAX_EPISODE_STEPS = 500  # Meta-World's own horizon (max_path_length)
CONFIGS_PER_SEED = 50  # MT1 generates 50 configurations per benchmark seed


@dataclass(frozen=True)
class Panel:
    name: str
    tasks: tuple[str, ...]
    # Ten seeds give 500 candidate configurations per task: enough for 200 demos plus retries.
    demo_config_seeds: tuple[int, ...] = tuple(range(10))
    eval_config_seed: int = 1000
    # The panel's extra generalists (docs/evaluation-recipe.md): MLP widths of the width sweep
    # and the transformer generalist's training steps (0: none). ci keeps a short transformer
    # run so `make test` serves its ensemble in the real Triton without minutes of training.
    generalist_widths: tuple[int, ...] = ()
    large_generalist_steps: int = 0
    # Offline matrix: a specialist on another task (an off-diagonal cell) gets only the first
    # this many configurations of the cell's set; None: all of them. On 30 tasks the full
    # matrix is ~900 such cells of mostly failed 500-step episodes, hours on 2 cores, while the
    # decision rests on the diagonal and the generalists, which keep every episode.
    off_diagonal_episodes: int | None = None

    def data_fields(self) -> dict[str, object]:
        """What the demonstrations and configurations depend on (not which models are built)."""
        return {"name": self.name, "tasks": list(self.tasks),
                "demo_config_seeds": list(self.demo_config_seeds),
                "eval_config_seed": self.eval_config_seed}

    def __post_init__(self) -> None:
        if len(set(self.tasks)) != len(self.tasks):
            raise ValueError(f"panel {self.name} lists a task twice")
        unknown = [t for t in self.tasks if t not in ENV_POLICY_MAP]
        if unknown:
            raise ValueError(f"panel {self.name}: unknown tasks {unknown}")
        if self.eval_config_seed in self.demo_config_seeds:
            raise ValueError("evaluation configurations must never be used for demonstrations")


MT10_TASKS: tuple[str, ...] = (
    "reach-v3",
    "push-v3",
    "pick-place-v3",
    "door-open-v3",
    "drawer-open-v3",
    "drawer-close-v3",
    "button-press-topdown-v3",
    "peg-insert-side-v3",
    "window-open-v3",
    "window-close-v3",
)

# MT10 plus twenty more MT50 tasks whose scripted expert succeeded on 10 of 10 configurations
# with the demo noise (sigma 0.3) in a survey on this machine: a task without reliable demos
# cannot be cloned at all, so it would measure the expert, not the generalist/specialist trade.
PANEL30_TASKS: tuple[str, ...] = (
    *MT10_TASKS,
    "button-press-v3",
    "button-press-wall-v3",
    "button-press-topdown-wall-v3",
    "coffee-button-v3",
    "dial-turn-v3",
    "door-close-v3",
    "door-lock-v3",
    "door-unlock-v3",
    "faucet-open-v3",
    "faucet-close-v3",
    "hammer-v3",
    "handle-press-v3",
    "handle-press-side-v3",
    "handle-pull-v3",
    "lever-pull-v3",
    "plate-slide-v3",
    "plate-slide-side-v3",
    "push-wall-v3",
    "push-back-v3",
    "reach-wall-v3",
)

PANELS: dict[str, Panel] = {
    "ci": Panel("ci", ("reach-v3", "pick-place-v3", "peg-insert-side-v3"),
                large_generalist_steps=300),
    "mt10": Panel("mt10", MT10_TASKS, generalist_widths=(64, 512), large_generalist_steps=6000),
    "panel30": Panel("panel30", PANEL30_TASKS, large_generalist_steps=6000,
                     off_diagonal_episodes=5),
}


def get_panel(name: str) -> Panel:
    try:
        return PANELS[name]
    except KeyError:
        raise ValueError(f"unknown panel {name!r}; known: {sorted(PANELS)}") from None


def task_id(task: str) -> str:
    """Identifier safe for Triton model names and folders: 'pick-place-v3' -> 'pick_place_v3'."""
    return task.replace("-", "_")


@lru_cache(maxsize=64)
def configurations(task: str, seed: int) -> tuple[Task, ...]:
    """The 50 configurations of `metaworld.MT1(task, seed)`; cached because MT1 takes ~0.5 s."""
    benchmark = metaworld.MT1(task, seed=seed)  # type: ignore[no-untyped-call]
    return tuple(benchmark.train_tasks)


def demo_configuration(panel: Panel, task: str, index: int) -> Task:
    """Configuration number `index` in the panel's fixed demo order (seed-major)."""
    seed_pos, within = divmod(index, CONFIGS_PER_SEED)
    if seed_pos >= len(panel.demo_config_seeds):
        raise IndexError(
            f"{task}: only {len(panel.demo_config_seeds) * CONFIGS_PER_SEED} demo configs"
        )
    return configurations(task, panel.demo_config_seeds[seed_pos])[within]


def eval_configurations(panel: Panel, task: str, count: int) -> tuple[Task, ...]:
    configs = configurations(task, panel.eval_config_seed)
    if count > len(configs):
        raise ValueError(f"at most {len(configs)} held-out configurations per task, asked {count}")
    return configs[:count]


def make_env(task: str, config: Task | None = None) -> Any:
    """A fully observable Meta-World env (goal in the observation) set to `config`."""
    env = ALL_V3_ENVIRONMENTS[task]()
    env.set_task(config if config is not None else configurations(task, 0)[0])
    return env


def make_expert(task: str) -> ExpertPolicy:
    # The map's values are concrete subclasses; typed as the abstract base in metaworld.
    policy_cls: Callable[[], ExpertPolicy] = ENV_POLICY_MAP[task]
    return policy_cls()


def expert_action(expert: ExpertPolicy, obs: npt.NDArray[np.float64]) -> FloatArray:
    """The expert's action clipped to the action bounds, as the env would apply it."""
    with warnings.catch_warnings():
        # The experts warn whenever their proportional controller saturates; we clip anyway.
        warnings.filterwarnings("ignore", message="Constant\\(s\\) may be too high")
        action = expert.get_action(obs)
    clipped: FloatArray = np.clip(action, ACTION_LOW, ACTION_HIGH).astype(np.float32)
    return clipped
