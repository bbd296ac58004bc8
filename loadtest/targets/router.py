"""The router under test, over HTTP (`POST /v1/act`) or gRPC (`PolicyRouter.Act`).

HTTP: a keep-alive pool per robot on a minimal HTTP/1.1 client; every in-flight request gets
its own connection, none queues inside the client.
gRPC: one `grpc.aio` channel (HTTP/2 multiplexes); the scenario's `deadline_ms` is the call
deadline, which is the router protocol's budget.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import orjson
from grpc_health.v1 import health_pb2, health_pb2_grpc
from router_client.proto import router_pb2, router_pb2_grpc

from loadtest.scenario import Scenario
from loadtest.targets.base import (
    Outcome,
    PlanLists,
    TargetOptions,
    TargetUnavailable,
    grpc_error_kind,
    http_error_kind,
)
from router_service.errors import UpstreamError, UpstreamTimeout
from router_service.http1 import Http1Pool

DEFAULT_HTTP_URL = "http://127.0.0.1:8080"
DEFAULT_GRPC_URL = "127.0.0.1:50051"
_JSON = {"content-type": "application/json"}


class RouterHttpTarget:
    """One keep-alive connection pool per robot (a robot holds its own connections), on the
    router's own minimal HTTP/1.1 client (`router_service/http1.py`): httpx costs the generator
    about 1.9 ms of CPU per request here, which the router and Triton would lose on two cores."""

    name = "router-http"

    def __init__(self, scenario: Scenario, lists: PlanLists, options: TargetOptions) -> None:
        self.url = (options.url or DEFAULT_HTTP_URL).rstrip("/")
        self.lists = lists
        self._bodies = JsonBodies(scenario, lists)
        self._timeout_s = scenario.client_timeout_ms / 1000.0
        auth = b"Authorization: Bearer %s\r\n" % options.api_key.encode() if options.api_key \
            else b""
        self._head = b"POST /v1/act HTTP/1.1\r\nHost: router\r\n%sContent-Type: " \
                     b"application/json\r\nContent-Length: " % auth
        self._pools = [Http1Pool(self.url) for _ in lists.robot_name] or [Http1Pool(self.url)]

    def body(self, i: int) -> bytes:
        return self._bodies.body(i)

    async def start(self) -> None:
        try:
            for pool in self._pools:
                await pool.warm(1)
        except UpstreamError as err:
            raise TargetUnavailable(f"router at {self.url} unreachable: {err}") from None

    async def preflight(self) -> None:
        try:
            reply = await self._pools[0].request(
                b"GET /readyz HTTP/1.1\r\nHost: router\r\n\r\n", 5.0, "readyz")
        except UpstreamError as err:
            raise TargetUnavailable(f"router at {self.url} unreachable: {err}") from None
        if reply.status != 200:
            raise TargetUnavailable(f"router {self.url}/readyz answered {reply.status}")

    async def send(self, i: int) -> Outcome:
        body = self.body(i)
        request = b"%s%d\r\n\r\n%s" % (self._head, len(body), body)
        try:
            reply = await self._pools[self.lists.robot[i]].request(request, self._timeout_s,
                                                                    "act")
        except UpstreamTimeout:
            return Outcome("client_timeout", error_kind="deadline")
        except UpstreamError:
            return Outcome("transport_error", error_kind="transport")
        return parse_router_http(reply.status, reply.body)

    async def close(self) -> None:
        for pool in self._pools:
            pool.close()


class JsonBodies:
    """Router act bodies from pre-serialised pieces (HTTP and WebSocket send the same JSON)."""

    def __init__(self, scenario: Scenario, lists: PlanLists) -> None:
        self.lists = lists
        self.deadline_ms = scenario.deadline_ms
        self.absolute = scenario.absolute_deadline
        self._deadline = orjson.dumps(scenario.deadline_ms)
        self._task_part = [b'"task":' + orjson.dumps(t) + b"," for t in lists.tasks]

    def body(self, i: int, extra: bytes = b"") -> bytes:
        ls = self.lists
        robot = ls.robot_id[ls.robot[i]]
        head = b'{"robot_id":"%s","episode_id":"%s-ep-%d",' % (robot, robot, ls.episode[i])
        task = b"" if ls.hidden[i] else self._task_part[ls.task[i]]
        unix_ms = ls.deadline_unix_ms(i, self.deadline_ms) if self.absolute else None
        absolute = b'"deadline_unix_ms":%.3f,' % unix_ms if unix_ms is not None else b""
        return b'%s%s%s%s"deadline_ms":%s,"observation":{"state":%s}}' % (
            head, task, absolute, extra, self._deadline, ls.state_json[ls.obs[i]],
        )


def parse_router_http(status: int, content: bytes) -> Outcome:
    try:
        data: Any = orjson.loads(content)
    except orjson.JSONDecodeError:
        data = None
    return router_outcome(status, data)


def router_outcome(status: int, data: Any) -> Outcome:
    """One router reply (HTTP status and parsed JSON body; a WebSocket reply is 200 unless it
    carries an error)."""
    if status == 200:
        if not isinstance(data, dict) or "action" not in data:
            return Outcome("bad_response", error_kind="bad_response")
        return Outcome("ok", data.get("route"), data.get("fallback"), data.get("deadline_met"))
    code = None
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        code = data["error"].get("code")
    return Outcome(f"http_{status}", error_kind=http_error_kind(status), error_code=code)


class RouterGrpcTarget:
    name = "router-grpc"

    def __init__(self, scenario: Scenario, lists: PlanLists, options: TargetOptions) -> None:
        self.url = options.url or DEFAULT_GRPC_URL
        self.lists = lists
        self._metadata = (
            (("authorization", f"Bearer {options.api_key}"),) if options.api_key else ()
        )
        self._deadline_s = scenario.deadline_ms / 1000.0
        self._absolute = scenario.absolute_deadline
        self._obs = [router_pb2.Observation(state=row) for row in lists.state_list]
        self._channel: grpc.aio.Channel | None = None
        self._stub: Any = None

    def request(self, i: int, sequence: int | None = None) -> Any:
        ls = self.lists
        robot = ls.robot_name[ls.robot[i]]
        unix_ms = ls.deadline_unix_ms(i, self._deadline_s * 1000) if self._absolute else None
        return router_pb2.ActRequest(
            robot_id=robot,
            episode_id=f"{robot}-ep-{ls.episode[i]}",
            task="" if ls.hidden[i] else ls.tasks[ls.task[i]],
            observation=self._obs[ls.obs[i]],
            sequence=ls.step[i] if sequence is None else sequence,
            deadline_unix_ms=unix_ms or 0.0,
        )

    async def start(self) -> None:
        self._channel = grpc.aio.insecure_channel(self.url)
        self._stub = router_pb2_grpc.PolicyRouterStub(self._channel)  # type: ignore[no-untyped-call,unused-ignore]

    async def preflight(self) -> None:
        assert self._channel is not None
        await wait_grpc_ready(self._channel, self.url, timeout_s=5.0)
        stub = health_pb2_grpc.HealthStub(self._channel)
        try:
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5.0)
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.UNIMPLEMENTED:
                return  # no health service: a ready channel is all we can check
            raise TargetUnavailable(
                f"router gRPC health at {self.url}: {err.code().name}"
            ) from None
        if reply.status != health_pb2.HealthCheckResponse.SERVING:
            raise TargetUnavailable(f"router gRPC at {self.url} is not SERVING")

    async def send(self, i: int) -> Outcome:
        try:
            reply = await self._stub.Act(
                self.request(i), timeout=self._deadline_s, metadata=self._metadata
            )
        except grpc.aio.AioRpcError as err:
            name = err.code().name
            return Outcome(f"grpc_{name}", error_kind=grpc_error_kind(name), error_code=name)
        return Outcome("ok", reply.route, reply.fallback or None, reply.deadline_met)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()


async def wait_grpc_ready(channel: grpc.aio.Channel, url: str, timeout_s: float) -> None:
    try:
        await asyncio.wait_for(channel.channel_ready(), timeout=timeout_s)
    except TimeoutError:
        raise TargetUnavailable(f"gRPC {url} not reachable after {timeout_s:.0f}s") from None
