"""Expert demonstrations: noisy execution, clean labels, a content-hashed dataset on disk.

Noise is added to the *executed* action so the dataset visits states slightly off the expert's
path, while the label stays the expert's clean action there (DART-style): the clone then learns
how to recover, which is what kept behaviour cloning stable in the measured notes.
"""

from __future__ import annotations

import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from policies.jsonio import read_json, sha256_arrays, sha256_json, write_json
from policies.panel import (
    ACTION_HIGH,
    ACTION_LOW,
    CONFIGS_PER_SEED,
    MAX_EPISODE_STEPS,
    Array,
    Panel,
    demo_configuration,
    expert_action,
    make_env,
    make_expert,
    task_id,
)

DATA_FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
METAWORLD_VERSION = version("metaworld")
ARRAY_NAMES = ("obs", "action", "executed_action", "episode", "step")


@dataclass(frozen=True)
class DemoSpec:
    panel: Panel
    demos_per_task: int = 200
    noise_std: float = 0.3
    seed: int = 0
    max_steps: int = MAX_EPISODE_STEPS

    def inputs_key(self) -> str:
        return sha256_json(
            {"spec": {**asdict(self), "panel": self.panel.data_fields()},
             "format": DATA_FORMAT_VERSION, "metaworld": METAWORLD_VERSION}
        )


class EpisodeRecord(BaseModel):
    attempt: int
    config_seed: int
    config_index: int
    success: bool
    steps: int
    kept: bool


class TaskDataset(BaseModel):
    task: str
    file: str
    demos: int
    attempts: int
    transitions: int
    content_hash: str
    collect_seconds: float
    episodes: list[EpisodeRecord]


class DatasetManifest(BaseModel):
    format_version: int
    inputs_key: str
    spec: dict[str, object]
    metaworld_version: str
    dataset_hash: str
    created: str
    tasks: list[TaskDataset]


@dataclass(frozen=True)
class TaskDemos:
    task: str
    arrays: dict[str, Array]
    episodes: tuple[EpisodeRecord, ...]
    seconds: float


def noise_rng(seed: int, task: str) -> np.random.Generator:
    # Keyed by task name, not panel position, so a task's demos do not change when panels do.
    return np.random.default_rng([seed, zlib.crc32(task.encode())])


def collect_task(spec: DemoSpec, task: str) -> TaskDemos:
    """Run noisy expert episodes on successive demo configurations until enough succeed."""
    start = time.perf_counter()
    rng = noise_rng(spec.seed, task)
    env = make_env(task)
    expert = make_expert(task)
    max_attempts = len(spec.panel.demo_config_seeds) * CONFIGS_PER_SEED
    columns: dict[str, list[Array]] = {name: [] for name in ARRAY_NAMES}
    episodes: list[EpisodeRecord] = []
    kept = 0
    for attempt in range(max_attempts):
        if kept == spec.demos_per_task:
            break
        env.set_task(demo_configuration(spec.panel, task, attempt))
        obs, _ = env.reset()
        ep_obs, ep_label, ep_exec = [], [], []
        success = False
        for _ in range(spec.max_steps):
            label = expert_action(expert, obs)
            noise = rng.normal(0.0, spec.noise_std, size=label.shape)
            executed = np.clip(label + noise, ACTION_LOW, ACTION_HIGH).astype(np.float32)
            ep_obs.append(obs.astype(np.float32))
            ep_label.append(label)
            ep_exec.append(executed)
            obs, _, _, truncated, info = env.step(executed)
            if info["success"]:
                success = True
                break
            if truncated:
                break
        seed_pos, within = divmod(attempt, CONFIGS_PER_SEED)
        episodes.append(
            EpisodeRecord(
                attempt=attempt,
                config_seed=spec.panel.demo_config_seeds[seed_pos],
                config_index=within,
                success=success,
                steps=len(ep_obs),
                kept=success,
            )
        )
        if not success:
            continue
        n = len(ep_obs)
        columns["obs"].append(np.stack(ep_obs))
        columns["action"].append(np.stack(ep_label))
        columns["executed_action"].append(np.stack(ep_exec))
        columns["episode"].append(np.full(n, kept, dtype=np.int32))
        columns["step"].append(np.arange(n, dtype=np.int32))
        kept += 1
    env.close()
    if kept < spec.demos_per_task:
        raise RuntimeError(
            f"{task}: only {kept} successful demos in {len(episodes)} attempts "
            f"(asked {spec.demos_per_task}); the expert is too unreliable at sigma {spec.noise_std}"
        )
    arrays = {name: np.concatenate(parts) for name, parts in columns.items()}
    return TaskDemos(task, arrays, tuple(episodes), time.perf_counter() - start)


def _task_file(task: str) -> str:
    return f"{task_id(task)}.npz"


def load_task_arrays(dataset_dir: Path, entry: TaskDataset) -> dict[str, Array]:
    with np.load(dataset_dir / entry.file) as npz:
        return {name: npz[name] for name in npz.files}


def dataset_hash(entries: list[TaskDataset]) -> str:
    return sha256_json([[e.task, e.content_hash] for e in entries])


def verify_dataset(dataset_dir: Path, spec: DemoSpec) -> DatasetManifest | None:
    """The stored manifest if it was made from `spec` and every file still has its hash."""
    path = dataset_dir / MANIFEST_NAME
    if not path.exists():
        return None
    manifest = DatasetManifest.model_validate(read_json(path))
    if manifest.inputs_key != spec.inputs_key():
        return None
    for entry in manifest.tasks:
        file = dataset_dir / entry.file
        if (
            not file.exists()
            or sha256_arrays(load_task_arrays(dataset_dir, entry)) != entry.content_hash
        ):
            return None
    if dataset_hash(manifest.tasks) != manifest.dataset_hash:
        return None
    return manifest


def collect_dataset(
    dataset_dir: Path, spec: DemoSpec, workers: int = 1
) -> tuple[DatasetManifest, bool]:
    """Collect (or reuse) the panel's demos. Returns the manifest and whether work was skipped."""
    existing = verify_dataset(dataset_dir, spec)
    if existing is not None:
        return existing, True
    dataset_dir.mkdir(parents=True, exist_ok=True)
    tasks = list(spec.panel.tasks)
    if workers > 1:
        # spawn, not fork: MuJoCo and OpenMP state do not survive a fork reliably.
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            results = list(pool.map(collect_task, [spec] * len(tasks), tasks))
    else:
        results = [collect_task(spec, task) for task in tasks]
    entries: list[TaskDataset] = []
    for demos in results:
        file = _task_file(demos.task)
        np.savez(dataset_dir / file, **demos.arrays)
        entries.append(
            TaskDataset(
                task=demos.task,
                file=file,
                demos=int(demos.arrays["episode"].max()) + 1,
                attempts=len(demos.episodes),
                transitions=len(demos.arrays["obs"]),
                content_hash=sha256_arrays(demos.arrays),
                collect_seconds=round(demos.seconds, 2),
                episodes=list(demos.episodes),
            )
        )
        rate = sum(e.success for e in demos.episodes) / len(demos.episodes)
        print(
            f"[demos] {demos.task}: {entries[-1].demos} demos from {entries[-1].attempts} "
            f"attempts (expert success {rate:.0%} under noise), {entries[-1].transitions} "
            f"transitions, {demos.seconds:.1f} s",
            flush=True,
        )
    manifest = DatasetManifest(
        format_version=DATA_FORMAT_VERSION,
        inputs_key=spec.inputs_key(),
        spec={**asdict(spec), "panel": spec.panel.data_fields()},
        metaworld_version=METAWORLD_VERSION,
        dataset_hash=dataset_hash(entries),
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        tasks=entries,
    )
    write_json(dataset_dir / MANIFEST_NAME, manifest)
    return manifest, False


def load_dataset(dataset_dir: Path, manifest: DatasetManifest) -> dict[str, dict[str, Array]]:
    """task -> arrays, in the panel's task order."""
    return {entry.task: load_task_arrays(dataset_dir, entry) for entry in manifest.tasks}
