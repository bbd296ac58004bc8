from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from policies.card import ModelCard
from policies.export import (
    EQUIVALENCE_TOLERANCE,
    ExportContext,
    example_inputs,
    export_checked,
    session,
    write_card,
)
from policies.jsonio import read_json, sha256_file
from policies.train import (
    ModelSpec,
    PanelTensors,
    TrainConfig,
    model_specs,
    parameter_count,
    train_model,
)

CONFIG = TrainConfig(steps_per_specialist=20)
EXPECTED_NAMES = {
    "generalist": (["obs_norm", "task_onehot"], ["action"]),
    "specialist": (["obs_norm"], ["action"]),
    "task_classifier": (["obs_norm"], ["task_probs"]),
}


def _spec(kind: str, tasks: tuple[str, ...]) -> ModelSpec:
    return next(s for s in model_specs(tasks) if s.kind == kind)


@pytest.mark.parametrize("kind", ["generalist", "specialist", "task_classifier"])
def test_onnx_matches_torch_with_documented_names(
    kind: str, tiny_tensors: PanelTensors, tmp_path: Path
) -> None:
    spec = _spec(kind, tiny_tensors.tasks)
    trained = train_model(spec, tiny_tensors, CONFIG)
    feeds = example_inputs(spec.kind, tiny_tensors, seed=0, rows=64)
    exported = export_checked(trained, tmp_path / spec.name, feeds, inputs_key="k")
    path = tmp_path / spec.name / "model.onnx"
    assert exported.max_abs_difference <= EQUIVALENCE_TOLERANCE
    assert exported.onnx_sha256 == sha256_file(path)

    graph = onnx.load(str(path)).graph
    inputs, outputs = EXPECTED_NAMES[kind]
    assert [i.name for i in graph.input] == inputs
    assert [o.name for o in graph.output] == outputs
    for value in (*graph.input, *graph.output):
        batch = value.type.tensor_type.shape.dim[0]
        assert batch.dim_param == "batch" and not batch.HasField("dim_value")
        assert value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT

    sess = session(path)
    for batch in (1, 7, 64):  # the batch axis really is dynamic
        part = {name: feeds[name][:batch] for name in inputs}
        got = sess.run(None, part)[0]
        with torch.no_grad():
            want = trained.module(*(torch.from_numpy(part[n]) for n in inputs)).numpy()
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
        if kind == "task_classifier":
            np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)
        else:
            assert got.shape == (batch, 4) and np.abs(got).max() <= 1.0


def test_model_card_describes_the_model(tiny_tensors: PanelTensors, tmp_path: Path) -> None:
    spec = _spec("generalist", tiny_tensors.tasks)
    trained = train_model(spec, tiny_tensors, CONFIG)
    feeds = example_inputs(spec.kind, tiny_tensors, seed=0, rows=32)
    exported = export_checked(trained, tmp_path / spec.name, feeds, inputs_key="key")
    ctx = ExportContext("tiny", tiny_tensors.tasks, "dhash", "nhash", CONFIG, latency_calls=20)
    card = write_card(exported, tmp_path / spec.name, feeds, ctx)

    stored = ModelCard.model_validate(read_json(tmp_path / spec.name / "model_card.json"))
    assert stored == card
    assert card.version == sha256_file(tmp_path / spec.name / "model.onnx")[:16]
    assert card.parameter_count == parameter_count(trained.module)
    assert card.training.steps == CONFIG.steps_per_specialist * len(tiny_tensors.tasks)
    assert card.training.dataset_hash == "dhash" and "S x T" in card.training.budget_rule
    assert card.latency.calls == 20 and 0 < card.latency.median_ms <= card.latency.p99_ms
    assert [f.name for f in card.observation_fields][:2] == ["hand_pos", "gripper_opening"]
    assert card.observation_fields[-1].stop == 39 and card.action_fields[-1].stop == 4
    assert all(f.low == [-1.0] * (f.stop - f.start) for f in card.action_fields)
    assert card.task_order == list(tiny_tensors.tasks)


def test_training_is_deterministic_for_a_seed(tiny_tensors: PanelTensors) -> None:
    spec = _spec("specialist", tiny_tensors.tasks)
    first = train_model(spec, tiny_tensors, CONFIG).module.state_dict()
    second = train_model(spec, tiny_tensors, CONFIG).module.state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)
