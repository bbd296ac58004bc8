"""gRPC front end (port 50051): `Act`, `StreamAct` and the standard health service, on the same
engine as HTTP. The caller's gRPC deadline is the request's budget."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from router_client.proto import router_pb2, router_pb2_grpc

from router_service.auth import ApiKeys
from router_service.engine import ActEngine, ActInput, ActReply
from router_service.errors import ClientError, InvalidRequest, Overloaded, RouterError
from router_service.settings import RouterSettings

SERVICE_NAME = "robotrouter.v1.PolicyRouter"


def _authorization(context: grpc.aio.ServicerContext) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            return str(value)
    return None


def _to_input(req: router_pb2.ActRequest, context: grpc.aio.ServicerContext,
              received_at: float) -> ActInput:
    deadline_ms: float | None = req.deadline_ms if req.deadline_ms > 0 else None
    remaining = context.time_remaining()
    if deadline_ms is None and remaining is not None:
        deadline_ms = remaining * 1000  # may be <= 0: the engine rejects an expired deadline
    return ActInput(
        robot_id=req.robot_id, episode_id=req.episode_id, task=req.task or None,
        state=list(req.observation.state), deadline_ms=deadline_ms, received_at=received_at,
    )


def _to_proto(reply: ActReply, sequence: int) -> router_pb2.ActResponse:
    return router_pb2.ActResponse(
        action=reply.action, route=reply.route, policy_version=reply.policy_version,
        task=reply.task, task_source=reply.task_source, task_confidence=reply.task_confidence,
        fallback=reply.fallback or "", deadline_met=reply.deadline_met,
        timing_ms=router_pb2.Timing(scoring_ms=reply.timing_ms["scoring"],
                                    upstream_ms=reply.timing_ms["upstream"],
                                    total_ms=reply.timing_ms["total"]),
        decision_id=reply.decision_id, reason=reply.reason, sequence=sequence,
    )


def _error(exc: RouterError) -> router_pb2.Error:
    code = exc.grpc_code if isinstance(exc, ClientError | Overloaded) else "INTERNAL"
    return router_pb2.Error(
        code=code, message=exc.message, field=exc.field or "",
        retry_after_ms=exc.retry_after_ms if isinstance(exc, Overloaded) else 0.0,
    )


class PolicyRouterServicer(router_pb2_grpc.PolicyRouterServicer):  # type: ignore[misc,unused-ignore]
    def __init__(self, engine: ActEngine, settings: RouterSettings) -> None:
        self.engine = engine
        self.settings = settings
        self.keys = ApiKeys.from_settings(settings)

    async def _act(self, req: router_pb2.ActRequest, context: grpc.aio.ServicerContext,
                   received_at: float) -> ActReply:
        rt = self.engine.rt
        try:
            self.engine.admit()
            if not req.robot_id or not req.episode_id:
                raise InvalidRequest("robot_id and episode_id are required",
                                     field="robot_id" if not req.robot_id else "episode_id")
        except RouterError as exc:
            self.engine.count_refusal(exc)
            raise
        rt.inflight += 1
        rt.metrics.inflight.inc()
        try:
            return await self.engine.act(_to_input(req, context, received_at))
        except RouterError as exc:
            self.engine.count_refusal(exc)
            raise
        finally:
            rt.inflight -= 1
            rt.metrics.inflight.dec()

    async def Act(self, request: router_pb2.ActRequest,
                  context: grpc.aio.ServicerContext) -> router_pb2.ActResponse:
        received_at = time.monotonic()
        try:
            self.keys.check_robot(_authorization(context))
            reply = await self._act(request, context, received_at)
        except RouterError as exc:
            self.engine.rt.metrics.errors.labels(kind=exc.code).inc()
            err = _error(exc)
            await context.abort(
                grpc.StatusCode[err.code], f"{err.field}: {err.message}" if err.field
                else err.message,
                trailing_metadata=(("field", err.field),
                                   ("retry-after-ms", f"{err.retry_after_ms:.0f}")),
            )
            raise AssertionError("unreachable") from exc  # abort raises
        return _to_proto(reply, request.sequence)

    async def StreamAct(
        self, request_iterator: AsyncIterator[router_pb2.ActRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[router_pb2.ActResponse]:
        try:
            self.keys.check_robot(_authorization(context))
        except RouterError as exc:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, exc.message)
        async for request in request_iterator:
            received_at = time.monotonic()
            try:
                reply = await self._act(request, context, received_at)
            except RouterError as exc:
                # One bad message must not end a robot's session: answer it with the error.
                self.engine.rt.metrics.errors.labels(kind=exc.code).inc()
                yield router_pb2.ActResponse(sequence=request.sequence, error=_error(exc))
                continue
            yield _to_proto(reply, request.sequence)


async def start_grpc_server(engine: ActEngine, settings: RouterSettings) -> grpc.aio.Server:
    server = grpc.aio.server(options=[
        ("grpc.max_receive_message_length", settings.max_body_bytes),
        ("grpc.so_reuseport", 0),
    ])
    router_pb2_grpc.add_PolicyRouterServicer_to_server(  # type: ignore[no-untyped-call,unused-ignore]
        PolicyRouterServicer(engine, settings), server
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    await health_servicer.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
    server.add_insecure_port(f"{settings.host}:{settings.grpc_port}")
    await server.start()
    return server
