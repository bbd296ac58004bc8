"""Triton directly (no router): the floor that router overhead is measured against.

gRPC (the default): KServe v2 `ModelInfer` on a `grpc.aio` channel. Requests are protobufs
serialised once per (task, pool row) and sent as bytes, so the per-request client cost is the
gRPC call itself; `tritonclient.grpc.aio` does the readiness checks. The call timeout is
`client_timeout_ms` (Triton has no notion of the robot's budget; latency past the budget is
still measured, not cut off).
HTTP: `POST /v2/models/<ensemble>/infer` with a pre-serialised KServe v2 JSON body.
"""

from __future__ import annotations

from typing import Any

import grpc
import httpx
import numpy as np
import tritonclient.grpc.aio as triton_aio
from tritonclient.grpc import service_pb2
from tritonclient.utils import InferenceServerException

from loadtest.scenario import Scenario
from loadtest.targets.base import (
    Outcome,
    PlanLists,
    TargetUnavailable,
    grpc_error_kind,
    http_error_kind,
)
from loadtest.targets.http_pool import HttpPools
from loadtest.targets.kserve import Bodies, BodyCache, EnsembleChoice, v2_json_body

DEFAULT_GRPC_URL = "127.0.0.1:8001"
DEFAULT_HTTP_URL = "http://127.0.0.1:8000"
_MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"
_JSON = {"content-type": "application/json"}


def infer_request_bytes(
    model: str, state: np.ndarray[Any, Any], onehot: list[float] | None
) -> bytes:
    req = service_pb2.ModelInferRequest(model_name=model)
    tensors: list[tuple[str, bytes, int]] = [
        ("observation", np.asarray(state, dtype="<f4").tobytes(), int(state.shape[0]))
    ]
    if onehot is not None:
        tensors.append(("task_onehot", np.asarray(onehot, dtype="<f4").tobytes(), len(onehot)))
    for name, raw, width in tensors:
        tensor = req.inputs.add()
        tensor.name = name
        tensor.datatype = "FP32"
        tensor.shape.extend([1, width])
        req.raw_input_contents.append(raw)
    req.outputs.add().name = "action"
    return bytes(req.SerializeToString())


class TritonGrpcTarget:
    name = "direct-triton-grpc"

    def __init__(
        self, scenario: Scenario, lists: PlanLists, choice: EnsembleChoice, url: str | None
    ) -> None:
        self.url = url or DEFAULT_GRPC_URL
        self.choice = choice
        self._bodies = BodyCache(lists, choice, infer_request_bytes)
        self._timeout_s = scenario.client_timeout_ms / 1000.0
        self._channel: grpc.aio.Channel | None = None
        self._call: Any = None

    async def start(self) -> None:
        self._channel = grpc.aio.insecure_channel(self.url)
        # request_serializer=None: the pre-serialised bytes go out as they are
        self._call = self._channel.unary_unary(
            _MODEL_INFER,
            request_serializer=None,
            response_deserializer=service_pb2.ModelInferResponse.FromString,
        )

    async def preflight(self) -> None:
        client = triton_aio.InferenceServerClient(self.url)
        try:
            if not await client.is_server_ready():
                raise TargetUnavailable(f"Triton at {self.url} is not ready")
            for model in sorted(set(self.choice.models)):
                if not await client.is_model_ready(model):
                    raise TargetUnavailable(f"Triton model {model!r} at {self.url} is not ready")
        except InferenceServerException as err:
            raise TargetUnavailable(f"Triton at {self.url}: {err}") from None
        finally:
            await client.close()

    async def send(self, i: int) -> Outcome:
        model, body = self._bodies.get(i)
        try:
            reply = await self._call(body, timeout=self._timeout_s)
        except grpc.aio.AioRpcError as err:
            name = err.code().name
            return Outcome(f"grpc_{name}", model, error_kind=grpc_error_kind(name), error_code=name)
        if not reply.raw_output_contents and not reply.outputs:
            return Outcome("bad_response", model, error_kind="bad_response")
        return Outcome("ok", model)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()


class JsonPostTarget:
    """POST a cached JSON body to `path_for(model)`; shared by direct-HTTP and the baseline."""

    name = "json-post"

    def __init__(
        self,
        scenario: Scenario,
        bodies: Bodies,
        url: str,
        path_template: str,
        ready_path: str,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._bodies = bodies
        self._paths = {m: path_template.format(model=m) for m in set(bodies.choice.models)}
        self._ready_path = ready_path
        self._robot = bodies.lists.robot
        self._pools = HttpPools(self.url, scenario, transport=transport)

    async def start(self) -> None:
        self._pools.start()

    async def preflight(self) -> None:
        try:
            resp = await self._pools.for_robot(0).get(self._ready_path)
        except httpx.HTTPError as err:
            raise TargetUnavailable(f"{self.url} unreachable: {err}") from None
        if resp.status_code != 200:
            raise TargetUnavailable(f"{self.url}{self._ready_path} answered {resp.status_code}")

    async def send(self, i: int) -> Outcome:
        model, body = self._bodies.get(i)
        client = self._pools.for_robot(self._robot[i])
        try:
            resp = await client.post(self._paths[model], content=body, headers=_JSON)
        except httpx.TimeoutException:
            return Outcome("client_timeout", model, error_kind="deadline")
        except httpx.TransportError:
            return Outcome("transport_error", model, error_kind="transport")
        if resp.status_code == 200:
            return Outcome("ok", model)
        code = resp.status_code
        return Outcome(f"http_{code}", model, error_kind=http_error_kind(code))

    async def close(self) -> None:
        await self._pools.close()


def triton_http_target(
    scenario: Scenario, lists: PlanLists, choice: EnsembleChoice, url: str | None
) -> JsonPostTarget:
    bodies = BodyCache(lists, choice, v2_json_body)
    target = JsonPostTarget(
        scenario, bodies, url or DEFAULT_HTTP_URL, "/v2/models/{model}/infer", "/v2/health/ready"
    )
    target.name = "direct-triton-http"
    return target
