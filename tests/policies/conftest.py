"""Fixtures for the policies tests: a two-task panel and tiny budgets so everything runs fast."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from policies.build import BuildOptions
from policies.demos import DatasetManifest, DemoSpec, collect_dataset, load_dataset
from policies.panel import Panel
from policies.train import NormStats, PanelTensors

TINY_TASKS = ("reach-v3", "pick-place-v3")  # the two fastest experts (~50 steps per episode)
CI_ARTIFACTS = Path(__file__).resolve().parents[2] / "build" / "models" / "ci"


@pytest.fixture(scope="session")
def ci_artifacts() -> Path:
    """The real ci build (`make test` builds it first)."""
    if not (CI_ARTIFACTS / "manifest.json").exists():
        pytest.skip("build/models/ci is missing: `make test` builds it (make models PANEL=ci)")
    return CI_ARTIFACTS


@pytest.fixture(scope="session")
def tiny_panel() -> Panel:
    return Panel("tiny", TINY_TASKS)


@pytest.fixture(scope="session")
def tiny_demo_spec(tiny_panel: Panel) -> DemoSpec:
    return DemoSpec(tiny_panel, demos_per_task=3, noise_std=0.3, seed=0)


@pytest.fixture(scope="session")
def tiny_dataset(
    tmp_path_factory: pytest.TempPathFactory, tiny_demo_spec: DemoSpec
) -> tuple[Path, DatasetManifest]:
    folder = tmp_path_factory.mktemp("dataset")
    manifest, skipped = collect_dataset(folder, tiny_demo_spec)
    assert not skipped
    return folder, manifest


@pytest.fixture(scope="session")
def tiny_tensors(tiny_dataset: tuple[Path, DatasetManifest]) -> PanelTensors:
    folder, manifest = tiny_dataset
    demos = load_dataset(folder, manifest)
    norm = NormStats.from_observations(np.concatenate([d["obs"] for d in demos.values()]))
    return PanelTensors.build(demos, norm)


@pytest.fixture(scope="session")
def tiny_build_options() -> BuildOptions:
    # Short horizon and a handful of steps: this checks plumbing and skipping, not learning.
    return BuildOptions(
        demos_per_task=2,
        steps_per_specialist=20,
        eval_episodes=2,
        max_steps=150,
        latency_calls=10,
        workers=1,
    )
