"""Method-matched behaviour cloning: one generalist, one specialist per task, a task classifier.

Every model is the same MLP (input -> 256 -> 256 -> output), trained with the same optimiser,
batch size, seed and normalisation on the same demonstrations. Budget rule: a specialist gets
S steps on its own task; every panel-wide model (generalist, classifier) gets S x T steps with
minibatches balanced over tasks, so each task receives the same expected number of samples as
its specialist does.

Two kinds of extra generalist, both optional per build: the MLP generalist at other widths (the
width sweep) and the large transformer generalist (`policies/transformer.py`), which is trained
for its own stated number of steps because S x T steps of it do not fit on this CPU.
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
from policies.transformer import ObservationTransformer, TransformerConfig, schedule

# Observation units are metres, unit quaternions and a [0, 1] gripper opening: a dimension that
# varies by less than ~1 cm across all demos carries little signal, and dividing by a smaller
# std would turn simulator jitter (or a never-seen padded slot) into huge inputs.
STD_FLOOR = 1e-2

ModelKind = Literal["generalist", "specialist", "task_classifier"]
Architecture = Literal["mlp", "transformer"]
LARGE_GENERALIST = "generalist_large"


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
    architecture: Architecture = "mlp"
    width: int | None = None  # MLP hidden width (two layers); None: TrainConfig.hidden
    steps: int | None = None  # None: the budget rule (TrainConfig.steps_for)

    def key_fields(self) -> dict[str, object]:
        """What identifies the model in the build cache; defaults are left out so models built
        before these fields existed keep their keys (and are not retrained)."""
        fields: dict[str, object] = {"name": self.name, "kind": self.kind,
                                     "tasks": list(self.tasks)}
        for key, value, default in (("architecture", self.architecture, "mlp"),
                                    ("width", self.width, None), ("steps", self.steps, None)):
            if value != default:
                fields[key] = value
        return fields


@dataclass(frozen=True)
class ExtraGeneralists:
    """The optional generalists of a build: MLP widths for the sweep, the transformer's steps."""

    widths: tuple[int, ...] = ()
    large_steps: int = 0  # 0: no transformer generalist


def model_specs(tasks: tuple[str, ...], extra: ExtraGeneralists = ExtraGeneralists()
                ) -> list[ModelSpec]:
    return [
        ModelSpec("generalist", "generalist", tasks),
        *(ModelSpec(f"generalist_w{w}", "generalist", tasks, width=w) for w in extra.widths),
        *([ModelSpec(LARGE_GENERALIST, "generalist", tasks, architecture="transformer",
                     steps=extra.large_steps)] if extra.large_steps else []),
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
    hidden = (spec.width, spec.width) if spec.width else config.hidden
    steps = spec.steps or config.steps_for(spec.kind, n_tasks)
    module: nn.Module
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
    if spec.architecture == "transformer":
        large = TransformerConfig()
        module = ObservationTransformer(n_tasks, large)
        optimiser = torch.optim.Adam(module.parameters(), lr=large.learning_rate)
        scheduler = schedule(optimiser, large, steps)
    else:
        if spec.kind == "specialist":
            module = ActionPolicy(hidden)
        elif spec.kind == "generalist":
            module = ConditionedActionPolicy(n_tasks, hidden)
        else:
            module = TaskClassifier(n_tasks, hidden)
        optimiser = torch.optim.Adam(module.parameters(), lr=config.learning_rate)
    recent: list[float] = []
    start = time.perf_counter()
    module.train()
    for _ in range(steps):
        rows = data.sample_rows(positions, config.batch_size, gen)
        obs = data.obs_norm[rows]
        if isinstance(module, TaskClassifier):
            loss = nn.functional.cross_entropy(module.logits(obs), data.task_index[rows])
        elif spec.kind == "generalist":
            loss = nn.functional.mse_loss(
                module(obs, eye[data.task_index[rows]]), data.action[rows]
            )
        else:
            loss = nn.functional.mse_loss(module(obs), data.action[rows])
        optimiser.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        optimiser.step()
        if scheduler is not None:
            scheduler.step()
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
