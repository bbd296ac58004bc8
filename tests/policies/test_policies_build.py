from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from policies.build import BuildOptions, build
from policies.card import ModelCard
from policies.jsonio import read_json
from policies.offline_eval import COMBINED_POLICY
from policies.panel import Panel

# About 10 s on the 2-core dev machine (two real Meta-World tasks, closed-loop episodes).
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(
    tmp_path_factory: pytest.TempPathFactory, tiny_panel: Panel, tiny_build_options: BuildOptions
) -> Path:
    out = tmp_path_factory.mktemp("models")
    report = build(tiny_panel, out, tiny_build_options)
    assert not any(report.skipped.values())
    return out


def test_build_writes_the_documented_layout(built: Path, tiny_panel: Panel) -> None:
    manifest = read_json(built / "manifest.json")
    assert manifest["panel"] == "tiny" and manifest["tasks"] == list(tiny_panel.tasks)
    assert manifest["obs_dim"] == 39 and manifest["action_dim"] == 4
    assert manifest["action_bounds"] == {"low": [-1.0] * 4, "high": [1.0] * 4}
    assert set(read_json(built / manifest["norm_stats"])) == {"mean", "std"}
    names = [m["name"] for m in manifest["models"]]
    assert names == [
        "generalist",
        "specialist_reach_v3",
        "specialist_pick_place_v3",
        "task_classifier",
    ]
    for model in manifest["models"]:
        assert (built / model["onnx"]).is_file()
        card = ModelCard.model_validate(read_json(built / model["card"]))
        assert card.version == model["version"] and card.offline_success
    assert (
        read_json(built / "dataset" / "manifest.json")["dataset_hash"] == manifest["dataset_hash"]
    )


def test_matrix_covers_every_policy_on_every_task(built: Path, tiny_panel: Panel) -> None:
    rows = json.loads((built / "offline_matrix.json").read_text())["rows"]
    cells = {(r["task"], r["policy"]) for r in rows}
    policies = {"generalist", "specialist_reach_v3", "specialist_pick_place_v3", COMBINED_POLICY}
    assert cells == {(t, p) for t in tiny_panel.tasks for p in policies}
    assert all(r["episodes"] == 2 for r in rows)


def test_rerun_skips_every_stage_and_touches_nothing(
    built: Path, tiny_panel: Panel, tiny_build_options: BuildOptions
) -> None:
    before = {p: p.stat().st_mtime_ns for p in built.rglob("*") if p.is_file()}
    report = build(tiny_panel, built, tiny_build_options)
    assert report.skipped and all(report.skipped.values())
    assert {p: p.stat().st_mtime_ns for p in built.rglob("*") if p.is_file()} == before


def test_changed_training_budget_retrains_but_reuses_demos(
    built: Path, tiny_panel: Panel, tiny_build_options: BuildOptions, tmp_path: Path
) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(built, copy)
    options = replace(tiny_build_options, steps_per_specialist=21)
    report = build(tiny_panel, copy, options)
    assert report.skipped["demonstrations"]
    assert not report.skipped["train:generalist"] and not report.skipped["offline_eval"]


def test_interrupted_build_keeps_the_models_it_finished(
    built: Path, tiny_panel: Panel, tiny_build_options: BuildOptions, tmp_path: Path
) -> None:
    """Cards are written after every model is trained; a build stopped before that (a panel30
    build at a session's end) must not train again what it had finished."""
    copy = tmp_path / "copy"
    shutil.copytree(built, copy)
    onnx = copy / "generalist" / "model.onnx"
    trained = onnx.read_bytes()
    (copy / "generalist" / "model_card.json").unlink()  # as if stopped before the cards
    report = build(tiny_panel, copy, tiny_build_options)
    assert report.skipped["train:generalist"]  # not trained again ...
    assert onnx.read_bytes() == trained
    card = ModelCard.model_validate(read_json(copy / "generalist" / "model_card.json"))
    assert card.onnx_sha256 == ModelCard.model_validate(  # ... and carded as before
        read_json(built / "generalist" / "model_card.json")).onnx_sha256
    # A record that does not match its ONNX is no proof of training: trained again.
    (copy / "specialist_reach_v3" / "model_card.json").unlink()
    (copy / "specialist_reach_v3" / "model.onnx").write_bytes(b"not the exported model")
    assert not build(tiny_panel, copy, tiny_build_options).skipped["train:specialist_reach_v3"]
