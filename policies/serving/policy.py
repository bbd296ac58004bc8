"""Triton python-backend model `policy_<name>`: one ONNX Runtime (CPU) run per execute call.

Copied to `<repository>/policy_<name>/1/model.py`; `model.onnx` sits beside it. The ONNX graph's
inputs decide the kind: a generalist takes `obs_norm` and `task_onehot`, a specialist `obs_norm`.
All requests of one `execute` call (what the dynamic batcher grouped) go through one
`session.run`, and the rows are split back per request.

Fault injection, for tests only: when the model config has the parameter `fault_file`, each
execute re-reads that JSON file if it changed, `{"delay_ms": float, "delay_prob": float,
"fail_prob": float, "nan_prob": float}`: it delays the call with `delay_prob` (drawn once per
execute: a straggler is one slow call, and drawn per request a batch that gathered behind one
would straggle in turn, with 1 - 0.97^k for k rows, so one 100 ms sleep held a 2-instance model
for hundreds of ms), and fails, or answers a NaN action (to exercise the postprocess safety
envelope), each request with those probabilities.
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import triton_python_backend_utils as pb_utils

MODEL_FILE = "model.onnx"
FAULT_FILE_PARAMETER = "fault_file"


@dataclass(frozen=True)
class FaultSpec:
    delay_ms: float = 0.0
    delay_prob: float = 0.0
    fail_prob: float = 0.0
    nan_prob: float = 0.0


@dataclass(frozen=True)
class Fault:
    fail: bool = False
    nan: bool = False


class FaultInjector:
    """Reads the fault file only when it changed (inode, size or mtime), so tests flip it live."""

    def __init__(self, path: Path, rng: random.Random | None = None) -> None:
        self.path = path
        self._rng = rng or random.Random()
        self._key: tuple[int, int, int] | None = None
        self._spec = FaultSpec()

    def current(self) -> FaultSpec:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._key, self._spec = None, FaultSpec()
            return self._spec
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        if key != self._key:
            self._key = key
            try:
                raw = json.loads(self.path.read_text())
                self._spec = FaultSpec(
                    delay_ms=float(raw.get("delay_ms", 0.0)),
                    delay_prob=float(raw.get("delay_prob", 0.0)),
                    fail_prob=float(raw.get("fail_prob", 0.0)),
                    nan_prob=float(raw.get("nan_prob", 0.0)),
                )
            except (OSError, ValueError, TypeError, AttributeError) as exc:
                # A half-written or malformed file injects nothing rather than breaking serving.
                pb_utils.Logger.log_warn(f"ignoring fault file {self.path}: {exc}")
                self._spec = FaultSpec()
        return self._spec

    def call_delay_s(self, spec: FaultSpec) -> float:
        """How long one execute call sleeps before it runs, whatever its batch size."""
        return spec.delay_ms / 1000.0 if self._rng.random() < spec.delay_prob else 0.0

    def draw(self, spec: FaultSpec) -> Fault:
        """What happens to one request."""
        return Fault(
            fail=self._rng.random() < spec.fail_prob,
            nan=self._rng.random() < spec.nan_prob,
        )


def _error(message: str, code: Any = None) -> Any:
    error = pb_utils.TritonError(message) if code is None else pb_utils.TritonError(message, code)
    return pb_utils.InferenceResponse(output_tensors=[], error=error)


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        self._name = args["model_name"]
        model_dir = Path(args["model_repository"]) / args["model_version"]

        options = ort.SessionOptions()
        # Triton's instances and the other models share a couple of cores: no ORT thread pools.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self._session = ort.InferenceSession(
            str(model_dir / MODEL_FILE), options, providers=["CPUExecutionProvider"]
        )
        self._inputs = [i.name for i in self._session.get_inputs()]
        self._onnx_output = self._session.get_outputs()[0].name
        for name in self._inputs:
            if pb_utils.get_input_config_by_name(config, name) is None:
                raise ValueError(f"{self._name}: ONNX input '{name}' is not in the model config")

        output_config = config["output"][0]
        self._output = str(output_config["name"])
        self._out_dtype = pb_utils.triton_string_to_numpy(output_config["data_type"])

        fault_file = config.get("parameters", {}).get(FAULT_FILE_PARAMETER, {}).get("string_value")
        self._faults = FaultInjector(Path(fault_file)) if fault_file else None

    def _read(self, request: Any) -> dict[str, npt.NDArray[np.float32]] | str:
        """The request's ONNX feeds, or an error message."""
        feeds: dict[str, npt.NDArray[np.float32]] = {}
        rows: int | None = None
        for name in self._inputs:
            tensor = pb_utils.get_input_tensor_by_name(request, name)
            if tensor is None:
                return f"missing input '{name}'"
            value = np.asarray(tensor.as_numpy(), dtype=np.float32)
            if not np.all(np.isfinite(value)):
                return f"non-finite '{name}'"
            if rows is not None and value.shape[0] != rows:
                return f"inputs have different batch sizes ({rows} vs {value.shape[0]})"
            rows = value.shape[0]
            feeds[name] = value
        return feeds

    def execute(self, requests: list[Any]) -> list[Any]:
        responses: list[Any] = [None] * len(requests)
        valid: list[tuple[int, dict[str, npt.NDArray[np.float32]], Fault]] = []
        spec = self._faults.current() if self._faults else FaultSpec()
        delay = self._faults.call_delay_s(spec) if self._faults else 0.0
        for i, request in enumerate(requests):
            feeds = self._read(request)
            if isinstance(feeds, str):
                responses[i] = _error(feeds, pb_utils.TritonError.INVALID_ARG)
                continue
            fault = self._faults.draw(spec) if self._faults else Fault()
            if fault.fail:
                message = f"{self._name}: injected failure (fail_prob={spec.fail_prob})"
                responses[i] = _error(message, pb_utils.TritonError.UNAVAILABLE)
                continue
            valid.append((i, feeds, fault))
        if delay > 0:
            time.sleep(delay)

        if valid:
            try:
                batch = {n: np.concatenate([f[n] for _, f, _ in valid]) for n in self._inputs}
                actions = self._session.run([self._onnx_output], batch)[0].astype(self._out_dtype)
                offsets = np.cumsum([f[self._inputs[0]].shape[0] for _, f, _ in valid])[:-1]
                for (i, _, fault), part in zip(valid, np.split(actions, offsets), strict=True):
                    if fault.nan:
                        part = np.full_like(part, np.nan)
                    out = pb_utils.Tensor(self._output, part)
                    responses[i] = pb_utils.InferenceResponse(output_tensors=[out])
            except Exception as exc:  # raising out of execute would fail every request
                for i, _, _ in valid:
                    responses[i] = _error(f"{self._name}: inference failed: {exc}")
        return responses

    def finalize(self) -> None:
        self._session = None
