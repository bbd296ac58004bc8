"""Triton python-backend model `postprocess`: the safety envelope on the policy's action.

Copied to `<repository>/postprocess/1/model.py`. The bounds come from the model config
parameters `action_low` and `action_high` (JSON lists, written by `policies.repository` from the
artifact manifest). A non-finite action is never clipped into range: that request gets its own
error, the rest of the batch is clipped and answered.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import numpy.typing as npt
import triton_python_backend_utils as pb_utils

INPUT = "action_raw"
OUTPUT = "action"

FloatArray = npt.NDArray[np.float32]


def parse_bounds(config: dict[str, Any], dim: int) -> tuple[FloatArray, FloatArray]:
    params = config.get("parameters", {})
    try:
        low = np.asarray(json.loads(params["action_low"]["string_value"]), dtype=np.float32)
        high = np.asarray(json.loads(params["action_high"]["string_value"]), dtype=np.float32)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"postprocess: parameters action_low/action_high missing: {exc}") from exc
    if low.shape != (dim,) or high.shape != (dim,) or not np.all(low <= high):
        raise ValueError(f"postprocess: action bounds must be {dim} values with low <= high")
    return low, high


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        output_config = pb_utils.get_output_config_by_name(config, OUTPUT)
        self._out_dtype = pb_utils.triton_string_to_numpy(output_config["data_type"])
        self._dim = int(output_config["dims"][-1])
        self._low, self._high = parse_bounds(config, self._dim)

    def execute(self, requests: list[Any]) -> list[Any]:
        responses: list[Any] = []
        for request in requests:
            tensor = pb_utils.get_input_tensor_by_name(request, INPUT)
            if tensor is None:
                responses.append(self._error(f"missing input '{INPUT}'"))
                continue
            action = np.asarray(tensor.as_numpy(), dtype=np.float32).reshape(-1, self._dim)
            bad = np.argwhere(~np.isfinite(action))
            if bad.size:
                row, col = int(bad[0][0]), int(bad[0][1])
                responses.append(
                    self._error(f"non-finite action: row {row} index {col} is {action[row, col]}")
                )
                continue
            clipped = np.clip(action, self._low, self._high).astype(self._out_dtype)
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor(OUTPUT, clipped)]))
        return responses

    @staticmethod
    def _error(message: str) -> Any:
        # INTERNAL, not INVALID_ARG: a bad action is the policy's fault, not the caller's.
        return pb_utils.InferenceResponse(
            output_tensors=[], error=pb_utils.TritonError(message, pb_utils.TritonError.INTERNAL)
        )

    def finalize(self) -> None:
        pass
