"""Train and export several models side by side, one single-threaded process each.

On this 2-core machine, shared with other work, two single-threaded trainers beat one
two-threaded trainer: small matmuls barely gain from a second OpenMP thread, and a
multi-threaded torch slows down several-fold when another process takes one of the cores
(threads spin waiting for each other), while a single-threaded one degrades gracefully.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from functools import lru_cache
from multiprocessing import get_context
from pathlib import Path

import torch

from policies.demos import DatasetManifest, load_dataset
from policies.export import ExportedModel, example_inputs, export_checked
from policies.jsonio import read_json, sha256_file, write_json
from policies.train import ModelSpec, NormStats, PanelTensors, TrainConfig, train_model


@dataclass(frozen=True)
class TrainJob:
    spec: ModelSpec
    inputs_key: str
    out: Path  # build folder: dataset/, norm_stats.json, <model name>/
    config: TrainConfig


@lru_cache(maxsize=2)
def panel_tensors(out: Path, dataset_hash: str) -> PanelTensors:
    """Loaded once per process; `dataset_hash` is in the key so a new dataset is not missed."""
    manifest = DatasetManifest.model_validate(read_json(out / "dataset" / "manifest.json"))
    if manifest.dataset_hash != dataset_hash:
        raise RuntimeError(f"dataset changed under the build: {manifest.dataset_hash}")
    norm = NormStats.from_json(read_json(out / "norm_stats.json"))
    return PanelTensors.build(load_dataset(out / "dataset", manifest), norm)


def run_job(job: TrainJob, dataset_hash: str) -> ExportedModel:
    data = panel_tensors(job.out, dataset_hash)
    trained = train_model(job.spec, data, job.config)
    feeds = example_inputs(job.spec.kind, data, job.config.seed)
    exported = export_checked(trained, job.out / job.spec.name, feeds, job.inputs_key)
    write_export_record(job.out / job.spec.name, exported)
    print(
        f"[train] {job.spec.name}: {exported.steps} steps in {exported.seconds:.1f} s, "
        f"loss {exported.final_loss:.4g}, |onnx - torch| {exported.max_abs_difference:.1e}",
        flush=True,
    )
    return exported


EXPORT_RECORD = "export.json"  # written as each model is exported: a build can resume


def write_export_record(folder: Path, model: ExportedModel) -> None:
    """What the card needs of a finished training, next to its ONNX: a build interrupted
    later (hours into panel30) keeps every model it finished, cards or not."""
    record = {k: v for k, v in asdict(model).items() if k != "spec"}
    write_json(folder / EXPORT_RECORD, record)


def finished_export(folder: Path, spec: ModelSpec, inputs_key: str) -> ExportedModel | None:
    """The model trained from exactly these inputs and exported intact, if there is one."""
    path, onnx_path = folder / EXPORT_RECORD, folder / "model.onnx"
    if not (path.exists() and onnx_path.exists()):
        return None
    record = read_json(path)
    if record.get("inputs_key") != inputs_key or record.get("onnx_sha256") != sha256_file(
            onnx_path):
        return None
    return ExportedModel(spec=spec, **record)


def _single_threaded_worker() -> None:
    torch.set_num_threads(1)


def run_jobs(jobs: list[TrainJob], dataset_hash: str, workers: int) -> list[ExportedModel]:
    """Results in the order of `jobs`; the longest jobs start first to balance the workers."""
    if workers <= 1 or len(jobs) <= 1:
        return [run_job(job, dataset_hash) for job in jobs]
    n_tasks = max(len(job.spec.tasks) for job in jobs)

    def cost(job: TrainJob) -> float:
        steps = job.spec.steps or job.config.steps_for(job.spec.kind, n_tasks)
        # A transformer step costs ~50 MLP steps here (0.11 s vs ~2 ms, batch 256).
        return steps * (50.0 if job.spec.architecture == "transformer" else 1.0)

    order = sorted(range(len(jobs)), key=lambda i: -cost(jobs[i]))
    with ProcessPoolExecutor(
        workers, mp_context=get_context("spawn"), initializer=_single_threaded_worker
    ) as pool:
        futures = {i: pool.submit(run_job, jobs[i], dataset_hash) for i in order}
        return [futures[i].result() for i in range(len(jobs))]
