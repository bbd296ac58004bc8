"""The router under test, over HTTP (`POST /v1/act`) or gRPC (`PolicyRouter.Act`).

HTTP: httpx `AsyncClient`s with shared keep-alive pools (see http_pool.py for why a few, not
one), sized so that every in-flight request can have its own connection: none queues inside the
client.
gRPC: one `grpc.aio` channel (HTTP/2 multiplexes); the scenario's `deadline_ms` is the call
deadline, which is the router protocol's budget.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import httpx
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
from loadtest.targets.http_pool import HttpPools

DEFAULT_HTTP_URL = "http://127.0.0.1:8080"
DEFAULT_GRPC_URL = "127.0.0.1:50051"
_JSON = {"content-type": "application/json"}


class RouterHttpTarget:
    name = "router-http"

    def __init__(
        self,
        scenario: Scenario,
        lists: PlanLists,
        options: TargetOptions,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = (options.url or DEFAULT_HTTP_URL).rstrip("/")
        self.lists = lists
        headers = {"authorization": f"Bearer {options.api_key}"} if options.api_key else {}
        self._pools = HttpPools(self.url, scenario, headers, transport)
        self._deadline = orjson.dumps(scenario.deadline_ms)
        self._task_part = [b'"task":' + orjson.dumps(t) + b"," for t in lists.tasks]

    def body(self, i: int) -> bytes:
        ls = self.lists
        robot = ls.robot_id[ls.robot[i]]
        head = b'{"robot_id":"%s","episode_id":"%s-ep-%d",' % (robot, robot, ls.episode[i])
        task = b"" if ls.hidden[i] else self._task_part[ls.task[i]]
        return b'%s%s"deadline_ms":%s,"observation":{"state":%s}}' % (
            head,
            task,
            self._deadline,
            ls.state_json[ls.obs[i]],
        )

    async def start(self) -> None:
        self._pools.start()

    async def preflight(self) -> None:
        try:
            resp = await self._pools.for_robot(0).get("/readyz")
        except httpx.HTTPError as err:
            raise TargetUnavailable(f"router at {self.url} unreachable: {err}") from None
        if resp.status_code != 200:
            raise TargetUnavailable(f"router {self.url}/readyz answered {resp.status_code}")

    async def send(self, i: int) -> Outcome:
        client = self._pools.for_robot(self.lists.robot[i])
        try:
            resp = await client.post("/v1/act", content=self.body(i), headers=_JSON)
        except httpx.TimeoutException:
            return Outcome("client_timeout", error_kind="deadline")
        except httpx.TransportError:
            return Outcome("transport_error", error_kind="transport")
        return parse_router_http(resp.status_code, resp.content)

    async def close(self) -> None:
        await self._pools.close()


def parse_router_http(status: int, content: bytes) -> Outcome:
    try:
        data: Any = orjson.loads(content)
    except orjson.JSONDecodeError:
        data = None
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
        self._obs = [router_pb2.Observation(state=row) for row in lists.state_list]
        self._channel: grpc.aio.Channel | None = None
        self._stub: Any = None

    def request(self, i: int) -> Any:
        ls = self.lists
        robot = ls.robot_name[ls.robot[i]]
        return router_pb2.ActRequest(
            robot_id=robot,
            episode_id=f"{robot}-ep-{ls.episode[i]}",
            task="" if ls.hidden[i] else ls.tasks[ls.task[i]],
            observation=self._obs[ls.obs[i]],
            sequence=ls.step[i],
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
