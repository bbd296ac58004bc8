"""The built-artifact manifest (`build/models/<panel>/manifest.json`) as pydantic models.

Loading checks everything the model repository depends on before anything is written, and every
failure names the file and the field: a wrong manifest must not become a Triton load error later.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

import onnx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

ModelKind = Literal["generalist", "specialist", "task_classifier"]
M = TypeVar("M", bound=BaseModel)


class ArtifactError(ValueError):
    """A manifest, model card, norm-stats or ONNX file is missing or wrong."""


def task_id(task: str) -> str:
    return task.replace("-", "_")


class _Frozen(BaseModel):
    # Unknown keys are allowed so the builder can add provenance without breaking this reader.
    model_config = ConfigDict(frozen=True, extra="ignore")


class ActionBounds(_Frozen):
    low: list[float] = Field(min_length=1)
    high: list[float] = Field(min_length=1)

    @model_validator(mode="after")
    def _ordered(self) -> ActionBounds:
        if len(self.low) != len(self.high):
            raise ValueError("low and high must have the same length")
        if not all(math.isfinite(x) for x in (*self.low, *self.high)):
            raise ValueError("bounds must be finite")
        if any(lo > hi for lo, hi in zip(self.low, self.high, strict=True)):
            raise ValueError("every low must be <= high")
        return self


class ModelEntry(_Frozen):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    kind: ModelKind
    tasks: list[str] = Field(min_length=1)
    onnx: str = Field(min_length=1)
    card: str = Field(min_length=1)
    version: str | None = None  # when given, must match the model card's


class Manifest(_Frozen):
    panel: str = Field(min_length=1)
    tasks: list[str] = Field(min_length=1)
    obs_dim: int = Field(gt=0)
    action_dim: int = Field(gt=0)
    action_bounds: ActionBounds
    dataset_hash: str = Field(min_length=1)
    norm_stats: str = "norm_stats.json"
    models: list[ModelEntry] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        if len(set(self.tasks)) != len(self.tasks):
            raise ValueError("tasks: duplicate task")
        if len(self.action_bounds.low) != self.action_dim:
            raise ValueError(f"action_bounds: need {self.action_dim} values (action_dim)")
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise ValueError("models: duplicate name")
        generalists = [m for m in self.models if m.kind == "generalist"]
        if not any(m.name == "generalist" for m in generalists):
            raise ValueError("models: need the generalist (a model named 'generalist')")
        for m in generalists:  # the width sweep and the large generalist serve every task too
            if m.tasks != self.tasks:
                raise ValueError(f"models: generalist {m.name}'s tasks must equal tasks, in order")
        for i, m in enumerate(self.models):
            if m.kind == "specialist":
                if len(m.tasks) != 1 or m.tasks[0] not in self.tasks:
                    raise ValueError(f"models.{i}.tasks: a specialist serves one known task")
                if m.name != f"specialist_{task_id(m.tasks[0])}":
                    raise ValueError(f"models.{i}.name: must be specialist_{task_id(m.tasks[0])}")
        return self


class ModelCard(_Frozen):
    version: str = Field(min_length=1)


class NormStats(_Frozen):
    mean: list[float] = Field(min_length=1)
    std: list[float] = Field(min_length=1)


@dataclass(frozen=True)
class Policy:
    entry: ModelEntry
    onnx_path: Path
    version: str


@dataclass(frozen=True)
class Artifacts:
    root: Path
    manifest: Manifest
    norm_stats_path: Path
    policies: tuple[Policy, ...]  # the generalist first, then specialists in manifest order


def _describe(exc: ValidationError) -> str:
    return "; ".join(
        f"field '{'.'.join(str(p) for p in e['loc']) or '(root)'}': {e['msg']}"
        for e in exc.errors()
    )


def _load(path: Path, model: type[M], what: str) -> M:
    if not path.is_file():
        raise ArtifactError(f"{path}: {what} not found")
    try:
        return model.model_validate(json.loads(path.read_text()))
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{path}: not valid JSON: {exc}") from exc
    except ValidationError as exc:
        raise ArtifactError(f"{path}: {_describe(exc)}") from exc


def _check_onnx(path: Path, field: str, inputs: dict[str, int], output_dim: int) -> None:
    """The graph must take exactly `inputs` ({name: width}) and give `action` [B, output_dim]."""
    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception as exc:  # onnx raises several types for a corrupt file
        raise ArtifactError(f"{path} ({field}): not a readable ONNX model: {exc}") from exc

    def width(value: onnx.ValueInfoProto) -> int | None:
        dims = value.type.tensor_type.shape.dim
        return dims[-1].dim_value if dims and dims[-1].HasField("dim_value") else None

    found = {i.name: width(i) for i in graph.input}
    if found != inputs:
        raise ArtifactError(f"{path} ({field}): inputs {found}, expected {inputs} ([B, width])")
    outputs = {o.name: width(o) for o in graph.output}
    # An exporter may leave the output width symbolic; only a known wrong width is an error.
    if "action" not in outputs or outputs["action"] not in (output_dim, None):
        raise ArtifactError(
            f"{path} ({field}): outputs {outputs}, expected action [B, {output_dim}]"
        )


def load_artifacts(root: Path) -> Artifacts:
    manifest_path = root / "manifest.json"
    manifest = _load(manifest_path, Manifest, "manifest")

    stats_path = root / manifest.norm_stats
    stats = _load(stats_path, NormStats, "norm stats (manifest field 'norm_stats')")
    for field, values in (("mean", stats.mean), ("std", stats.std)):
        if len(values) != manifest.obs_dim:
            raise ArtifactError(f"{stats_path}: field '{field}': {manifest.obs_dim} values needed")
        if not all(math.isfinite(v) for v in values):
            raise ArtifactError(f"{stats_path}: field '{field}': values must be finite")
    if not all(s > 0 for s in stats.std):
        raise ArtifactError(f"{stats_path}: field 'std': values must be > 0")

    policies: list[Policy] = []
    ordered = sorted(manifest.models, key=lambda m: m.kind != "generalist")
    for entry in ordered:
        if entry.kind == "task_classifier":
            continue  # the router runs the classifier itself; Triton serves policies only
        i = manifest.models.index(entry)
        onnx_path = root / entry.onnx
        card_path = root / entry.card
        if not onnx_path.is_file():
            raise ArtifactError(f"{manifest_path}: field 'models.{i}.onnx': {onnx_path} not found")
        if not card_path.is_file():
            raise ArtifactError(f"{manifest_path}: field 'models.{i}.card': {card_path} not found")
        inputs = {"obs_norm": manifest.obs_dim}
        if entry.kind == "generalist":
            inputs["task_onehot"] = len(manifest.tasks)
        _check_onnx(onnx_path, f"models.{i}.onnx", inputs, manifest.action_dim)
        card = _load(card_path, ModelCard, f"model card (manifest field 'models.{i}.card')")
        if entry.version is not None and entry.version != card.version:
            raise ArtifactError(
                f"{manifest_path}: field 'models.{i}.version': {entry.version} does not match "
                f"{card_path} version {card.version} (stale manifest?)"
            )
        policies.append(Policy(entry=entry, onnx_path=onnx_path, version=card.version))
    return Artifacts(
        root=root, manifest=manifest, norm_stats_path=stats_path, policies=tuple(policies)
    )
