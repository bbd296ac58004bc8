"""Helpers for the model-repository tests: a pb_utils stand-in and an in-process reference.

`triton_python_backend_utils` exists only inside Triton's stub process, where the stub adds its
C++ classes (Tensor, InferenceRequest, InferenceResponse, TritonError, Logger) to the pure-Python
file shipped with the python backend. The stand-in loads that same file from the nvidia-pytriton
wheel and adds small Python versions of those classes, so `execute` runs in-process unchanged.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
import sysconfig
import types
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from google.protobuf import json_format

from policies.serving import configs
from policies.serving.manifest import load_artifacts

PB_UTILS = "triton_python_backend_utils"


class TritonError(Exception):
    UNKNOWN, INTERNAL, NOT_FOUND, INVALID_ARG, UNAVAILABLE, UNSUPPORTED, ALREADY_EXISTS = range(7)
    CANCELLED = 7

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self._message, self._code = message, code

    def message(self) -> str:
        return self._message

    def code(self) -> int:
        return self._code


class Tensor:
    def __init__(self, name: str, array: npt.NDArray[Any]) -> None:
        # The real Tensor copies from a C-contiguous numeric buffer; refuse what it would refuse.
        if not isinstance(array, np.ndarray) or not array.flags.c_contiguous:
            raise TypeError(f"Tensor {name}: need a C-contiguous numpy array")
        self._name, self._array = name, array

    def name(self) -> str:
        return self._name

    def as_numpy(self) -> npt.NDArray[Any]:
        return self._array


class InferenceRequest:
    def __init__(self, inputs: list[Tensor]) -> None:
        self._inputs = inputs

    def inputs(self) -> list[Tensor]:
        return self._inputs


class InferenceResponse:
    def __init__(self, output_tensors: list[Tensor], error: TritonError | None = None) -> None:
        self._outputs, self._error = output_tensors, error

    def output_tensors(self) -> list[Tensor]:
        return self._outputs

    def has_error(self) -> bool:
        return self._error is not None

    def error(self) -> TritonError | None:
        return self._error


class Logger:
    messages: list[str] = []  # noqa: RUF012 - shared log, inspected by tests

    @classmethod
    def log_info(cls, message: str) -> None:
        cls.messages.append(message)

    log_warn = log_error = log_verbose = log_info


def _pb_utils_standin() -> types.ModuleType:
    shipped = (
        Path(sysconfig.get_paths()["purelib"])
        / "pytriton/tritonserver/backends/python/triton_python_backend_utils.py"
    )
    spec = importlib.util.spec_from_file_location(PB_UTILS, shipped)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for cls in (TritonError, Tensor, InferenceRequest, InferenceResponse, Logger):
        setattr(module, cls.__name__, cls)
    return module


def install_standin() -> tuple[types.ModuleType, dict[str, types.ModuleType]]:
    """Put the stand-in in sys.modules and (re)import the three model modules against it."""
    sys.modules[PB_UTILS] = pb = _pb_utils_standin()
    names = ("preprocess", "policy", "postprocess")
    modules = {n: importlib.reload(importlib.import_module(f"policies.serving.{n}")) for n in names}
    return pb, modules


@dataclass(frozen=True)
class Serving:
    """The three model.py modules, importable against the stand-in, plus a generated repo."""

    pb: types.ModuleType
    modules: Mapping[str, types.ModuleType]  # preprocess, policy, postprocess
    repository: Path

    def load(self, model: str) -> Any:
        """`TritonPythonModel` of `<repository>/<model>`, initialised as Triton would."""
        config = configs.parse((self.repository / model / "config.pbtxt").read_text())
        # Triton hands model.py its config as JSON with proto field names (int64 as strings).
        as_json = json.dumps(json_format.MessageToDict(config, preserving_proto_field_name=True))
        kind = "policy" if model.startswith("policy_") else model
        instance = self.modules[kind].TritonPythonModel()
        instance.initialize(
            {
                "model_config": as_json,
                "model_name": model,
                "model_version": "1",
                "model_repository": str(self.repository / model),
            }
        )
        return instance

    def request(self, **inputs: npt.ArrayLike) -> InferenceRequest:
        return InferenceRequest(
            [Tensor(k, np.ascontiguousarray(v, dtype=np.float32)) for k, v in inputs.items()]
        )


class Reference:
    """The ensemble computed in-process: normalise -> ONNX Runtime -> clip to the bounds."""

    def __init__(self, artifacts: Path) -> None:
        loaded = load_artifacts(artifacts)
        self.manifest = loaded.manifest
        stats = json.loads(loaded.norm_stats_path.read_text())
        self.mean = np.asarray(stats["mean"], dtype=np.float64)
        self.std = np.asarray(stats["std"], dtype=np.float64)
        self.low = np.asarray(self.manifest.action_bounds.low, dtype=np.float32)
        self.high = np.asarray(self.manifest.action_bounds.high, dtype=np.float32)
        self.versions = {p.entry.name: p.version for p in loaded.policies}
        # The MLP generalist and, where built, the width sweep and the transformer generalist.
        self.generalists = {p.entry.name for p in loaded.policies if p.entry.kind == "generalist"}
        self.sessions = {
            p.entry.name: ort.InferenceSession(str(p.onnx_path), providers=["CPUExecutionProvider"])
            for p in loaded.policies
        }

    @property
    def ensembles(self) -> list[str]:
        return sorted(self.sessions)

    def onehot(self, rows: int, task_index: int = 0) -> npt.NDArray[np.float32]:
        onehot = np.zeros((rows, len(self.manifest.tasks)), dtype=np.float32)
        onehot[:, task_index] = 1.0
        return onehot

    def observations(self, rows: int, seed: int = 0) -> npt.NDArray[np.float32]:
        rng = np.random.default_rng(seed)
        return (self.mean + self.std * rng.normal(size=(rows, self.mean.size))).astype(np.float32)

    def inputs(self, ensemble: str, obs: npt.NDArray[np.float32]) -> dict[str, Any]:
        """The ensemble's inputs for `obs` (a generalist: task 0 one-hot)."""
        inputs: dict[str, Any] = {"observation": obs}
        if ensemble in self.generalists:
            inputs["task_onehot"] = self.onehot(obs.shape[0])
        return inputs

    def action(self, ensemble: str, inputs: Mapping[str, Any]) -> npt.NDArray[np.float32]:
        feeds = {"obs_norm": ((inputs["observation"] - self.mean) / self.std).astype(np.float32)}
        if "task_onehot" in inputs:
            feeds["task_onehot"] = inputs["task_onehot"]
        raw = self.sessions[ensemble].run(["action"], feeds)[0]
        return np.clip(raw, self.low, self.high)


def infer(client: Any, module: Any, ensemble: str, inputs: Mapping[str, Any]) -> Any:
    """One KServe v2 request: `module` is tritonclient.grpc or tritonclient.http."""
    tensors = []
    for name, value in inputs.items():
        tensor = module.InferInput(name, list(value.shape), "FP32")
        tensor.set_data_from_numpy(np.ascontiguousarray(value, dtype=np.float32))
        tensors.append(tensor)
    result = client.infer(ensemble, tensors, outputs=[module.InferRequestedOutput("action")])
    return np.asarray(result.as_numpy("action"))
