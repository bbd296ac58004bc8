"""gRPC front end (port 50051): `Act`, `StreamAct` and the standard health service, on the same
engine and admission path as HTTP. The caller's gRPC deadline is the request's budget.

With several worker processes (`ROUTER_WORKERS`), each binds the same port with SO_REUSEPORT
and the kernel spreads connections between them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from router_client.proto import router_pb2, router_pb2_grpc

from router_service.deadlines import grpc_call_budget_ms
from router_service.engine import ActEngine, ActInput, ActReply
from router_service.errors import ClientError, Overloaded, RouterError
from router_service.http_api.responses import note_error
from router_service.keys import RobotKey
from router_service.kserve.grpc_service import add_kserve_service
from router_service.settings import RouterSettings

SERVICE_NAME = "robotrouter.v1.PolicyRouter"


@dataclass(frozen=True)
class Malformed:
    """Bytes that are not an ActRequest: handed to the method instead of failing inside grpc,
    which would answer INTERNAL ("Exception deserializing request!") for a client's mistake."""

    reason: str


def parse_request(raw: bytes) -> router_pb2.ActRequest | Malformed:
    try:
        request: router_pb2.ActRequest = router_pb2.ActRequest.FromString(raw)
        return request
    except DecodeError as exc:
        return Malformed(f"not a valid {router_pb2.ActRequest.DESCRIPTOR.full_name}: {exc}")


MALFORMED_FIELD = "request"


def _authorization(context: grpc.aio.ServicerContext) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            return str(value)
    return None


def _to_input(req: router_pb2.ActRequest, context: grpc.aio.ServicerContext, key: RobotKey,
              received_at: float, queued_s: float) -> ActInput:
    deadline_ms: float | None = req.deadline_ms if req.deadline_ms > 0 else None
    remaining = context.time_remaining()
    if remaining is not None:  # may be <= 0: the engine rejects an expired deadline
        grpc_ms = grpc_call_budget_ms(remaining, time.monotonic() - received_at + queued_s)
        deadline_ms = grpc_ms if deadline_ms is None else min(deadline_ms, grpc_ms)
    return ActInput(
        robot_id=req.robot_id, episode_id=req.episode_id, task=req.task or None,
        state=list(req.observation.state), deadline_ms=deadline_ms,
        deadline_unix_ms=req.deadline_unix_ms if req.deadline_unix_ms > 0 else None,
        received_at=received_at, key=key, queued_s=queued_s,
    )


def _to_proto(reply: ActReply, sequence: int) -> router_pb2.ActResponse:
    t = reply.timing_ms
    return router_pb2.ActResponse(
        action=reply.action, route=reply.route, policy_version=reply.policy_version,
        task=reply.task, task_source=reply.task_source, task_confidence=reply.task_confidence,
        fallback=reply.fallback or "", deadline_met=reply.deadline_met,
        timing_ms=router_pb2.Timing(scoring_ms=t["scoring"], upstream_ms=t["upstream"],
                                    total_ms=t["total"], queued_ms=t["queued"]),
        decision_id=reply.decision_id, reason=reply.reason, sequence=sequence,
    )


def _error(exc: RouterError) -> router_pb2.Error:
    code = exc.grpc_code if isinstance(exc, ClientError | Overloaded) else "INTERNAL"
    return router_pb2.Error(
        code=code, message=exc.message, field=exc.field or "",
        retry_after_ms=exc.retry_after_ms or 0.0,
    )


class PolicyRouterServicer(router_pb2_grpc.PolicyRouterServicer):  # type: ignore[misc,unused-ignore]
    def __init__(self, engine: ActEngine, settings: RouterSettings) -> None:
        self.engine = engine
        self.settings = settings
        self.keys = engine.keys  # one set of keys (and rate buckets) for every transport

    async def _serve(self, req: router_pb2.ActRequest, context: grpc.aio.ServicerContext,
                     key: RobotKey) -> ActReply:
        received_at = time.monotonic()
        return await self.engine.serve(
            _to_input(req, context, key, received_at, self.engine.rt.loop_lag.queued_s))

    async def Act(self, request: router_pb2.ActRequest | Malformed,
                  context: grpc.aio.ServicerContext) -> router_pb2.ActResponse:
        if isinstance(request, Malformed):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                f"{MALFORMED_FIELD}: {request.reason}",
                                trailing_metadata=(("field", MALFORMED_FIELD),))
            raise AssertionError("unreachable")  # abort raises
        try:
            key = self.keys.robot(_authorization(context))
            reply = await self._serve(request, context, key)
        except RouterError as exc:
            note_error(self.engine.rt.metrics, exc)
            if context.done():
                # The client is gone (it cancelled, or its deadline passed while we worked):
                # nobody to answer, and aborting a finished call fails inside grpc, which logs
                # an ERROR with a traceback for every such call, the most costly thing a busy
                # router could do with a robot's abandoned request.
                raise asyncio.CancelledError from exc
            err = _error(exc)
            await context.abort(
                grpc.StatusCode[err.code], f"{err.field}: {err.message}" if err.field
                else err.message,
                trailing_metadata=(("field", err.field),
                                   ("retry-after-ms", f"{err.retry_after_ms:.0f}")),
            )
            raise AssertionError("unreachable") from exc  # abort raises
        if context.done():  # gone while we worked: sending would fail (and log) in grpc
            raise asyncio.CancelledError
        return _to_proto(reply, request.sequence)

    async def StreamAct(
        self, request_iterator: AsyncIterator[router_pb2.ActRequest | Malformed],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[router_pb2.ActResponse]:
        try:
            key = self.keys.robot(_authorization(context))
        except RouterError as exc:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, exc.message)
            raise AssertionError("unreachable") from exc  # abort raises
        async for request in request_iterator:
            if isinstance(request, Malformed):  # answered like any bad message: in the stream
                yield router_pb2.ActResponse(error=router_pb2.Error(
                    code="INVALID_ARGUMENT", message=request.reason, field=MALFORMED_FIELD))
                continue
            try:
                reply = await self._serve(request, context, key)
            except RouterError as exc:
                # One bad message must not end a robot's session: answer it with the error.
                note_error(self.engine.rt.metrics, exc)
                yield router_pb2.ActResponse(sequence=request.sequence, error=_error(exc))
                continue
            yield _to_proto(reply, request.sequence)


async def start_grpc_server(engine: ActEngine, settings: RouterSettings) -> grpc.aio.Server:
    server = grpc.aio.server(options=[
        ("grpc.max_receive_message_length", settings.max_body_bytes),
        # One process: a second router on the same port is a mistake and must fail to bind.
        ("grpc.so_reuseport", int(settings.workers > 1)),
    ])
    servicer = PolicyRouterServicer(engine, settings)
    serialize = router_pb2.ActResponse.SerializeToString
    # The generated add_PolicyRouterServicer_to_server, with a deserializer that never raises.
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, {
        "Act": grpc.unary_unary_rpc_method_handler(
            servicer.Act, request_deserializer=parse_request, response_serializer=serialize),
        "StreamAct": grpc.stream_stream_rpc_method_handler(
            servicer.StreamAct, request_deserializer=parse_request,
            response_serializer=serialize),
    }),))
    add_kserve_service(server, engine)  # KServe v2 / Triton's GRPCInferenceService
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    await health_servicer.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
    server.add_insecure_port(f"{settings.host}:{settings.grpc_port}")
    await server.start()
    return server
