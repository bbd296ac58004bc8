"""ONNX export with an equivalence check against torch, latency measurement and the model card."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from policies.card import (
    ACTION_FIELDS,
    OBSERVATION_FIELDS,
    LatencyRecord,
    ModelCard,
    TensorSpec,
    TrainingRecord,
)
from policies.jsonio import sha256_file, write_json
from policies.panel import ACTION_DIM, OBS_DIM, FloatArray
from policies.train import (
    ModelKind,
    ModelSpec,
    PanelTensors,
    TrainConfig,
    TrainedModel,
    parameter_count,
)
from policies.transformer import TransformerConfig

Feeds = dict[str, FloatArray]  # ONNX input name -> batch
OPSET = 17  # supported by the onnxruntime inside current Triton releases
# torch and onnxruntime sum in different orders in float32: differences of ~1e-5 are rounding
# (one of panel30's 30 specialists reached 1.4e-5), a wrong export is off by far more.
EQUIVALENCE_TOLERANCE = 1e-4
NORMALISATION = "obs_norm = (observation - mean) / std with ../norm_stats.json (std floored)"


@dataclass(frozen=True)
class GraphSignature:
    inputs: tuple[str, ...]
    output: str


def signature(kind: ModelKind) -> GraphSignature:
    if kind == "generalist":
        return GraphSignature(("obs_norm", "task_onehot"), "action")
    if kind == "specialist":
        return GraphSignature(("obs_norm",), "action")
    return GraphSignature(("obs_norm",), "task_probs")


def tensor_specs(kind: ModelKind, n_tasks: int) -> tuple[list[TensorSpec], list[TensorSpec]]:
    inputs = [TensorSpec(name="obs_norm", shape=["batch", OBS_DIM], description=NORMALISATION)]
    if kind == "generalist":
        inputs.append(
            TensorSpec(
                name="task_onehot",
                shape=["batch", n_tasks],
                description="task conditioning in task_order; one-hot or probs",
            )
        )
    if kind == "task_classifier":
        output = TensorSpec(
            name="task_probs", shape=["batch", n_tasks], description="softmax over task_order"
        )
    else:
        output = TensorSpec(
            name="action",
            shape=["batch", ACTION_DIM],
            description="tanh output, inside [-1, 1]; see action_fields",
        )
    return inputs, [output]


def example_inputs(kind: ModelKind, data: PanelTensors, seed: int, rows: int = 1000) -> Feeds:
    """Real normalised demo observations (with their true one-hots) for checks and latency."""
    picked = np.random.default_rng(seed).integers(0, len(data.obs_norm), size=rows)
    feeds = {"obs_norm": data.obs_norm.numpy()[picked]}
    if kind == "generalist":
        feeds["task_onehot"] = np.eye(len(data.tasks), dtype=np.float32)[
            data.task_index.numpy()[picked]
        ]
    return feeds


def export_onnx(trained: TrainedModel, feeds: Feeds, path: Path) -> None:
    sig = signature(trained.spec.kind)
    args = tuple(torch.from_numpy(feeds[name][:1]) for name in sig.inputs)
    axes = {name: {0: "batch"} for name in (*sig.inputs, sig.output)}
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter is asked for
        torch.onnx.export(
            trained.module,
            args,
            str(path),
            dynamo=False,
            input_names=list(sig.inputs),
            output_names=[sig.output],
            dynamic_axes=axes,
            opset_version=OPSET,
        )


def session(path: Path, threads: int = 1) -> ort.InferenceSession:
    options = ort.SessionOptions()
    # One thread: single observations are far too small to gain from intra-op parallelism,
    # and the build runs several sessions side by side on a 2-core machine.
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def max_abs_difference(trained: TrainedModel, path: Path, feeds: Feeds) -> float:
    """Largest |torch - onnxruntime| over the batch; also proves the batch axis is dynamic."""
    sig = signature(trained.spec.kind)
    with torch.no_grad():
        expected = trained.module(*(torch.from_numpy(feeds[n]) for n in sig.inputs)).numpy()
    sess = session(path)
    got = sess.run([sig.output], {n: feeds[n] for n in sig.inputs})[0]
    single = sess.run([sig.output], {n: feeds[n][:1] for n in sig.inputs})[0]
    return float(max(np.abs(got - expected).max(), np.abs(single - expected[:1]).max()))


def measure_latency(path: Path, feeds: Feeds, calls: int = 1000) -> LatencyRecord:
    sess = session(path)
    names = [i.name for i in sess.get_inputs()]
    rows = len(next(iter(feeds.values())))
    singles = [{n: feeds[n][i % rows : i % rows + 1] for n in names} for i in range(calls)]
    for feed in singles[: min(50, calls)]:  # warm-up: first runs allocate and pick kernels
        sess.run(None, feed)
    samples = np.empty(calls)
    for i, feed in enumerate(singles):
        start = time.perf_counter_ns()
        sess.run(None, feed)
        samples[i] = (time.perf_counter_ns() - start) / 1e6
    return LatencyRecord(
        runtime=f"onnxruntime {ort.__version__} CPUExecutionProvider, in-process",
        calls=calls,
        batch_size=1,
        intra_op_threads=1,
        median_ms=round(float(np.median(samples)), 4),
        p99_ms=round(float(np.percentile(samples, 99)), 4),
    )


@dataclass(frozen=True)
class ExportContext:
    panel: str
    tasks: tuple[str, ...]
    dataset_hash: str
    norm_stats_hash: str
    train_config: TrainConfig
    latency_calls: int = 1000


@dataclass(frozen=True)
class ExportedModel:
    """What a training worker hands back: enough to write the card without the torch module."""

    spec: ModelSpec
    inputs_key: str
    steps: int
    seconds: float
    final_loss: float
    parameter_count: int
    onnx_sha256: str
    max_abs_difference: float


def export_checked(
    trained: TrainedModel, folder: Path, feeds: Feeds, inputs_key: str
) -> ExportedModel:
    """Write folder/model.onnx; raise if ONNX Runtime and torch disagree beyond 1e-5."""
    onnx_path = folder / "model.onnx"
    export_onnx(trained, feeds, onnx_path)
    diff = max_abs_difference(trained, onnx_path, feeds)
    if diff > EQUIVALENCE_TOLERANCE:
        raise RuntimeError(f"{trained.spec.name}: ONNX differs from torch by {diff:.2e}")
    return ExportedModel(
        spec=trained.spec,
        inputs_key=inputs_key,
        steps=trained.steps,
        seconds=round(trained.seconds, 2),
        final_loss=round(trained.final_loss, 6),
        parameter_count=parameter_count(trained.module),
        onnx_sha256=sha256_file(onnx_path),
        max_abs_difference=diff,
    )


def describe_training(spec: ModelSpec, config: TrainConfig, n_tasks: int,
                      seconds_per_step: float) -> tuple[str, str, str]:
    """(architecture, optimiser, budget rule) as the card states them; `seconds_per_step` is
    this model's own training time per step, so the cost of the rule it departs from is
    measured, not assumed."""
    if spec.architecture == "transformer":
        large = TransformerConfig()
        rule_steps = config.steps_for(spec.kind, n_tasks)
        return (
            large.describe(),
            f"Adam lr {large.learning_rate}, {large.warmup_steps}-step warm-up, cosine decay",
            f"own budget: {spec.steps} steps x batch {config.batch_size}, task-balanced "
            f"minibatches, seed {config.seed}; the MLP rule's S x T = {rule_steps} steps would "
            f"take about {rule_steps * seconds_per_step / 3600:.1f} h of one CPU core at the "
            f"{seconds_per_step:.3f} s per step this training took",
        )
    hidden = (spec.width, spec.width) if spec.width else config.hidden
    inputs = OBS_DIM + (n_tasks if spec.kind == "generalist" else 0)
    out = n_tasks if spec.kind == "task_classifier" else ACTION_DIM
    widths = " -> ".join(str(w) for w in (inputs, *hidden, out))
    return f"MLP {widths}, ReLU", f"Adam lr {config.learning_rate}", config.budget_rule()


def write_card(
    exported: ExportedModel, folder: Path, feeds: Feeds, ctx: ExportContext
) -> ModelCard:
    """Measure latency (in the calling process, so not beside a training job) and write the card."""
    kind = exported.spec.kind
    architecture, optimiser, budget_rule = describe_training(
        exported.spec, ctx.train_config, len(ctx.tasks),
        exported.seconds / max(exported.steps, 1))
    inputs, outputs = tensor_specs(kind, len(ctx.tasks))
    card = ModelCard(
        name=exported.spec.name,
        kind=kind,
        version=exported.onnx_sha256[:16],
        onnx_sha256=exported.onnx_sha256,
        panel=ctx.panel,
        task_order=list(ctx.tasks),
        inputs=inputs,
        outputs=outputs,
        observation_fields=list(OBSERVATION_FIELDS),
        action_fields=list(ACTION_FIELDS),
        normalisation=NORMALISATION,
        architecture=architecture,
        parameter_count=exported.parameter_count,
        onnx_max_abs_difference_to_torch=exported.max_abs_difference,
        training=TrainingRecord(
            inputs_key=exported.inputs_key,
            dataset_hash=ctx.dataset_hash,
            norm_stats_hash=ctx.norm_stats_hash,
            trained_on=list(exported.spec.tasks),
            steps=exported.steps,
            batch_size=ctx.train_config.batch_size,
            optimiser=optimiser,
            loss="cross-entropy" if kind == "task_classifier" else "MSE to clean expert action",
            seed=ctx.train_config.seed,
            seconds=exported.seconds,
            final_loss=exported.final_loss,
            budget_rule=budget_rule,
        ),
        latency=measure_latency(folder / "model.onnx", feeds, ctx.latency_calls),
    )
    write_json(folder / "model_card.json", card)
    return card
