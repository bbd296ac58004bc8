"""Method-matched behaviour cloning: one generalist, one specialist per task, a task classifier.

Every model is the same MLP (input -> 256 -> 256 -> output), trained with the same optimiser,
batch size, seed and normalisation on the same demonstrations. Budget rule: a specialist gets
S steps on its own task; every panel-wide model (generalist, classifier) gets S x T steps with
minibatches balanced over tasks, so each task receives the same expected number of samples as
its specialist does.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from policies.panel import ACTION_DIM, OBS_DIM, Array, FloatArray, task_id

# Observation units are metres, unit quaternions and a [0, 1] gripper opening: a dimension that
# varies by less than ~1 cm across all demos carries little signal, and dividing by a smaller
# std would turn simulator jitter (or a never-seen padded slot) into huge inputs.
STD_FLOOR = 1e-2

ModelKind = Literal["generalist", "specialist", "task_classifier"]


@dataclass(frozen=True)
class TrainConfig:
    steps_per_specialist: int = 10_000
    batch_size: int = 256
    learning_rate: float = 1e-3
    hidden: tuple[int, ...] = (256, 256)
    seed: int = 0

    def steps_for(self, kind: ModelKind, n_tasks: int) -> int:
        return self.steps_per_specialist * (1 if kind == "specialist" else n_tasks)

    def budget_rule(self) -> str:
        return (
            f"specialist S={self.steps_per_specialist} steps on its own task; generalist and "
            f"task classifier S x T steps with task-balanced minibatches (same expected samples "
            f"per task as a specialist); batch {self.batch_size}, Adam lr {self.learning_rate}, "
            f"seed {self.seed} for init and sampling of every model"
        )

    def as_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class NormStats:
    mean: npt.NDArray[np.float64]
    std: npt.NDArray[np.float64]

    @classmethod
    def from_observations(cls, obs: FloatArray) -> NormStats:
        obs64 = obs.astype(np.float64)
        return cls(obs64.mean(axis=0), np.maximum(obs64.std(axis=0), STD_FLOOR))

    def normalise(self, obs: npt.NDArray[np.floating[Any]]) -> FloatArray:
        normalised: FloatArray = ((obs - self.mean) / self.std).astype(np.float32)
        return normalised

    def as_json(self) -> dict[str, list[float]]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_json(cls, value: dict[str, list[float]]) -> NormStats:
        return cls(np.asarray(value["mean"], np.float64), np.asarray(value["std"], np.float64))


def mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(in_dim, width), nn.ReLU()]
        in_dim = width
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


class ActionPolicy(nn.Module):
    """Specialist: obs_norm -> action in [-1, 1]."""

    def __init__(self, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.net = mlp(OBS_DIM, hidden, ACTION_DIM)

    def forward(self, obs_norm: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(obs_norm))


class ConditionedActionPolicy(nn.Module):
    """Generalist: (obs_norm, task_onehot) -> action in [-1, 1]."""

    def __init__(self, n_tasks: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.net = mlp(OBS_DIM + n_tasks, hidden, ACTION_DIM)

    def forward(self, obs_norm: torch.Tensor, task_onehot: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(torch.cat([obs_norm, task_onehot], dim=-1)))


class TaskClassifier(nn.Module):
    """obs_norm -> task_probs (softmax; the exported graph includes it)."""

    def __init__(self, n_tasks: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.net = mlp(OBS_DIM, hidden, n_tasks)

    def logits(self, obs_norm: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.net(obs_norm)
        return logits

    def forward(self, obs_norm: torch.Tensor) -> torch.Tensor:
        probs: torch.Tensor = torch.softmax(self.net(obs_norm), dim=-1)
        return probs


@dataclass(frozen=True)
class ModelSpec:
    name: str
    kind: ModelKind
    tasks: tuple[str, ...]  # tasks whose demos it is trained on


def model_specs(tasks: tuple[str, ...]) -> list[ModelSpec]:
    return [
        ModelSpec("generalist", "generalist", tasks),
        *(ModelSpec(f"specialist_{task_id(t)}", "specialist", (t,)) for t in tasks),
        ModelSpec("task_classifier", "task_classifier", tasks),
    ]


@dataclass(frozen=True)
class PanelTensors:
    """All demos of the panel, normalised, with task labels; rows grouped by task in panel order."""

    tasks: tuple[str, ...]
    obs_norm: torch.Tensor  # [N, OBS_DIM]
    action: torch.Tensor  # [N, ACTION_DIM], the clean expert labels
    task_index: torch.Tensor  # [N] int64
    offsets: torch.Tensor  # [T] first row of each task
    counts: torch.Tensor  # [T] rows of each task

    @classmethod
    def build(cls, demos: dict[str, dict[str, Array]], norm: NormStats) -> PanelTensors:
        tasks = tuple(demos)
        obs = np.concatenate([demos[t]["obs"] for t in tasks])
        counts = np.array([len(demos[t]["obs"]) for t in tasks])
        return cls(
            tasks=tasks,
            obs_norm=torch.from_numpy(norm.normalise(obs)),
            action=torch.from_numpy(np.concatenate([demos[t]["action"] for t in tasks])),
            task_index=torch.from_numpy(np.repeat(np.arange(len(tasks)), counts)),
            offsets=torch.from_numpy(np.concatenate([[0], np.cumsum(counts)[:-1]])),
            counts=torch.from_numpy(counts),
        )

    def sample_rows(
        self, task_positions: list[int], size: int, gen: torch.Generator
    ) -> torch.Tensor:
        """Row indices: task uniform among `task_positions`, then row uniform within the task."""
        choice = torch.tensor(task_positions)[
            torch.randint(len(task_positions), (size,), generator=gen)
        ]
        within = (torch.rand(size, generator=gen) * self.counts[choice]).long()
        return self.offsets[choice] + within


@dataclass(frozen=True)
class TrainedModel:
    spec: ModelSpec
    module: nn.Module
    steps: int
    seconds: float
    final_loss: float


def train_model(spec: ModelSpec, data: PanelTensors, config: TrainConfig) -> TrainedModel:
    n_tasks = len(data.tasks)
    torch.manual_seed(config.seed)  # same initialisation rule for every model
    gen = torch.Generator().manual_seed(config.seed)
    positions = [data.tasks.index(t) for t in spec.tasks]
    eye = torch.eye(n_tasks)
    module: nn.Module
    if spec.kind == "specialist":
        module = ActionPolicy(config.hidden)
    elif spec.kind == "generalist":
        module = ConditionedActionPolicy(n_tasks, config.hidden)
    else:
        module = TaskClassifier(n_tasks, config.hidden)
    optimiser = torch.optim.Adam(module.parameters(), lr=config.learning_rate)
    steps = config.steps_for(spec.kind, n_tasks)
    recent: list[float] = []
    start = time.perf_counter()
    module.train()
    for _ in range(steps):
        rows = data.sample_rows(positions, config.batch_size, gen)
        obs = data.obs_norm[rows]
        if isinstance(module, TaskClassifier):
            loss = nn.functional.cross_entropy(module.logits(obs), data.task_index[rows])
        elif isinstance(module, ConditionedActionPolicy):
            loss = nn.functional.mse_loss(
                module(obs, eye[data.task_index[rows]]), data.action[rows]
            )
        else:
            loss = nn.functional.mse_loss(module(obs), data.action[rows])
        optimiser.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        optimiser.step()
        recent.append(loss.item())
        if len(recent) > 100:
            recent.pop(0)
    module.eval()
    seconds = time.perf_counter() - start
    return TrainedModel(
        spec, module, steps, seconds, float(np.mean(recent)) if recent else float("nan")
    )


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
