"""What one run will do: the plan from the command line, the Meta-World configurations its
episodes run on, and the order they run in."""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from metaworld.types import Task

from evaluation.arms import Arm
from evaluation.runner import EpisodeSpec
from evaluation.stack import RunningStack
from policies.panel import CONFIGS_PER_SEED, Panel, configurations, task_id

# The calibration table the router routes by (policies.offline_eval) is measured on the first
# configurations of MT1(task, panel.eval_config_seed). Evaluating on those same configurations
# would grade the router on the exact episodes its table was fitted to, so the closed-loop
# evaluation draws its own from another MT1 seed, also outside the demonstration seeds.
CLOSED_LOOP_CONFIG_SEED = 2000


@dataclass(frozen=True)
class RunPlan:
    panel: Panel
    arms: list[Arm]
    episodes: int
    robots: int
    transport: str
    control_hz: float
    max_steps: int
    contract: Path
    artifacts: Path
    out: Path
    command: str
    use_redis: bool = True
    running: RunningStack | None = None  # None: start our own stack
    triton_grpc: str | None = None  # own routers on an already running tritonserver
    triton_fault_dir: Path | None = None
    rounds: int = 4  # each arm's episodes run in this many blocks, interleaved with the others
    config_seed: int = CLOSED_LOOP_CONFIG_SEED  # MT1 seed of the evaluation's configurations


def schedule(arms: list[Arm], episodes: int, rounds: int) -> list[tuple[Arm, range]]:
    """Blocks of (arm, configuration indices): every arm's episodes split into `rounds` blocks,
    arms rotated each round. The machine's background load drifts over a run; interleaving
    spreads that drift over all arms instead of handing it to whichever arm ran last."""
    rounds = max(1, min(rounds, episodes))
    bounds = [round(i * episodes / rounds) for i in range(rounds + 1)]
    out = []
    for r in range(rounds):
        shift = r % len(arms) if arms else 0
        for arm in arms[shift:] + arms[:shift]:
            out.append((arm, range(bounds[r], bounds[r + 1])))
    return out


def episode_specs(plan: RunPlan, arm: Arm, tag: str) -> list[EpisodeSpec]:
    # Tasks interleaved, so robots run different tasks at the same time.
    return [EpisodeSpec(arm, task, i, f"{arm.name}.{task_id(task)}.{i:03d}.{tag}")
            for i in range(plan.episodes) for task in plan.panel.tasks]


def config_identity(config: Task) -> str:
    """A configuration's identity: its task and a hash of its random placement vector (what
    MT1 draws per configuration), so equal placements compare equal across seeds."""
    data = pickle.loads(config.data)  # metaworld's own serialisation of the Task
    vec = np.round(np.asarray(data["rand_vec"], dtype=np.float64), 9)
    digest = hashlib.sha256(vec.tobytes()).hexdigest()[:16]
    return f"{config.env_name}:{digest}"


def configuration_ids(configs: Sequence[Task]) -> list[str]:
    return [config_identity(c) for c in configs]


def check_seeds(panel: Panel, seed: int) -> None:
    """The evaluation seed must be neither the calibration seed nor a demonstration seed."""
    if seed == panel.eval_config_seed:
        raise ValueError(f"evaluation configuration seed {seed} is the seed the calibration "
                         f"table of panel {panel.name} was measured on; pick another")
    if seed in panel.demo_config_seeds:
        raise ValueError(f"evaluation configuration seed {seed} is a demonstration seed of "
                         f"panel {panel.name}: the policies were trained on it")


def check_disjoint(evaluation: Mapping[str, Sequence[str]],
                   calibration: Mapping[str, Sequence[str]]) -> None:
    """Raises if any task's evaluation configurations include a calibration configuration
    (identities from configuration_ids)."""
    overlap = {task: sorted(set(ids) & set(calibration.get(task, ())))
               for task, ids in evaluation.items()}
    overlap = {t: ids for t, ids in overlap.items() if ids}
    if overlap:
        detail = "; ".join(f"{t}: {len(ids)} ({', '.join(ids[:3])}"
                           f"{', ...' if len(ids) > 3 else ''})" for t, ids in overlap.items())
        raise ValueError(f"evaluation and calibration configurations overlap: {detail}")


def evaluation_configurations(panel: Panel, task: str, count: int, seed: int
                              ) -> tuple[Task, ...]:
    """The first `count` configurations of MT1(task, seed), after check_seeds."""
    check_seeds(panel, seed)
    if not 1 <= count <= CONFIGS_PER_SEED:
        raise ValueError(f"1..{CONFIGS_PER_SEED} configurations per task, asked {count}")
    return configurations(task, seed)[:count]


def calibration_configurations(panel: Panel, task: str) -> tuple[Task, ...]:
    """Every configuration the calibration table can have been measured on: all of the
    calibration seed's, not only the first episodes_per_cell, so the check does not depend on
    how many episodes the offline evaluation ran."""
    return configurations(task, panel.eval_config_seed)
