"""The router's view of Triton (`Upstream`), and its KServe v2 gRPC implementation: the raw
`GRPCInferenceService` stub on one persistent `grpc.aio` channel per replica, with
`ModelInferRequest`s built straight from numpy bytes (`raw_input_contents`), not tritonclient's
per-call `InferInput` objects. The default upstream is HTTP (upstream_http.py), which costs
the router less than half the CPU per call; gRPC stays for deployments that only expose it
(and `upstream_stream.py` sends the same requests on one `ModelStreamInfer` stream).

A call carries a batch: `[N, state_dim]` observations (and `[N, tasks]` conditioning for the
generalist) become one Triton request, whose `[N, action_dim]` answer the batcher splits back.
The remaining budget becomes both the gRPC deadline (client side) and Triton's own request
timeout (server side), so a late request is dropped by whoever holds it first. gRPC errors are
converted here and nowhere else.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

import grpc
import numpy as np
from numpy.typing import NDArray
from tritonclient.grpc import service_pb2, service_pb2_grpc

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
_CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", 16 * 1024 * 1024),
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
]
_TIMEOUTS = (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED)
_UNAVAILABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.NOT_FOUND)


class Upstream(Protocol):
    async def infer(self, model: str, obs: NDArray[np.float32],
                    conditioning: NDArray[np.float32] | None, timeout_s: float
                    ) -> NDArray[np.float32]:
        """`[N, state_dim]` observations (+ `[N, tasks]` conditioning) → `[N, action_dim]`;
        raises `UpstreamError` (timeout, unavailable, rejected) and nothing else of its own."""
        ...

    async def server_ready(self, timeout_s: float = 2.0) -> bool | None:
        """True/False as Triton says; False when unreachable; None when the check timed out."""
        ...

    async def model_ready(self, model: str, timeout_s: float = 2.0) -> bool | None: ...

    async def policy_version(self, model: str, timeout_s: float = 1.0) -> str:
        """The ensemble's `policy_version` config parameter ("unknown" if absent)."""
        ...

    async def close(self) -> None: ...


def convert(exc: grpc.aio.AioRpcError, model: str) -> UpstreamError:
    message = f"{model}: {exc.code().name}: {exc.details()}"
    if exc.code() in _TIMEOUTS:
        return UpstreamTimeout(message)
    if exc.code() in _UNAVAILABLE:
        return UpstreamUnavailable(message)
    return UpstreamRejected(message)


def _tensor(request: service_pb2.ModelInferRequest, name: str, rows: NDArray[np.float32]) -> None:
    spec = request.inputs.add()
    spec.name, spec.datatype = name, "FP32"
    spec.shape.extend(rows.shape)
    request.raw_input_contents.append(np.ascontiguousarray(rows, dtype=np.float32).tobytes())


def inference_request(model: str, obs: NDArray[np.float32],
                      conditioning: NDArray[np.float32] | None, timeout_s: float
                      ) -> service_pb2.ModelInferRequest:
    """The request for one batch; `timeout` is Triton's own (server-side) request timeout."""
    request = service_pb2.ModelInferRequest(model_name=model)
    _tensor(request, OBSERVATION, obs)
    if conditioning is not None:
        _tensor(request, TASK_VECTOR, conditioning)
    request.outputs.add().name = ACTION
    request.parameters["timeout"].int64_param = max(1, int(timeout_s * 1e6))
    return request


class TritonUpstream:
    def __init__(self, url: str) -> None:
        self.url = url
        self._channel = grpc.aio.insecure_channel(url, options=_CHANNEL_OPTIONS)
        self._stub = service_pb2_grpc.GRPCInferenceServiceStub(self._channel)

    async def infer(
        self,
        model: str,
        obs: NDArray[np.float32],
        conditioning: NDArray[np.float32] | None,
        timeout_s: float,
    ) -> NDArray[np.float32]:
        """`[N, state_dim]` observations (+ `[N, tasks]` conditioning) → `[N, action_dim]`."""
        if timeout_s <= 0:
            raise UpstreamTimeout(f"{model}: no budget left to call")
        request = inference_request(model, obs, conditioning, timeout_s)
        try:
            # The event loop's timer, not the gRPC deadline, cuts the call: grpc.aio delivers
            # an expired deadline 1-3 ms late here, which is a missed control tick.
            async with asyncio.timeout(timeout_s):
                reply = await self._send(request, timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise convert(exc, model) from exc
        except TimeoutError as exc:
            raise UpstreamTimeout(f"{model}: timed out") from exc
        return self._action(model, reply, obs.shape[0])

    async def _send(self, request: service_pb2.ModelInferRequest, timeout_s: float
                    ) -> service_pb2.ModelInferResponse:
        """One unary call; its gRPC deadline is a backstop and tells Triton when to stop."""
        reply: service_pb2.ModelInferResponse = await self._stub.ModelInfer(
            request, timeout=timeout_s + GRPC_DEADLINE_SLACK_S)
        return reply

    @staticmethod
    def _action(model: str, reply: service_pb2.ModelInferResponse, rows: int
                ) -> NDArray[np.float32]:
        for i, out in enumerate(reply.outputs):
            if out.name == ACTION and i < len(reply.raw_output_contents):
                if out.datatype != "FP32" or len(out.shape) != 2 or out.shape[0] != rows:
                    raise UpstreamRejected(f"{model}: {ACTION!r} is {out.datatype}"
                                           f"{list(out.shape)}, expected FP32[{rows}, *]")
                flat = np.frombuffer(reply.raw_output_contents[i], dtype=np.float32)
                return flat.reshape(rows, int(out.shape[1]))
        raise UpstreamRejected(f"{model}: response has no {ACTION!r} output")

    async def _ready(self, call: object, request: object, timeout_s: float) -> bool | None:
        try:
            reply = await call(request, timeout=timeout_s)  # type: ignore[operator]
        except grpc.aio.AioRpcError as exc:
            return None if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED else False
        return bool(reply.ready)

    async def server_ready(self, timeout_s: float = 2.0) -> bool | None:
        """True/False as Triton says; False when it cannot be reached; None when the check
        itself timed out (a busy server is not a down one: callers keep what they knew)."""
        return await self._ready(self._stub.ServerReady, service_pb2.ServerReadyRequest(),
                                 timeout_s)

    async def model_ready(self, model: str, timeout_s: float = 2.0) -> bool | None:
        """As `server_ready`, for one model."""
        return await self._ready(self._stub.ModelReady,
                                 service_pb2.ModelReadyRequest(name=model), timeout_s)

    async def policy_version(self, model: str, timeout_s: float = 1.0) -> str:
        """The ensemble's `policy_version` config parameter ("unknown" if absent/unreachable)."""
        try:
            reply = await self._stub.ModelConfig(
                service_pb2.ModelConfigRequest(name=model), timeout=timeout_s)
        except grpc.aio.AioRpcError:
            return "unknown"
        param = reply.config.parameters.get("policy_version")
        return param.string_value if param is not None else "unknown"

    async def close(self) -> None:
        await self._channel.close()
