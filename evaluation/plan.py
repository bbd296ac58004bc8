"""What one run will do: the plan from the command line, and the order its episodes run in."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from evaluation.arms import Arm
from evaluation.runner import EpisodeSpec
from evaluation.stack import RunningStack
from policies.panel import Panel, task_id


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
