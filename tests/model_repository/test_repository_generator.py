"""`python -m policies.repository`: layout, configs, determinism, and clear artifact errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from policies.repository import generate
from policies.serving.manifest import ArtifactError

REPO_ROOT = Path(__file__).resolve().parents[2]
SPECIALISTS = ["specialist_peg_insert_side_v3", "specialist_pick_place_v3", "specialist_reach_v3"]
ENSEMBLES = ["generalist", *SPECIALISTS]
MODELS = sorted(["preprocess", "postprocess", *ENSEMBLES, *(f"policy_{e}" for e in ENSEMBLES)])


def _configs(repo: Path) -> dict[str, mc.ModelConfig]:
    return {
        p.parent.name: text_format.Parse(p.read_text(), mc.ModelConfig())
        for p in sorted(repo.glob("*/config.pbtxt"))
    }


def _snapshot(repo: Path) -> dict[str, bytes]:
    files = sorted(p for p in repo.rglob("*") if p.is_file())
    return {str(p.relative_to(repo)): p.read_bytes() for p in files}


@pytest.fixture
def artifacts(tmp_path: Path, standin_artifacts: Path) -> Path:
    """A private copy of the stand-in artifacts that a test may break."""
    return Path(shutil.copytree(standin_artifacts, tmp_path / "artifacts"))


def test_cpu_repository_layout_and_configs(standin_repository: Path) -> None:
    configs = _configs(standin_repository)
    assert sorted(configs) == MODELS
    for name in ("preprocess", "postprocess", *(f"policy_{e}" for e in ENSEMBLES)):
        assert (standin_repository / name / "1" / "model.py").is_file()
        config = configs[name]
        assert config.backend == "python" and config.max_batch_size == 64
        assert [g.kind for g in config.instance_group] == [mc.ModelInstanceGroup.KIND_CPU]
        assert config.HasField("dynamic_batching")
        delay = config.dynamic_batching.max_queue_delay_microseconds
        assert 0 < delay <= 1000 if name.startswith("policy_") else delay == 0
    assert (standin_repository / "preprocess/1/norm_stats.json").is_file()
    assert json.loads(configs["postprocess"].parameters["action_low"].string_value)[0] == -0.5
    for ensemble in ENSEMBLES:
        config = configs[ensemble]
        assert config.platform == "ensemble" and config.max_batch_size == 64
        assert (standin_repository / ensemble / "1").is_dir()
        assert (standin_repository / f"policy_{ensemble}/1/model.onnx").is_file()
        steps = [s.model_name for s in config.ensemble_scheduling.step]
        assert steps == ["preprocess", f"policy_{ensemble}", "postprocess"]
        assert [o.name for o in config.output] == ["action"]
        version = config.parameters["policy_version"].string_value
        assert version.startswith(f"{ensemble}-standin-")
    assert [i.name for i in configs["generalist"].input] == ["observation", "task_onehot"]
    assert [i.name for i in configs["specialist_reach_v3"].input] == ["observation"]
    assert "fault_file" in configs["policy_specialist_reach_v3"].parameters
    assert not (standin_repository / "task_classifier").exists()


def test_gpu_flavour_uses_onnxruntime_platform(tmp_path: Path, standin_artifacts: Path) -> None:
    out = tmp_path / "gpu"
    generate(standin_artifacts, out, "gpu")
    configs = _configs(out)
    assert sorted(configs) == MODELS
    for ensemble in ENSEMBLES:
        policy = configs[f"policy_{ensemble}"]
        assert policy.platform == "onnxruntime_onnx" and not policy.backend
        assert [g.kind for g in policy.instance_group] == [mc.ModelInstanceGroup.KIND_GPU]
        assert "fault_file" not in policy.parameters
        assert sorted(p.name for p in (out / f"policy_{ensemble}/1").iterdir()) == ["model.onnx"]
    assert configs["preprocess"].backend == "python"
    with pytest.raises(ValueError, match="flavour cpu"):
        generate(standin_artifacts, tmp_path / "x", "gpu", tmp_path / "faults")


def test_regenerating_is_deterministic(tmp_path: Path, standin_artifacts: Path) -> None:
    out = tmp_path / "repo"
    assert generate(standin_artifacts, out).written
    first = _snapshot(out)
    changes = generate(standin_artifacts, out)
    assert changes.written == [] and changes.removed == []
    assert _snapshot(out) == first
    other = tmp_path / "other"
    generate(standin_artifacts, other)
    assert _snapshot(other) == first


def test_stale_models_and_files_are_removed(tmp_path: Path, artifacts: Path) -> None:
    out = tmp_path / "repo"
    generate(artifacts, out, "cpu", tmp_path / "faults")
    (out / "README.md").write_text("kept: not a model directory")
    (out / "preprocess/1/leftover.txt").write_text("stale")
    manifest = json.loads((artifacts / "manifest.json").read_text())
    manifest["models"] = [m for m in manifest["models"] if m["name"] != "specialist_reach_v3"]
    (artifacts / "manifest.json").write_text(json.dumps(manifest))
    changes = generate(artifacts, out)  # also drops the fault_file parameter
    assert not (out / "specialist_reach_v3").exists()
    assert not (out / "policy_specialist_reach_v3").exists()
    assert not (out / "preprocess/1/leftover.txt").exists()
    assert (out / "README.md").exists()
    assert "fault_file" not in (out / "policy_generalist/config.pbtxt").read_text()
    assert out / "specialist_reach_v3" in changes.removed


def _edit_manifest(change: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    def apply(artifacts: Path) -> None:
        manifest = json.loads((artifacts / "manifest.json").read_text())
        change(manifest)
        (artifacts / "manifest.json").write_text(json.dumps(manifest))

    return apply


def _set(path: str, value: Any) -> Callable[[Path], None]:
    *parents, leaf = path.split(".")

    def change(manifest: dict[str, Any]) -> None:
        node: Any = manifest
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        if value is None:
            del node[int(leaf) if leaf.isdigit() else leaf]
        else:
            node[int(leaf) if leaf.isdigit() else leaf] = value

    return _edit_manifest(change)


def _remove(relative: str) -> Callable[[Path], None]:
    return lambda artifacts: (artifacts / relative).unlink()


def _write(relative: str, text: str) -> Callable[[Path], None]:
    return lambda artifacts: (artifacts / relative).write_text(text)


BROKEN = {
    "missing field": (_set("obs_dim", None), r"manifest.json: field 'obs_dim': Field required"),
    "wrong type": (_set("action_dim", "four"), r"manifest.json: field 'action_dim'"),
    "bounds length": (_set("action_bounds.low", [0.0]), r"manifest.json: .*'action_bounds'"),
    "model field": (_set("models.1.onnx", None), r"manifest.json: field 'models.1.onnx'"),
    "bad kind": (_set("models.0.kind", "expert"), r"manifest.json: field 'models.0.kind'"),
    "not json": (_write("manifest.json", "{"), r"manifest.json: not valid JSON"),
    "no manifest": (_remove("manifest.json"), r"manifest.json: manifest not found"),
    "missing weights": (
        _remove("specialist_reach_v3/model.onnx"),
        r"manifest.json: field 'models.\d.onnx': .*specialist_reach_v3/model.onnx not found",
    ),
    "missing card": (
        _remove("generalist/model_card.json"),
        r"manifest.json: field 'models.0.card': .*generalist/model_card.json not found",
    ),
    "card without version": (
        _write("generalist/model_card.json", '{"name": "generalist"}'),
        r"generalist/model_card.json: field 'version': Field required",
    ),
    "norm stats width": (
        _write("norm_stats.json", '{"mean": [0.0], "std": [1.0]}'),
        r"norm_stats.json: field 'mean': 39 values needed",
    ),
    "zero std": (
        _write("norm_stats.json", json.dumps({"mean": [0.0] * 39, "std": [0.0] * 39})),
        r"norm_stats.json: field 'std': values must be > 0",
    ),
    "stale version": (
        _set("models.0.version", "0123"),
        r"manifest.json: field 'models.0.version': 0123 does not match .*generalist/model_card",
    ),
    "generalist tasks": (
        _set("tasks", ["reach-v3", "pick-place-v3"]),
        r"manifest.json: field '\(root\)'.*generalist's tasks",
    ),
    "corrupt onnx": (
        _write("specialist_reach_v3/model.onnx", "not onnx"),
        r"specialist_reach_v3/model.onnx \(models.\d.onnx\): not a readable ONNX model",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_artifacts_fail_naming_file_and_field(
    case: str, tmp_path: Path, artifacts: Path
) -> None:
    breaker, message = BROKEN[case]
    breaker(artifacts)
    out = tmp_path / "repo"
    with pytest.raises(ArtifactError, match=message):
        generate(artifacts, out)
    assert not out.exists()  # nothing is written from broken artifacts


def test_onnx_that_does_not_match_the_manifest(tmp_path: Path, artifacts: Path) -> None:
    generalist = artifacts / "generalist/model.onnx"
    shutil.copy(artifacts / "specialist_reach_v3/model.onnx", generalist)
    with pytest.raises(ArtifactError, match=r"generalist/model.onnx \(models.0.onnx\): inputs"):
        generate(artifacts, tmp_path / "repo")


def test_cli_reports_errors_and_writes_repository(tmp_path: Path, artifacts: Path) -> None:
    cli = [sys.executable, "-m", "policies.repository", "--artifacts", str(artifacts)]
    done = subprocess.run(
        [*cli, "--out", str(tmp_path / "ok")], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "ok/generalist/config.pbtxt").is_file()
    (artifacts / "generalist/model_card.json").unlink()
    done = subprocess.run(
        [*cli, "--out", str(tmp_path / "bad")], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "generalist/model_card.json not found" in done.stderr
    assert "Traceback" not in done.stderr


def test_no_generated_serving_code_is_tracked_by_git() -> None:
    """Model repositories are generated into build/ (both flavours): git holds each served file
    once, at its source in policies/serving/, and a repository written anywhere is ignored."""
    done = subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"not a git checkout: {done.stderr.decode().strip()}")
    tracked = [Path(p) for p in done.stdout.decode().split("\0") if p]
    sources = {f.read_bytes(): f.name for f in (REPO_ROOT / "policies" / "serving").glob("*.py")}
    copies = [str(p) for p in tracked
              if p.parts[:2] != ("policies", "serving") and p.suffix in (".py", ".pbtxt")
              and (p.name == "config.pbtxt" or (REPO_ROOT / p).read_bytes() in sources)]
    assert copies == []
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", "--stdin"], cwd=REPO_ROOT, capture_output=True,
        text=True, input="model_repository/preprocess/1/model.py\n"
        "deploy/gpu/model_repository/generalist/config.pbtxt\n"
        "build/model_repository/ci/preprocess/1/model.py\n")
    assert len(ignored.stdout.split()) == 3

