"""Session fixtures shared by the test suite: model artifacts and one real tritonserver.

`triton` generates a model repository (python backend, fault injection on every policy) into a
tmp dir from `build/models/ci` when `make models` has built it, else from small random-weight
stand-in artifacts, and starts the real tritonserver binary once per session on free ports.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from deploy.local.faults import FaultFile
from deploy.local.local_stack import LocalStack, StackOptions
from deploy.local.triton import TritonPorts
from policies.serving.manifest import Manifest, load_artifacts, task_id

# Redis, contracts and router processes: shared by router, client, evaluation and deploy tests.
pytest_plugins = ["tests.router_fixtures"]

REPO_ROOT = Path(__file__).resolve().parents[1]
CI_ARTIFACTS = REPO_ROOT / "build" / "models" / "ci"
STANDIN_TASKS = ("reach-v3", "pick-place-v3", "peg-insert-side-v3")
OBS_DIM, ACTION_DIM = 39, 4
# Narrower than tanh's [-1, 1] on three axes so the safety envelope really clips something.
STANDIN_LOW = [-0.5, -0.5, -0.5, -1.0]
STANDIN_HIGH = [0.5, 0.5, 0.5, 1.0]


def _mlp_onnx(path: Path, inputs: dict[str, int], out_name: str, out_dim: int, seed: int) -> None:
    """Random-weight MLP (concat -> 32 -> relu -> out -> tanh) with a dynamic batch axis."""
    rng = np.random.default_rng(seed)
    width = sum(inputs.values())
    w1 = rng.normal(0.0, 1.0 / np.sqrt(width), (width, 32)).astype(np.float32)
    w2 = rng.normal(0.0, 1.5 / np.sqrt(32), (32, out_dim)).astype(np.float32)
    b1 = rng.normal(0.0, 0.1, 32).astype(np.float32)
    b2 = rng.normal(0.0, 0.1, out_dim).astype(np.float32)
    weights = {"w1": w1, "b1": b1, "w2": w2, "b2": b2}
    names = list(inputs)
    nodes = []
    if len(names) > 1:
        nodes.append(helper.make_node("Concat", names, ["x"], axis=1))
    x = "x" if len(names) > 1 else names[0]
    last = "tanh_in" if out_name == "action" else "logits"
    nodes += [
        helper.make_node("Gemm", [x, "w1", "b1"], ["h"]),
        helper.make_node("Relu", ["h"], ["hr"]),
        helper.make_node("Gemm", ["hr", "w2", "b2"], [last]),
        helper.make_node("Tanh" if out_name == "action" else "Softmax", [last], [out_name]),
    ]
    graph = helper.make_graph(
        nodes,
        path.parent.name,
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["B", d]) for n, d in inputs.items()],
        [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, ["B", out_dim])],
        [numpy_helper.from_array(a, n) for n, a in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by any onnxruntime this project may pin
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


def write_standin_artifacts(root: Path, tasks: Sequence[str] = STANDIN_TASKS) -> Path:
    """Artifacts laid out as docs/interfaces.md says `make models` writes them, random weights."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    stats = {
        "mean": rng.normal(0.0, 0.3, OBS_DIM).round(4).tolist(),
        "std": rng.uniform(0.2, 2.0, OBS_DIM).round(4).tolist(),
    }
    (root / "norm_stats.json").write_text(json.dumps(stats))
    entries = [("generalist", "generalist", list(tasks))]
    entries += [(f"specialist_{task_id(t)}", "specialist", [t]) for t in tasks]
    entries += [("task_classifier", "task_classifier", list(tasks))]
    models = []
    for seed, (name, kind, model_tasks) in enumerate(entries):
        inputs = {"obs_norm": OBS_DIM}
        if kind == "generalist":
            inputs["task_onehot"] = len(tasks)
        out = ("task_probs", len(tasks)) if kind == "task_classifier" else ("action", ACTION_DIM)
        _mlp_onnx(root / name / "model.onnx", inputs, out[0], out[1], seed)
        card = {"name": name, "version": f"{name}-standin-{seed}", "tasks": model_tasks}
        (root / name / "model_card.json").write_text(json.dumps(card))
        models.append(
            {"name": name, "kind": kind, "tasks": model_tasks,
             "onnx": f"{name}/model.onnx", "card": f"{name}/model_card.json"}
        )
    manifest = {
        "panel": "standin",
        "tasks": list(tasks),
        "obs_dim": OBS_DIM,
        "action_dim": ACTION_DIM,
        "action_bounds": {"low": STANDIN_LOW, "high": STANDIN_HIGH},
        "dataset_hash": "standin",
        "norm_stats": "norm_stats.json",
        "models": models,
    }
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return root


@pytest.fixture(scope="session")
def standin_artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Read-only stand-in artifacts; tests that corrupt artifacts copy them first."""
    return write_standin_artifacts(tmp_path_factory.mktemp("artifacts"))


def served_artifacts(standin: Path) -> Path:
    """What the session's Triton serves: the real CI build when there is one."""
    return CI_ARTIFACTS if (CI_ARTIFACTS / "manifest.json").is_file() else standin


@dataclass(frozen=True)
class TritonServer:
    ports: TritonPorts
    repository: Path
    artifacts: Path
    fault_dir: Path
    log_path: Path

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.ports.http}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.ports.grpc}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.metrics}/metrics"

    @property
    def manifest(self) -> Manifest:
        return load_artifacts(self.artifacts).manifest

    def set_fault(
        self, policy_model: str, delay_ms: float = 0.0, delay_prob: float = 0.0,
        fail_prob: float = 0.0, nan_prob: float = 0.0,
    ) -> None:
        """Make `policy_<name>` sleep, fail or answer NaN from its next execute on."""
        FaultFile(self.fault_dir).set(policy_model, delay_ms, delay_prob, fail_prob, nan_prob)

    def clear_faults(self) -> None:
        FaultFile(self.fault_dir).clear()


@pytest.fixture(scope="session")
def triton(
    tmp_path_factory: pytest.TempPathFactory, standin_artifacts: Path
) -> Iterator[TritonServer]:
    """The stack's Triton alone (a `LocalStack` without Redis), on free ports."""
    stack = LocalStack(StackOptions(run_dir=tmp_path_factory.mktemp("triton"),
                                    artifacts=served_artifacts(standin_artifacts), redis=False))
    with stack:
        yield TritonServer(ports=stack.triton_ports, repository=stack.repository,
                           artifacts=served_artifacts(standin_artifacts),
                           fault_dir=stack.fault_dir, log_path=stack.run_dir / "tritonserver.log")


@pytest.fixture
def triton_faults(triton: TritonServer) -> Iterator[TritonServer]:
    """The session server, with every injected fault removed again after the test."""
    triton.clear_faults()
    yield triton
    triton.clear_faults()
