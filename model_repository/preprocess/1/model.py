"""Triton python-backend model `preprocess`: observation -> obs_norm = (obs - mean) / std.

Copied to `<repository>/preprocess/1/model.py`; `norm_stats.json` ({"mean": [...], "std": [...]})
sits beside it. A request with a non-finite observation gets its own error naming the row and
index; the other requests of the same batch are answered normally.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import triton_python_backend_utils as pb_utils

INPUT = "observation"
OUTPUT = "obs_norm"
NORM_STATS_FILE = "norm_stats.json"

FloatArray = npt.NDArray[np.float32]


def first_non_finite(rows: FloatArray) -> tuple[int, int] | None:
    """(row, index) of the first NaN/Inf in a [rows, dim] array, or None if all are finite."""
    bad = np.argwhere(~np.isfinite(rows))
    if bad.size == 0:
        return None
    return int(bad[0][0]), int(bad[0][1])


def _invalid(message: str) -> Any:
    return pb_utils.InferenceResponse(
        output_tensors=[], error=pb_utils.TritonError(message, pb_utils.TritonError.INVALID_ARG)
    )


def _reject(problem: str, obs: FloatArray, at: tuple[int, int]) -> Any:
    row, col = at
    return _invalid(f"{problem}: row {row} index {col} is {obs[row, col]}")


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        output_config = pb_utils.get_output_config_by_name(config, OUTPUT)
        self._out_dtype = pb_utils.triton_string_to_numpy(output_config["data_type"])
        self._dim = dim = int(pb_utils.get_input_config_by_name(config, INPUT)["dims"][-1])

        stats_path = Path(args["model_repository"]) / args["model_version"] / NORM_STATS_FILE
        stats = json.loads(stats_path.read_text())
        # float64, as the training code normalises: obs_norm matches training to the last bit.
        mean = np.asarray(stats["mean"], dtype=np.float64)
        std = np.asarray(stats["std"], dtype=np.float64)
        # Fail loading rather than serve garbage: a zero std would turn every request into Inf.
        if mean.shape != (dim,) or std.shape != (dim,):
            raise ValueError(f"{stats_path}: mean/std must have {dim} values")
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std)) and np.all(std > 0)):
            raise ValueError(f"{stats_path}: mean/std must be finite and std > 0")
        self._mean, self._std = mean, std

    def execute(self, requests: list[Any]) -> list[Any]:
        responses: list[Any] = [None] * len(requests)
        valid: list[tuple[int, FloatArray]] = []
        for i, request in enumerate(requests):
            tensor = pb_utils.get_input_tensor_by_name(request, INPUT)
            if tensor is None:
                responses[i] = _invalid(f"missing input '{INPUT}'")
                continue
            # Triton has checked the shape against the config: [rows, dim] with rows >= 1.
            obs = np.asarray(tensor.as_numpy(), dtype=np.float32).reshape(-1, self._dim)
            bad = first_non_finite(obs)
            if bad is not None:
                responses[i] = _reject("non-finite observation", obs, bad)
                continue
            valid.append((i, obs))

        if valid:
            try:
                # One vectorised pass over every valid row of the batch, split back per request.
                rows = np.concatenate([obs for _, obs in valid])
                with np.errstate(over="ignore", invalid="ignore"):  # overflow is checked below
                    normed = ((rows - self._mean) / self._std).astype(self._out_dtype)
                offsets = np.cumsum([obs.shape[0] for _, obs in valid])[:-1]
                for (i, obs), part in zip(valid, np.split(normed, offsets), strict=True):
                    # A finite but huge value can overflow float32 once divided by a small std.
                    overflow = first_non_finite(part)
                    if overflow is not None:
                        responses[i] = _reject("observation out of range", obs, overflow)
                        continue
                    out = pb_utils.Tensor(OUTPUT, part)
                    responses[i] = pb_utils.InferenceResponse(output_tensors=[out])
            except Exception as exc:  # raising out of execute would fail every request
                for i, _ in valid:
                    responses[i] = pb_utils.InferenceResponse(
                        output_tensors=[], error=pb_utils.TritonError(f"preprocess failed: {exc}")
                    )
        return responses

    def finalize(self) -> None:
        pass
