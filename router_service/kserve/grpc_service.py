"""`inference.GRPCInferenceService` (KServe v2 gRPC, tritonclient's generated messages) on the
router's gRPC port: ServerLive, ServerReady, ModelReady, ServerMetadata, ModelMetadata,
ModelConfig and ModelInfer. Any other method of the service answers UNIMPLEMENTED (grpc's
own answer for a method no handler registers).

Every method parses its request with a deserializer that never raises: bytes that are not the
message are the client's mistake (INVALID_ARGUMENT naming `request`), not grpc's INTERNAL
"Exception deserializing request!". The call deadline is the request's budget.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

import grpc
from google.protobuf.json_format import ParseDict
from google.protobuf.message import DecodeError
from tritonclient.grpc import model_config_pb2, service_pb2

from router_service.deadlines import grpc_call_budget_ms
from router_service.engine import ActEngine, ActInput, ActReply
from router_service.errors import InvalidRequest, RouterError
from router_service.http_api.responses import note_error
from router_service.kserve import models
from router_service.kserve.models import MODEL_VERSION, OUTPUT, SERVER_METADATA, catalogue
from router_service.kserve.params import call_params, grpc_values
from router_service.kserve.service import act_input, kserve_error, reply_parameters, serve
from router_service.kserve.tensors import (
    FP32,
    Observation,
    action_tensor,
    check_input,
    check_outputs,
    from_raw,
    from_values,
)

SERVICE_NAME = "inference.GRPCInferenceService"
Context: TypeAlias = grpc.aio.ServicerContext
Handler = Callable[[Any, Context], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Malformed:
    reason: str


def _parser(message: Any) -> Callable[[bytes], Any]:
    def parse(raw: bytes) -> Any:
        try:
            return message.FromString(raw)
        except DecodeError as exc:
            return Malformed(f"not a valid {message.DESCRIPTOR.full_name}: {exc}")
    return parse


def _authorization(context: Context) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            return str(value)
    return None


def _observation(request: Any, state_dim: int) -> Observation:
    inputs, raw = request.inputs, request.raw_input_contents
    if not inputs:
        raise InvalidRequest("inputs: missing input 'observation'", field="inputs")
    batched = False
    for i, tensor in enumerate(inputs):
        batched = check_input(i, tensor.name, tensor.datatype, list(tensor.shape), state_dim)
        if i > 0:  # a second input that is `observation` again
            raise InvalidRequest(f"inputs[{i}].name: 'observation' is given twice",
                                 field=f"inputs[{i}].name")
    if raw:
        if len(raw) != len(inputs):
            raise InvalidRequest(f"raw_input_contents: {len(raw)} entries for {len(inputs)} "
                                 "inputs (one per input, in order)", field="raw_input_contents")
        return from_raw(raw[0], state_dim, batched, "raw_input_contents[0]")
    values = inputs[0].contents.fp32_contents
    if not values:
        raise InvalidRequest("raw_input_contents: no data for 'observation' (send it in "
                             "raw_input_contents[0] or contents.fp32_contents)",
                             field="raw_input_contents")
    return from_values(list(values), state_dim, batched, "observation.contents.fp32_contents")


def _response(request: Any, reply: ActReply, batched: bool) -> Any:
    values, shape = action_tensor(reply.action, batched)
    response = service_pb2.ModelInferResponse(model_name=request.model_name,
                                              model_version=MODEL_VERSION, id=request.id)
    out = response.outputs.add()
    out.name, out.datatype = OUTPUT, FP32
    out.shape.extend(shape)
    response.raw_output_contents.append(values.tobytes())
    for name, value in reply_parameters(reply).items():
        param = response.parameters[name]
        if isinstance(value, bool):
            param.bool_param = value
        elif isinstance(value, str):
            param.string_param = value
        else:
            param.double_param = value
    return response


class KServeServicer:
    def __init__(self, engine: ActEngine) -> None:
        self.engine = engine
        self.rt = engine.rt
        self.keys = engine.keys  # one set of keys (and rate buckets) for every transport

    async def ServerLive(self, request: Any, context: Context) -> Any:
        return service_pb2.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: Context) -> Any:
        return service_pb2.ServerReadyResponse(ready=models.server_ready(self.rt))

    async def ModelReady(self, request: Any, context: Context) -> Any:
        # As Triton: an unknown model is "not ready", not an error (probes only ask yes/no).
        view = catalogue(self.rt).models.get(request.name)
        ready = (view is not None and request.version in ("", MODEL_VERSION)
                 and models.model_ready(self.rt, view))
        return service_pb2.ModelReadyResponse(ready=ready)

    async def ServerMetadata(self, request: Any, context: Context) -> Any:
        return service_pb2.ServerMetadataResponse(**SERVER_METADATA)

    async def ModelMetadata(self, request: Any, context: Context) -> Any:
        self.keys.robot(_authorization(context))  # the contract's routes are for robots
        view = catalogue(self.rt).model(request.name, request.version)
        return ParseDict(view.metadata, service_pb2.ModelMetadataResponse())

    async def ModelConfig(self, request: Any, context: Context) -> Any:
        self.keys.robot(_authorization(context))
        view = catalogue(self.rt).model(request.name, request.version)
        return service_pb2.ModelConfigResponse(
            config=ParseDict(view.config, model_config_pb2.ModelConfig()))

    async def ModelInfer(self, request: Any, context: Context) -> Any:
        received_at = time.monotonic()
        queued_s = self.rt.loop_lag.queued_s
        key = self.keys.robot(_authorization(context))

        def prepare() -> tuple[ActInput, bool]:
            cat = catalogue(self.rt)
            view = cat.model(request.model_name, request.model_version)
            obs = _observation(request, cat.active.contract.spec.state_dim)
            check_outputs([o.name for o in request.outputs])
            params = call_params(grpc_values(request.parameters))
            remaining = context.time_remaining()  # may be <= 0: the engine says expired
            call_ms = (None if remaining is None else grpc_call_budget_ms(
                remaining, time.monotonic() - received_at + queued_s))
            return act_input(view, obs, params, key, received_at, queued_s, call_ms), obs.batched

        reply, batched = await serve(self.engine, prepare)
        return _response(request, reply, batched)

    def guarded(self, method: Handler) -> Handler:
        """Malformed bytes and router errors become the KServe status, naming the field."""
        async def call(request: Any, context: Context) -> Any:
            try:
                if isinstance(request, Malformed):
                    raise InvalidRequest(f"request: {request.reason}", field="request")
                return await method(request, context)
            except RouterError as exc:
                note_error(self.rt.metrics, exc)
                err = kserve_error(exc)
                await context.abort(grpc.StatusCode[err.grpc_code], err.message,
                                    trailing_metadata=(
                                        ("field", err.field or ""),
                                        ("retry-after-ms", f"{err.retry_after_ms or 0:.0f}")))
                raise AssertionError("unreachable") from exc  # abort raises
        return call


_METHODS = {
    "ServerLive": (service_pb2.ServerLiveRequest, service_pb2.ServerLiveResponse),
    "ServerReady": (service_pb2.ServerReadyRequest, service_pb2.ServerReadyResponse),
    "ModelReady": (service_pb2.ModelReadyRequest, service_pb2.ModelReadyResponse),
    "ServerMetadata": (service_pb2.ServerMetadataRequest, service_pb2.ServerMetadataResponse),
    "ModelMetadata": (service_pb2.ModelMetadataRequest, service_pb2.ModelMetadataResponse),
    "ModelConfig": (service_pb2.ModelConfigRequest, service_pb2.ModelConfigResponse),
    "ModelInfer": (service_pb2.ModelInferRequest, service_pb2.ModelInferResponse),
}


def add_kserve_service(server: grpc.aio.Server, engine: ActEngine) -> None:
    """Register the service on the router's gRPC server (grpc_api/server.py)."""
    servicer = KServeServicer(engine)
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(
            servicer.guarded(getattr(servicer, name)), request_deserializer=_parser(req),
            response_serializer=resp.SerializeToString)
        for name, (req, resp) in _METHODS.items()
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME,
                                                                           handlers),))
