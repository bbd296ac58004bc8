from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np

from policies.demos import DatasetManifest, DemoSpec, collect_dataset, load_dataset, verify_dataset
from policies.panel import expert_action, make_expert


def test_labels_are_clean_expert_actions_and_execution_is_noisy(
    tiny_dataset: tuple[Path, DatasetManifest],
) -> None:
    folder, manifest = tiny_dataset
    for task, arrays in load_dataset(folder, manifest).items():
        expert = make_expert(task)
        recomputed = np.stack([expert_action(expert, o.astype(np.float64)) for o in arrays["obs"]])
        # obs are stored as float32, the expert saw float64: its gains amplify the rounding.
        np.testing.assert_allclose(arrays["action"], recomputed, atol=1e-3)
        assert np.abs(arrays["executed_action"] - arrays["action"]).mean() > 0.1
        for name in ("action", "executed_action"):
            assert arrays[name].min() >= -1.0 and arrays[name].max() <= 1.0
        assert arrays["obs"].dtype == np.float32 and arrays["obs"].shape[1] == 39


def test_manifest_records_every_attempt_and_keeps_only_successes(
    tiny_dataset: tuple[Path, DatasetManifest], tiny_demo_spec: DemoSpec
) -> None:
    folder, manifest = tiny_dataset
    arrays = load_dataset(folder, manifest)
    for entry in manifest.tasks:
        kept = [e for e in entry.episodes if e.kept]
        assert all(e.success for e in kept)
        assert entry.demos == len(kept) == tiny_demo_spec.demos_per_task
        assert entry.attempts == len(entry.episodes)
        assert entry.transitions == sum(e.steps for e in kept) == len(arrays[entry.task]["obs"])
        assert all(e.steps <= tiny_demo_spec.max_steps for e in entry.episodes)


def test_rerun_with_same_inputs_skips_and_reproduces_the_hash(
    tiny_dataset: tuple[Path, DatasetManifest], tiny_demo_spec: DemoSpec, tmp_path: Path
) -> None:
    folder, manifest = tiny_dataset
    again, skipped = collect_dataset(folder, tiny_demo_spec)
    assert skipped and again.dataset_hash == manifest.dataset_hash
    fresh, skipped = collect_dataset(tmp_path / "fresh", tiny_demo_spec)
    assert not skipped and fresh.dataset_hash == manifest.dataset_hash  # deterministic


def test_hash_changes_when_data_changes(
    tiny_dataset: tuple[Path, DatasetManifest], tiny_demo_spec: DemoSpec, tmp_path: Path
) -> None:
    folder, manifest = tiny_dataset
    other, _ = collect_dataset(tmp_path / "seed1", replace(tiny_demo_spec, seed=1))
    assert other.dataset_hash != manifest.dataset_hash

    tampered = tmp_path / "tampered"
    shutil.copytree(folder, tampered)
    entry = manifest.tasks[0]
    with np.load(tampered / entry.file) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["action"][0, 0] += 0.5
    np.savez(tampered / entry.file, **arrays)
    assert verify_dataset(tampered, tiny_demo_spec) is None
    rebuilt, skipped = collect_dataset(tampered, tiny_demo_spec)
    assert not skipped and rebuilt.dataset_hash == manifest.dataset_hash
