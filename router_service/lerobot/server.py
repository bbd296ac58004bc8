"""LeRobot's `transport.AsyncInference` gRPC service (LeRobot 0.6.1's robot client), served by
the router's one admission path, `ActEngine.serve`. Off unless `ROUTER_LEROBOT_ENABLED=true`.

LeRobot's client sends no credentials: the service acts with one configured robot key
(`ROUTER_LEROBOT_KEY_ID` names it by key_id) for one robot (`ROUTER_LEROBOT_ROBOT_ID`), so
whoever can reach its port acts as that robot. It binds 127.0.0.1 unless told otherwise.

- `Ready`: a fresh session (and episode) for the calling peer only.
- `SendPolicyInstructions`: the pickled `RemotePolicyConfig`, checked; `actions_per_chunk` is
  how many `TimedAction`s each reply holds (the router's policies act one step at a time:
  the step's action, repeated). `policy_type` must be one LeRobot knows; it, the checkpoint
  path and the device are recorded and otherwise unused: the contract says what serves.
- `SendObservations`: a pickled `TimedObservation` in chunks, mapped to the router's state
  and task by the contract's `observation_mapping` (camera images are ignored), then queued
  or filtered as LeRobot's policy server does (sessions.py).
- `GetActions`: a long poll, at most `ROUTER_LEROBOT_POLL_S`, for the session's observation;
  the reply is the pickled chunk, or empty `data` (the client then asks again).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Callable

import grpc
from google.protobuf.message import DecodeError, Message

from router_service.auth import ANONYMOUS, ApiKeys
from router_service.deadlines import grpc_call_budget_ms
from router_service.engine import ActEngine, ActInput
from router_service.errors import (
    ClientError,
    InvalidRequest,
    Overloaded,
    PayloadTooLarge,
    RouterError,
)
from router_service.http_api.responses import note_error
from router_service.keys import KeyConfigError, RobotKey
from router_service.lerobot.messages import (
    decode_observation,
    decode_policy_config,
    encode_actions,
    reassemble,
)
from router_service.lerobot.proto import services_pb2
from router_service.lerobot.sessions import Session, Sessions
from router_service.observation_map import map_observation
from router_service.settings import RouterSettings

log = logging.getLogger("router_service.lerobot")
CHUNK_BYTES = 2 * 1024 * 1024  # lerobot.transport.utils.CHUNK_SIZE: the client's chunks
FPS = 30  # lerobot.async_inference.constants.DEFAULT_FPS: spacing of the chunk's timestamps
_KEY_ID = re.compile(r"^[0-9a-f]{8}$")
SERVICE_NAME = "transport.AsyncInference"
MALFORMED = "not a valid transport.{} message"


def lerobot_identity(settings: RouterSettings, keys: ApiKeys) -> RobotKey:
    """The key the service acts with; raises `KeyConfigError` naming the setting."""
    if keys.disabled:
        return ANONYMOUS
    wanted = settings.lerobot_key_id
    known = {k.key_id: k for k in keys.robot_keys}
    if wanted is None or not _KEY_ID.match(wanted) or wanted not in known:
        raise KeyConfigError(
            f"ROUTER_LEROBOT_KEY_ID: {wanted!r} is not the key_id of a configured robot key "
            f"(configured: {sorted(known)}); LeRobot's client sends no key, so the service "
            "acts with the one named here")
    key = known[wanted]
    if not key.covers(settings.lerobot_robot_id):
        raise KeyConfigError(f"ROUTER_LEROBOT_ROBOT_ID: key {wanted} does not cover robot "
                             f"{settings.lerobot_robot_id!r}")
    return key


class AsyncInferenceServicer:
    def __init__(self, engine: ActEngine, settings: RouterSettings, key: RobotKey) -> None:
        self.engine, self.settings, self.key = engine, settings, key
        self.sessions = Sessions()

    async def _fail(self, context: grpc.aio.ServicerContext, exc: RouterError) -> None:
        note_error(self.engine.rt.metrics, exc)
        if isinstance(exc, PayloadTooLarge):
            code = "RESOURCE_EXHAUSTED"
        else:
            code = exc.grpc_code if isinstance(exc, ClientError | Overloaded) else "INTERNAL"
        await context.abort(
            grpc.StatusCode[code], f"{exc.field}: {exc.message}" if exc.field else exc.message,
            trailing_metadata=(("field", exc.field or ""),
                               ("retry-after-ms", f"{exc.retry_after_ms or 0:.0f}")))
        raise AssertionError("unreachable") from exc  # abort raises

    async def _session(self, context: grpc.aio.ServicerContext) -> Session:
        session = self.sessions.get(context.peer())
        if session is None or session.instructions is None:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                                "call Ready and SendPolicyInstructions first")
            raise AssertionError("unreachable")  # abort raises
        return session

    async def Ready(self, request: services_pb2.Empty | None,
                    context: grpc.aio.ServicerContext) -> services_pb2.Empty:
        session = self.sessions.ready(context.peer())
        log.info("lerobot peer %s ready (episode %s)", session.peer, session.episode_id)
        return services_pb2.Empty()

    async def SendPolicyInstructions(self, request: services_pb2.PolicySetup | None,
                                     context: grpc.aio.ServicerContext) -> services_pb2.Empty:
        try:
            if request is None:
                raise InvalidRequest(MALFORMED.format("PolicySetup"), field="request")
            instructions = decode_policy_config(request.data)
            components = self.engine.rt.active.contract.spec.observation_mapping.state_components
            names = instructions.state_names
            missing = [c for c in components if names is not None and c not in names]
            if missing:
                raise InvalidRequest(
                    f"lerobot_features['observation.state'] has no {missing[0]!r}, which the "
                    "contract's observation_mapping.state_components needs",
                    field="lerobot_features")
        except RouterError as exc:
            await self._fail(context, exc)
        session = self.sessions.get_or_create(context.peer())
        session.instructions = instructions
        log.info("lerobot peer %s: %s", session.peer, instructions)
        return services_pb2.Empty()

    async def SendObservations(self, chunks: AsyncIterator[services_pb2.Observation | None],
                               context: grpc.aio.ServicerContext) -> services_pb2.Empty:
        session = await self._session(context)
        try:
            data = await reassemble(chunks, self.settings.lerobot_max_message_bytes)
            arrived_at = time.monotonic()
            observed = decode_observation(data)
            mapped = map_observation(observed.observation, self.engine.rt.active.contract)
        except RouterError as exc:
            await self._fail(context, exc)
        session.offer(observed, mapped, arrived_at, self.settings.lerobot_similar_atol)
        return services_pb2.Empty()

    async def GetActions(self, request: services_pb2.Empty | None,
                         context: grpc.aio.ServicerContext) -> services_pb2.Actions:
        asked_at = time.monotonic() - self.engine.rt.loop_lag.queued_s
        known = self.sessions.get(context.peer())
        if known is None or known.instructions is None:
            # The client asks again at once: wait out the poll so that is not a busy loop.
            await asyncio.sleep(self.settings.lerobot_poll_s)
        session = await self._session(context)
        instructions = session.instructions
        assert instructions is not None
        pending = await session.take(self.settings.lerobot_poll_s)
        if pending is None:
            return services_pb2.Actions()  # empty data: "nothing yet" to LeRobot's client
        observed = pending.observed
        remaining = context.time_remaining()
        # The step's clock starts once both the observation and the question were here; the
        # time since (this handler waking up late on a busy loop, say) is time it waited in
        # the router, measured rather than estimated from the loop's lag.
        now = time.monotonic()
        try:
            reply = await self.engine.serve(ActInput(
                robot_id=self.settings.lerobot_robot_id, episode_id=session.episode_id,
                task=pending.mapped.task, state=pending.mapped.state,
                deadline_ms=(grpc_call_budget_ms(remaining, 0.0) if remaining is not None
                             else None),
                deadline_unix_ms=None, received_at=now, key=self.key,
                queued_s=now - max(asked_at, pending.arrived_at)))
        except RouterError as exc:
            await self._fail(context, exc)
        # Labelled from the step after the observation's: LeRobot's client drops actions for
        # steps it has executed, and it executed the observation's own step before observing.
        n = instructions.actions_per_chunk
        data = encode_actions(observed.timestamp + 1 / FPS, 1 / FPS, observed.timestep + 1,
                              [reply.action] * n)
        session.sent(observed.timestep + n)
        return services_pb2.Actions(data=data)


def _parser(message: type[Message]) -> Callable[[bytes], Message | None]:
    """A deserializer that never raises: grpc would answer INTERNAL for a client's bytes that
    do not parse; the methods answer INVALID_ARGUMENT naming `request` instead."""
    def parse(raw: bytes) -> Message | None:
        try:
            return message.FromString(raw)
        except DecodeError:
            return None
    return parse


async def start_lerobot_server(engine: ActEngine, settings: RouterSettings) -> grpc.aio.Server:
    key = lerobot_identity(settings, engine.keys)
    server = grpc.aio.server(options=[
        # One chunk (LeRobot's client sends at most CHUNK_BYTES of data in each) plus framing;
        # a whole message is capped by reassemble() at lerobot_max_message_bytes.
        ("grpc.max_receive_message_length",
         min(CHUNK_BYTES, settings.lerobot_max_message_bytes) + 4096),
        ("grpc.so_reuseport", int(settings.workers > 1)),
    ])
    servicer = AsyncInferenceServicer(engine, settings, key)
    pb = services_pb2
    out = pb.Empty.SerializeToString
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, {
        "Ready": grpc.unary_unary_rpc_method_handler(
            servicer.Ready, request_deserializer=_parser(pb.Empty), response_serializer=out),
        "SendPolicyInstructions": grpc.unary_unary_rpc_method_handler(
            servicer.SendPolicyInstructions, request_deserializer=_parser(pb.PolicySetup),
            response_serializer=out),
        "SendObservations": grpc.stream_unary_rpc_method_handler(
            servicer.SendObservations, request_deserializer=_parser(pb.Observation),
            response_serializer=out),
        "GetActions": grpc.unary_unary_rpc_method_handler(
            servicer.GetActions, request_deserializer=_parser(pb.Empty),
            response_serializer=pb.Actions.SerializeToString),
    }),))
    address = f"{settings.lerobot_host}:{settings.lerobot_port}"
    server.add_insecure_port(address)
    await server.start()
    log.warning("LeRobot AsyncInference on %s (no authentication: whoever reaches it acts as "
                "robot %r with key %s)", address, settings.lerobot_robot_id, key.key_id)
    return server
