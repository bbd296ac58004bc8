"""The robot's side of the router API: one act call per control step (HTTP or gRPC) and the
episode's feedback (HTTP: the gRPC service has no feedback call).

The runner stops waiting for a call at the control deadline and hands it to `abandon`, which
each transport does the way its protocol does it cheaply: gRPC cancels the call (one RST_STREAM
frame; the router's handler is cancelled too), HTTP/1.1 lets it finish in the background and
drops the reply, because cancelling a request in flight closes its connection: the robot's next
call would pay a new TCP connection, and the router a disconnect, for every late tick.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc
import httpx
import orjson

# Long enough to see what a late reply was; a reply this late is a miss either way.
TRANSPORT_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class StepReply:
    status: str  # ok | shed | expired | rejected | error | late (abandoned at the deadline)
    rtt_ms: float  # send to reply, measured by the robot
    code: str = ""  # HTTP status or gRPC status name
    action: tuple[float, ...] | None = None
    route: str = ""
    task: str = ""
    task_source: str = ""
    task_confidence: float = 0.0
    fallback: str | None = None
    deadline_met: bool | None = None  # the router's own verdict
    timing_ms: dict[str, float] = field(default_factory=dict)
    decision_id: str = ""
    reason: str = ""
    policy_version: str = ""
    error: str = ""


_STATUS_BY_HTTP = {503: "shed", 408: "expired", 401: "rejected", 403: "rejected",
                   413: "rejected", 422: "rejected"}
_STATUS_BY_GRPC = {"RESOURCE_EXHAUSTED": "shed", "UNAVAILABLE": "shed",
                   "DEADLINE_EXCEEDED": "expired", "UNAUTHENTICATED": "rejected",
                   "PERMISSION_DENIED": "rejected", "INVALID_ARGUMENT": "rejected",
                   "NOT_FOUND": "rejected"}


class Transport(Protocol):
    async def act(self, robot_id: str, episode_id: str, task: str | None, state: list[float],
                  deadline_ms: float) -> StepReply: ...
    def abandon(self, call: asyncio.Future[StepReply]) -> None:
        """The robot no longer waits for `call` (its deadline passed)."""
    async def feedback(self, robot_id: str, episode_id: str, decision_id: str | None,
                       success: bool, true_task: str) -> dict[str, Any]: ...
    async def aclose(self) -> None: ...


class HttpTransport:
    def __init__(self, url: str, robot_key: str, connections: int = 16) -> None:
        self._client = httpx.AsyncClient(
            base_url=url, timeout=TRANSPORT_TIMEOUT_S,
            headers={"Authorization": f"Bearer {robot_key}",
                     "Content-Type": "application/json"},
            limits=httpx.Limits(max_connections=connections,
                                max_keepalive_connections=connections),
        )
        self._abandoned: set[asyncio.Future[StepReply]] = set()

    def abandon(self, call: asyncio.Future[StepReply]) -> None:
        # Left to finish on its connection (kept alive for the next tick); the reply is dropped.
        self._abandoned.add(call)
        call.add_done_callback(self._abandoned.discard)

    async def act(self, robot_id: str, episode_id: str, task: str | None, state: list[float],
                  deadline_ms: float) -> StepReply:
        body: dict[str, Any] = {"robot_id": robot_id, "episode_id": episode_id,
                                "deadline_ms": deadline_ms, "observation": {"state": state}}
        if task is not None:
            body["task"] = task
        start = time.perf_counter()
        try:
            reply = await self._client.post("/v1/act", content=orjson.dumps(body))
        except httpx.HTTPError as exc:
            return StepReply("error", (time.perf_counter() - start) * 1000, "transport",
                             error=f"{type(exc).__name__}: {exc}")
        rtt_ms = (time.perf_counter() - start) * 1000
        data = orjson.loads(reply.content) if reply.content else {}
        if reply.status_code != 200:
            err = data.get("error", {}) if isinstance(data, dict) else {}
            return StepReply(_STATUS_BY_HTTP.get(reply.status_code, "error"), rtt_ms,
                             str(reply.status_code), error=str(err.get("message", reply.text)))
        return StepReply(
            "ok", rtt_ms, "200", action=tuple(data["action"]), route=data["route"],
            task=data["task"], task_source=data["task_source"],
            task_confidence=float(data["task_confidence"]), fallback=data["fallback"],
            deadline_met=bool(data["deadline_met"]), timing_ms=dict(data["timing_ms"]),
            decision_id=data["decision_id"], reason=data["reason"],
            policy_version=data["policy_version"],
        )

    async def feedback(self, robot_id: str, episode_id: str, decision_id: str | None,
                       success: bool, true_task: str) -> dict[str, Any]:
        body: dict[str, Any] = {"robot_id": robot_id, "episode_id": episode_id,
                                "success": success, "true_task": true_task}
        if decision_id:
            body["decision_id"] = decision_id
        try:
            reply = await self._client.post("/v1/feedback", content=orjson.dumps(body))
        except httpx.HTTPError as exc:
            return {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
        result: dict[str, Any] = orjson.loads(reply.content) if reply.content else {}
        result["status"] = reply.status_code
        return result

    async def aclose(self) -> None:
        if self._abandoned:  # late replies still on their way: at most TRANSPORT_TIMEOUT_S
            await asyncio.wait(set(self._abandoned), timeout=TRANSPORT_TIMEOUT_S)
        await self._client.aclose()


class GrpcTransport:
    """`PolicyRouter.Act` through the generated stubs; feedback goes over HTTP."""

    def __init__(self, target: str, http_url: str, robot_key: str) -> None:
        from router_client.proto import router_pb2, router_pb2_grpc

        self._pb = router_pb2
        self._channel = grpc.aio.insecure_channel(target)
        self._stub = router_pb2_grpc.PolicyRouterStub(self._channel)  # type: ignore[no-untyped-call,unused-ignore]
        self._metadata = (("authorization", f"Bearer {robot_key}"),)
        self._http = HttpTransport(http_url, robot_key, connections=4)

    def abandon(self, call: asyncio.Future[StepReply]) -> None:
        call.cancel()  # RST_STREAM: the router stops working on it too

    async def act(self, robot_id: str, episode_id: str, task: str | None, state: list[float],
                  deadline_ms: float) -> StepReply:
        request = self._pb.ActRequest(
            robot_id=robot_id, episode_id=episode_id, task=task or "",
            observation=self._pb.Observation(state=state), deadline_ms=deadline_ms,
        )
        start = time.perf_counter()
        try:
            r = await self._stub.Act(request, metadata=self._metadata,
                                     timeout=TRANSPORT_TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            name = exc.code().name
            return StepReply(_STATUS_BY_GRPC.get(name, "error"),
                             (time.perf_counter() - start) * 1000, name,
                             error=str(exc.details()))
        rtt_ms = (time.perf_counter() - start) * 1000
        return StepReply(
            "ok", rtt_ms, "OK", action=tuple(r.action), route=r.route, task=r.task,
            task_source=r.task_source, task_confidence=r.task_confidence,
            fallback=r.fallback or None, deadline_met=r.deadline_met,
            timing_ms={"scoring": r.timing_ms.scoring_ms, "upstream": r.timing_ms.upstream_ms,
                       "total": r.timing_ms.total_ms},
            decision_id=r.decision_id, reason=r.reason, policy_version=r.policy_version,
        )

    async def feedback(self, robot_id: str, episode_id: str, decision_id: str | None,
                       success: bool, true_task: str) -> dict[str, Any]:
        return await self._http.feedback(robot_id, episode_id, decision_id, success, true_task)

    async def aclose(self) -> None:
        await self._http.aclose()
        await self._channel.close()


def open_transport(kind: str, http_url: str, grpc_target: str | None,
                   robot_key: str, robots: int) -> Transport:
    if kind == "grpc":
        if not grpc_target:
            raise ValueError("--transport grpc needs the router's gRPC address")
        return GrpcTransport(grpc_target, http_url, robot_key)
    return HttpTransport(http_url, robot_key, connections=max(4, robots * 2))
