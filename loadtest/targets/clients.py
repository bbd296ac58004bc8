"""The router through the third-party client protocols (issue 12), for `make bench`'s overhead
and CPU rows next to the native API:

- `openpi`: openpi's websocket protocol at `/v1/openpi` (msgpack frames, metadata first), one
  connection per robot; the protocol has no sequence numbers, so a robot's steps go out one
  at a time, as openpi's own synchronous client sends them;
- `kserve-grpc`: KServe v2 `ModelInfer` on the router's gRPC port, virtual model `route`,
  raw tensor contents, the scenario's deadline as the call's timeout;
- `kserve-http`: KServe v2 `POST /v2/models/route/infer` with the binary-tensor extension.
Replies carry the route and `deadline_met` in their parameters, so the same outcome counts
(hold share, late-but-met) hold for every path.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import msgpack
import orjson
from tritonclient.grpc import service_pb2, service_pb2_grpc
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from loadtest.scenario import Scenario
from loadtest.targets.base import (
    Outcome,
    PlanLists,
    TargetOptions,
    TargetUnavailable,
    grpc_error_kind,
    http_error_kind,
)
from loadtest.targets.router import (
    DEFAULT_GRPC_URL,
    DEFAULT_HTTP_URL,
    RouterHttpTarget,
    router_outcome,
)
from router_service.errors import UpstreamError, UpstreamTimeout

ROUTE_MODEL = "route"
# An error frame's code -> the HTTP status it stands for (as /v1/act would answer)
WS_ERROR_STATUS = {"overloaded": 503, "deadline_expired": 408, "unauthorized": 401,
                   "rate_limited": 429, "forbidden": 403}


def _np_frame(row: list[float]) -> dict[bytes, Any]:
    import numpy as np

    array = np.asarray(row, dtype=np.float32)
    return {b"__ndarray__": True, b"data": array.tobytes(), b"dtype": array.dtype.str,
            b"shape": list(array.shape)}


class OpenpiTarget:
    name = "router-openpi"

    def __init__(self, scenario: Scenario, lists: PlanLists, options: TargetOptions) -> None:
        base = (options.url or DEFAULT_HTTP_URL).rstrip("/")
        self.url = base.replace("http://", "ws://").replace("https://", "wss://")
        self.lists = lists
        self.deadline_ms = scenario.deadline_ms
        self._headers = {"authorization": f"Api-Key {options.api_key}"} if options.api_key \
            else {}
        self._timeout_s = scenario.client_timeout_ms / 1000.0
        # Frames pre-packed per (observation, task or prompt-less): the generator's cost stays
        # out of the router's numbers.
        states = [_np_frame(row) for row in lists.state_list]
        self._frames = {(o, t): msgpack.packb({"observation/state": s, **(
            {} if t is None else {"prompt": lists.tasks[t]})})
            for o, s in enumerate(states) for t in (None, *range(len(lists.tasks)))}
        self._sessions: list[ClientConnection] = []
        self._locks: list[asyncio.Lock] = []

    async def start(self) -> None:
        for robot in self.lists.robot_name:
            query = f"robot_id={robot}&episode_id={robot}-ep-0&deadline_ms={self.deadline_ms}"
            try:
                ws = await connect(f"{self.url}/v1/openpi?{query}", open_timeout=5.0,
                                   additional_headers=self._headers, compression=None,
                                   max_size=None)
                await ws.recv()  # the metadata frame, sent right after the handshake
            except (OSError, WebSocketException) as err:
                raise TargetUnavailable(f"router openpi endpoint at {self.url}: {err}") from None
            self._sessions.append(ws)
            self._locks.append(asyncio.Lock())

    async def preflight(self) -> None:
        if not self._sessions:
            raise TargetUnavailable("no openpi sessions open")

    async def send(self, i: int) -> Outcome:
        ls = self.lists
        robot = ls.robot[i]
        frame = self._frames[(ls.obs[i], None if ls.hidden[i] else ls.task[i])]
        try:
            async with asyncio.timeout(self._timeout_s), self._locks[robot]:
                ws = self._sessions[robot]
                await ws.send(frame)
                raw = await ws.recv()
        except TimeoutError:
            return Outcome("client_timeout", error_kind="deadline")
        except (WebSocketException, OSError):
            return Outcome("transport_error", error_kind="transport")
        if isinstance(raw, str):  # an error frame: the router's JSON error body
            try:
                data = orjson.loads(raw)
            except orjson.JSONDecodeError:
                return Outcome("bad_response", error_kind="bad_response")
            code = str((data.get("error") or {}).get("code"))
            return router_outcome(WS_ERROR_STATUS.get(code, 422), data)
        reply = msgpack.unpackb(raw)
        if "actions" not in reply:
            return Outcome("bad_response", error_kind="bad_response")
        return Outcome("ok", reply.get("route"), reply.get("fallback"), reply.get("deadline_met"))

    async def close(self) -> None:
        for ws in self._sessions:
            await ws.close()


def _infer_parameters(values: dict[str, str]) -> dict[str, Any]:
    return {k: service_pb2.InferParameter(string_param=v) for k, v in values.items()}


def _param(reply: Any, name: str) -> Any:
    param = reply.parameters.get(name)
    if param is None:
        return None
    choice = param.WhichOneof("parameter_choice")
    return getattr(param, choice) if choice else None


class KServeGrpcTarget:
    name = "router-kserve-grpc"

    def __init__(self, scenario: Scenario, lists: PlanLists, options: TargetOptions) -> None:
        self.url = options.url or DEFAULT_GRPC_URL
        self.lists = lists
        self._metadata = (("authorization", f"Bearer {options.api_key}"),) if options.api_key \
            else ()
        self._deadline_s = scenario.deadline_ms / 1000.0
        import numpy as np

        self._raw = [np.asarray(row, np.float32).tobytes() for row in lists.state_list]
        self._shape = [1, len(lists.state_list[0])] if lists.state_list else [1, 0]
        self._channel: grpc.aio.Channel | None = None
        self._stub: Any = None

    def request(self, i: int) -> Any:
        ls = self.lists
        robot = ls.robot_name[ls.robot[i]]
        values = {"robot_id": robot, "episode_id": f"{robot}-ep-{ls.episode[i]}"}
        if not ls.hidden[i]:
            values["task"] = ls.tasks[ls.task[i]]
        return service_pb2.ModelInferRequest(
            model_name=ROUTE_MODEL, parameters=_infer_parameters(values),
            inputs=[service_pb2.ModelInferRequest.InferInputTensor(
                name="observation", datatype="FP32", shape=self._shape)],
            raw_input_contents=[self._raw[ls.obs[i]]])

    async def start(self) -> None:
        self._channel = grpc.aio.insecure_channel(self.url)
        self._stub = service_pb2_grpc.GRPCInferenceServiceStub(self._channel)  # type: ignore[no-untyped-call,unused-ignore]

    async def preflight(self) -> None:
        try:
            reply = await self._stub.ServerReady(service_pb2.ServerReadyRequest(), timeout=5.0,
                                                 metadata=self._metadata)
        except grpc.aio.AioRpcError as err:
            raise TargetUnavailable(f"router KServe gRPC at {self.url}: {err.code().name}"
                                    ) from None
        if not reply.ready:
            raise TargetUnavailable(f"router KServe gRPC at {self.url}: not ready")

    async def send(self, i: int) -> Outcome:
        try:
            reply = await self._stub.ModelInfer(self.request(i), timeout=self._deadline_s,
                                                metadata=self._metadata)
        except grpc.aio.AioRpcError as err:
            name = err.code().name
            return Outcome(f"grpc_{name}", error_kind=grpc_error_kind(name), error_code=name)
        return Outcome("ok", _param(reply, "route"), _param(reply, "fallback") or None,
                       _param(reply, "deadline_met"))

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()


class KServeHttpTarget(RouterHttpTarget):
    """Binary input tensor, JSON output: the smallest request tritonclient.http would send."""

    name = "router-kserve-http"

    def __init__(self, scenario: Scenario, lists: PlanLists, options: TargetOptions) -> None:
        super().__init__(scenario, lists, options)
        import numpy as np

        self._raw = [np.asarray(row, np.float32).tobytes() for row in lists.state_list]
        self._dim = len(lists.state_list[0]) if lists.state_list else 0
        auth = b"Authorization: Bearer %s\r\n" % options.api_key.encode() if options.api_key \
            else b""
        self._head2 = (b"POST /v2/models/%s/infer HTTP/1.1\r\nHost: router\r\n%s"
                       b"Content-Type: application/octet-stream\r\n"
                       b"Inference-Header-Content-Length: " % (ROUTE_MODEL.encode(), auth))

    async def send(self, i: int) -> Outcome:
        ls = self.lists
        robot = ls.robot_name[ls.robot[i]]
        params: dict[str, Any] = {"robot_id": robot, "episode_id": f"{robot}-ep-{ls.episode[i]}",
                                  "deadline_ms": self._bodies.deadline_ms}
        if not ls.hidden[i]:
            params["task"] = ls.tasks[ls.task[i]]
        raw = self._raw[ls.obs[i]]
        header = orjson.dumps({"parameters": params, "inputs": [{
            "name": "observation", "datatype": "FP32", "shape": [1, self._dim],
            "parameters": {"binary_data_size": len(raw)}}]})
        request = b"%s%d\r\nContent-Length: %d\r\n\r\n%s%s" % (
            self._head2, len(header), len(header) + len(raw), header, raw)
        try:
            reply = await self._pools[ls.robot[i]].request(request, self._timeout_s, "infer")
        except UpstreamTimeout:
            return Outcome("client_timeout", error_kind="deadline")
        except UpstreamError:
            return Outcome("transport_error", error_kind="transport")
        if reply.status != 200:
            return Outcome(f"http_{reply.status}", error_kind=http_error_kind(reply.status))
        try:
            data = orjson.loads(reply.body)
        except orjson.JSONDecodeError:
            return Outcome("bad_response", error_kind="bad_response")
        p = data.get("parameters") or {}
        return Outcome("ok", p.get("route"), p.get("fallback") or None, p.get("deadline_met"))
