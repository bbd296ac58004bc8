"""`python -m policies.build --panel ci --out build/models/ci`: demos -> train -> ONNX -> eval.

Each stage is skipped when its outputs exist and were made from the same inputs (content
hashes of the dataset, the normalisation stats, the configs and the model files).
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from policies.card import ModelCard
from policies.demos import DemoSpec, collect_dataset, load_dataset
from policies.export import ExportContext, ExportedModel, example_inputs, write_card
from policies.jsonio import read_json, sha256_file, sha256_json, timed, write_json
from policies.offline_eval import EvalSpec, evaluate_panel, fill_model_cards, tables, write_matrix
from policies.panel import (
    ACTION_DIM,
    ACTION_HIGH,
    ACTION_LOW,
    MAX_EPISODE_STEPS,
    OBS_DIM,
    Panel,
    get_panel,
)
from policies.train import ExtraGeneralists, ModelSpec, NormStats, TrainConfig, model_specs
from policies.training_jobs import TrainJob, finished_export, panel_tensors, run_jobs

TRAINING_CODE_VERSION = 1  # bump when a change to train/export should invalidate built models
EVAL_CODE_VERSION = 3


@dataclass(frozen=True)
class BuildOptions:
    seed: int = 0
    demos_per_task: int = 200
    noise_std: float = 0.3
    steps_per_specialist: int = 10_000
    eval_episodes: int = 30
    max_steps: int = MAX_EPISODE_STEPS
    latency_calls: int = 1000
    workers: int = 2
    train_seed: int | None = None  # None: `seed` (demos and training); set for a second seed
    generalist_widths: tuple[int, ...] = ()  # the width sweep: extra MLP generalists
    large_generalist_steps: int = 0  # 0: no transformer generalist

    @property
    def extra(self) -> ExtraGeneralists:
        return ExtraGeneralists(self.generalist_widths, self.large_generalist_steps)


@dataclass
class BuildReport:
    skipped: dict[str, bool] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


class ManifestModel(BaseModel):
    name: str
    kind: str
    tasks: list[str]
    onnx: str
    card: str
    version: str


class BuildManifest(BaseModel):
    panel: str
    tasks: list[str]
    obs_dim: int
    action_dim: int
    action_bounds: dict[str, list[float]]
    dataset_hash: str
    dataset_manifest: str
    norm_stats: str
    offline_matrix: str
    offline_matrix_csv: str
    build_options: dict[str, object]
    models: list[ManifestModel]


def _write_if_changed(path: Path, value: BaseModel | Mapping[str, object]) -> None:
    """Keeps files (and their mtimes) untouched on a no-op rebuild."""
    text = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
    if path.exists() and read_json(path) == text:
        return
    write_json(path, value)


def _model_key(spec: ModelSpec, dataset_hash: str, norm_hash: str, config: TrainConfig) -> str:
    return sha256_json(
        {
            "model": spec.key_fields(),
            "dataset": dataset_hash,
            "norm": norm_hash,
            "train": config.as_json(),
            "code": TRAINING_CODE_VERSION,
        }
    )


def _reusable_card(folder: Path, key: str) -> ModelCard | None:
    card_path, onnx_path = folder / "model_card.json", folder / "model.onnx"
    if not (card_path.exists() and onnx_path.exists()):
        return None
    card = ModelCard.model_validate(read_json(card_path))
    if card.training.inputs_key != key or sha256_file(onnx_path) != card.onnx_sha256:
        return None
    return card


def build(panel: Panel, out: Path, options: BuildOptions) -> BuildReport:
    report = BuildReport()
    out.mkdir(parents=True, exist_ok=True)
    tasks = panel.tasks

    demo_spec = DemoSpec(
        panel, options.demos_per_task, options.noise_std, options.seed, options.max_steps
    )
    with timed("demonstrations", report.timings):
        dataset, skipped = collect_dataset(out / "dataset", demo_spec, options.workers)
    report.skipped["demonstrations"] = skipped
    demos = load_dataset(out / "dataset", dataset)
    print(
        f"[build] dataset {dataset.dataset_hash[:16]} ({'reused' if skipped else 'new'}): "
        + ", ".join(f"{e.task} {e.demos} demos/{e.transitions} steps" for e in dataset.tasks)
    )

    norm = NormStats.from_observations(np.concatenate([demos[t]["obs"] for t in tasks]))
    _write_if_changed(out / "norm_stats.json", norm.as_json())
    norm_hash = sha256_file(out / "norm_stats.json")

    train_seed = options.seed if options.train_seed is None else options.train_seed
    config = TrainConfig(steps_per_specialist=options.steps_per_specialist, seed=train_seed)
    ctx = ExportContext(
        panel.name, tasks, dataset.dataset_hash, norm_hash, config, options.latency_calls
    )
    cards: dict[str, ModelCard] = {}
    jobs: list[TrainJob] = []
    specs = model_specs(tasks, options.extra)
    finished: list[ExportedModel] = []  # trained by an interrupted build, not yet carded
    for spec in specs:
        key = _model_key(spec, dataset.dataset_hash, norm_hash, config)
        reused = _reusable_card(out / spec.name, key)
        done = None if reused else finished_export(out / spec.name, spec, key)
        report.skipped[f"train:{spec.name}"] = reused is not None or done is not None
        if reused is not None:
            cards[spec.name] = reused
            print(f"[build] {spec.name}: up to date ({reused.version})")
        elif done is not None:
            finished.append(done)
            print(f"[build] {spec.name}: trained by an earlier build, card to write")
        else:
            jobs.append(TrainJob(spec, key, out, config))
    if jobs or finished:
        with timed(f"training + ONNX export of {len(jobs)} models", report.timings):
            exported = finished + run_jobs(jobs, dataset.dataset_hash, options.workers)
        with timed("latency measurement + model cards", report.timings):
            data = panel_tensors(out, dataset.dataset_hash)
            for model in exported:
                feeds = example_inputs(model.spec.kind, data, options.seed)
                card = write_card(model, out / model.spec.name, feeds, ctx)
                cards[model.spec.name] = card
                print(
                    f"[build] {card.name}: version {card.version}, {card.parameter_count} "
                    f"params, ORT batch-1 p50 {card.latency.median_ms:.3f} ms "
                    f"p99 {card.latency.p99_ms:.3f} ms"
                )

    extra = tuple(s.name for s in specs if s.kind == "generalist" and s.name != "generalist")
    eval_spec = EvalSpec(panel, options.eval_episodes, options.max_steps, extra_generalists=extra)
    eval_fields = asdict(eval_spec)
    if not extra:  # keeps the key of builds made before the field existed
        del eval_fields["extra_generalists"]
    if panel.off_diagonal_episodes is None:  # likewise
        del eval_fields["panel"]["off_diagonal_episodes"]
    eval_key = sha256_json(
        {
            "versions": {n: c.version for n, c in cards.items()},
            "norm": norm_hash,
            "eval": eval_fields,
            "code": EVAL_CODE_VERSION,
        }
    )
    stamp = out / "offline_matrix.inputs.json"
    matrix_done = (out / "offline_matrix.json").exists() and (out / "offline_matrix.csv").exists()
    report.skipped["offline_eval"] = (
        matrix_done and stamp.exists() and read_json(stamp).get("inputs_key") == eval_key
    )
    if report.skipped["offline_eval"]:
        print("[build] offline evaluation: up to date")
    else:
        with timed("offline evaluation", report.timings):
            outcomes = evaluate_panel(out, eval_spec, options.workers)
            matrix, expert = tables(panel.name, outcomes)
            write_matrix(out, matrix)
            write_matrix(out, expert, stem="offline_expert_reference")
            fill_model_cards(out, outcomes)
            write_json(stamp, {"inputs_key": eval_key})
        for row in matrix.rows + expert.rows:
            print(f"[eval] {row.task:24s} {row.policy:34s} {row.successes:3d}/{row.episodes}")

    manifest = BuildManifest(
        panel=panel.name,
        tasks=list(tasks),
        obs_dim=OBS_DIM,
        action_dim=ACTION_DIM,
        action_bounds={"low": [ACTION_LOW] * ACTION_DIM, "high": [ACTION_HIGH] * ACTION_DIM},
        dataset_hash=dataset.dataset_hash,
        dataset_manifest="dataset/manifest.json",
        norm_stats="norm_stats.json",
        offline_matrix="offline_matrix.json",
        offline_matrix_csv="offline_matrix.csv",
        build_options={k: v for k, v in asdict(options).items() if k != "workers"},
        models=[
            ManifestModel(
                name=s.name,
                kind=s.kind,
                tasks=list(s.tasks),
                onnx=f"{s.name}/model.onnx",
                card=f"{s.name}/model_card.json",
                version=cards[s.name].version,
            )
            for s in specs
        ],
    )
    _write_if_changed(out / "manifest.json", manifest)
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m policies.build", description=__doc__)
    parser.add_argument("--panel", required=True, help="ci, mt10 or panel30")
    parser.add_argument("--out", required=True, type=Path)
    defaults = BuildOptions()
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--demos-per-task", type=int, default=defaults.demos_per_task)
    parser.add_argument("--noise-std", type=float, default=defaults.noise_std)
    parser.add_argument("--steps-per-specialist", type=int, default=defaults.steps_per_specialist)
    parser.add_argument("--eval-episodes", type=int, default=defaults.eval_episodes)
    parser.add_argument("--latency-calls", type=int, default=defaults.latency_calls)
    parser.add_argument("--train-seed", type=int, default=None,
                        help="seed of initialisation and minibatch sampling (default: --seed); "
                        "a second training seed on the same demonstrations")
    parser.add_argument("--generalist-widths", default=None,
                        help="comma-separated extra MLP generalist widths (the width sweep); "
                        "default: the panel's (policies/panel.py)")
    parser.add_argument("--large-generalist-steps", type=int, default=None,
                        help="training steps of the transformer generalist (0: none); "
                        "default: the panel's")
    parser.add_argument(
        "--workers",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="processes for demo collection and evaluation",
    )
    parser.add_argument("--dataset-from", type=Path, default=None,
                        help="copy another build's dataset/ first when --out has none (a second "
                        "training seed on the same demonstrations; it is verified as usual)")
    args = parser.parse_args(argv)
    panel = get_panel(args.panel)
    if args.dataset_from and not (args.out / "dataset").exists():
        shutil.copytree(args.dataset_from / "dataset", args.out / "dataset")
    widths = (panel.generalist_widths if args.generalist_widths is None
              else tuple(int(w) for w in args.generalist_widths.split(",") if w))
    options = BuildOptions(
        seed=args.seed,
        demos_per_task=args.demos_per_task,
        noise_std=args.noise_std,
        steps_per_specialist=args.steps_per_specialist,
        eval_episodes=args.eval_episodes,
        latency_calls=args.latency_calls,
        workers=args.workers,
        train_seed=args.train_seed,
        generalist_widths=widths,
        large_generalist_steps=(panel.large_generalist_steps if args.large_generalist_steps is None
                                else args.large_generalist_steps),
    )
    start = time.perf_counter()
    report = build(panel, args.out, options)
    total = time.perf_counter() - start
    skipped = [name for name, was in report.skipped.items() if was]
    for stage, seconds in report.timings.items():
        print(f"[build] timing {stage}: {seconds:.1f} s")
    print(f"[build] done in {total:.1f} s; skipped (up to date): {', '.join(skipped) or 'none'}")


if __name__ == "__main__":
    main()
