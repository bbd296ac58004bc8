"""Triton over KServe v2 gRPC (`tritonclient.grpc.aio`, one persistent channel per replica).

The remaining budget becomes both the gRPC deadline (client side) and Triton's own request
timeout (server side, honoured where the model's queue policy allows it), so a late request is
dropped by whoever holds it first. tritonclient errors are converted here and nowhere else.
"""

from __future__ import annotations

import asyncio

import numpy as np
import tritonclient.grpc.aio as triton_aio
from numpy.typing import NDArray
from tritonclient.grpc import InferInput, InferRequestedOutput
from tritonclient.utils import InferenceServerException

from router_service.errors import (
    UpstreamError,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)

OBSERVATION = "observation"
TASK_VECTOR = "task_onehot"
ACTION = "action"
GRPC_DEADLINE_SLACK_S = 0.005


def _convert(exc: InferenceServerException, model: str) -> UpstreamError:
    status = str(exc.status() or "")
    message = f"{model}: {exc.message()}"
    if "DEADLINE_EXCEEDED" in status or "CANCELLED" in status:
        return UpstreamTimeout(message)
    if "UNAVAILABLE" in status or "NOT_FOUND" in status:
        return UpstreamUnavailable(message)
    return UpstreamRejected(message)


class TritonUpstream:
    def __init__(self, url: str) -> None:
        self.url = url
        self._client = triton_aio.InferenceServerClient(url=url)
        self._outputs = [InferRequestedOutput(ACTION)]

    async def infer(
        self,
        model: str,
        state: NDArray[np.float32],
        task_vector: NDArray[np.float32] | None,
        timeout_s: float,
    ) -> NDArray[np.float32]:
        """One observation → one action. `state` and `task_vector` are 1-D float32."""
        if timeout_s <= 0:
            raise UpstreamTimeout(f"{model}: no budget left to call")
        obs = InferInput(OBSERVATION, [1, state.shape[0]], "FP32")
        obs.set_data_from_numpy(state.reshape(1, -1))
        inputs = [obs]
        if task_vector is not None:
            task = InferInput(TASK_VECTOR, [1, task_vector.shape[0]], "FP32")
            task.set_data_from_numpy(task_vector.reshape(1, -1))
            inputs.append(task)
        try:
            # The event loop's timer, not the gRPC deadline, cuts the call: grpc.aio delivers
            # an expired deadline 1-3 ms late here, which is a missed control tick. The gRPC
            # deadline stays as a backstop and tells Triton when to stop.
            async with asyncio.timeout(timeout_s):
                result = await self._client.infer(
                    model,
                    inputs,
                    outputs=self._outputs,
                    client_timeout=timeout_s + GRPC_DEADLINE_SLACK_S,
                    timeout=max(1, int(timeout_s * 1e6)),
                )
        except InferenceServerException as exc:
            raise _convert(exc, model) from exc
        except TimeoutError as exc:
            raise UpstreamTimeout(f"{model}: timed out") from exc
        action = result.as_numpy(ACTION)
        if action is None:
            raise UpstreamRejected(f"{model}: response has no {ACTION!r} output")
        return np.asarray(action[0], dtype=np.float32)

    async def server_ready(self, timeout_s: float = 2.0) -> bool | None:
        """True/False as Triton says; False when it cannot be reached; None when the check
        itself timed out (a busy server is not a down one: callers keep what they knew)."""
        try:
            return bool(await self._client.is_server_ready(client_timeout=timeout_s))
        except InferenceServerException as exc:
            return None if isinstance(_convert(exc, "health"), UpstreamTimeout) else False

    async def model_ready(self, model: str, timeout_s: float = 2.0) -> bool | None:
        """As `server_ready`, for one model."""
        try:
            return bool(await self._client.is_model_ready(model, client_timeout=timeout_s))
        except InferenceServerException as exc:
            return None if isinstance(_convert(exc, model), UpstreamTimeout) else False

    async def policy_version(self, model: str, timeout_s: float = 1.0) -> str:
        """The ensemble's `policy_version` config parameter ("unknown" if absent/unreachable)."""
        try:
            config = await self._client.get_model_config(model, client_timeout=timeout_s)
        except InferenceServerException:
            return "unknown"
        param = config.config.parameters.get("policy_version")
        return param.string_value if param is not None else "unknown"

    async def close(self) -> None:
        await self._client.close()
