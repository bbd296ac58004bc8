"""The router over a session per robot: WebSocket `/v1/act/stream` and gRPC `StreamAct`.

A robot opens its session once and sends every step on it; the open-loop generator still sends
each step at its scheduled time, so a step may go out before the previous reply is back. Each
message carries a sequence number (the plan index) and a reader task per session hands each
reply to the request that is waiting for it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from loadtest.scenario import Scenario
from loadtest.targets.base import (
    Outcome,
    PlanLists,
    TargetOptions,
    TargetUnavailable,
    grpc_error_kind,
)
from loadtest.targets.router import (
    DEFAULT_GRPC_URL,
    DEFAULT_HTTP_URL,
    JsonBodies,
    RouterGrpcTarget,
    router_outcome,
)


class _Waiters:
    """sequence -> the future of the request waiting for that reply."""

    def __init__(self) -> None:
        self.pending: dict[int, asyncio.Future[Any]] = {}

    def expect(self, sequence: int) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending[sequence] = future
        return future

    def deliver(self, sequence: int, reply: Any) -> None:
        future = self.pending.pop(sequence, None)
        if future is not None and not future.done():
            future.set_result(reply)

    def fail_all(self) -> None:
        for future in self.pending.values():
            if not future.done():
                future.set_result(None)
        self.pending.clear()


class RouterWsTarget:
    name = "router-ws"

    def __init__(self, scenario: Scenario, lists: PlanLists, options: TargetOptions) -> None:
        base = (options.url or DEFAULT_HTTP_URL).rstrip("/")
        self.url = base.replace("http://", "ws://").replace("https://", "wss://")
        self.lists = lists
        self._bodies = JsonBodies(scenario, lists)
        self._headers = {"authorization": f"Bearer {options.api_key}"} if options.api_key else {}
        self._timeout_s = scenario.client_timeout_ms / 1000.0
        self._sessions: list[ClientConnection] = []
        self._waiters: list[_Waiters] = []
        self._readers: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        for _ in self.lists.robot_name:
            try:
                ws = await connect(f"{self.url}/v1/act/stream", additional_headers=self._headers,
                                   open_timeout=5.0, compression=None)
            except (OSError, WebSocketException) as err:
                raise TargetUnavailable(f"router WebSocket at {self.url}: {err}") from None
            waiters = _Waiters()
            self._sessions.append(ws)
            self._waiters.append(waiters)
            self._readers.append(asyncio.create_task(self._read(ws, waiters)))

    @staticmethod
    async def _read(ws: ClientConnection, waiters: _Waiters) -> None:
        try:
            async for message in ws:
                data = orjson.loads(message)
                waiters.deliver(int(data.get("sequence", -1)), data)
        except (WebSocketException, orjson.JSONDecodeError, OSError):
            pass
        finally:
            waiters.fail_all()

    async def preflight(self) -> None:
        if not self._sessions:
            raise TargetUnavailable("no WebSocket sessions open")

    async def send(self, i: int) -> Outcome:
        robot = self.lists.robot[i]
        waiters = self._waiters[robot]
        reply = waiters.expect(i)
        try:
            await self._sessions[robot].send(self._bodies.body(i, b'"sequence":%d,' % i))
            data = await asyncio.wait_for(reply, self._timeout_s)
        except TimeoutError:
            waiters.pending.pop(i, None)
            return Outcome("client_timeout", error_kind="deadline")
        except (WebSocketException, OSError):
            return Outcome("transport_error", error_kind="transport")
        if data is None:
            return Outcome("transport_error", error_kind="transport")
        error = data.get("error") if isinstance(data, dict) else None
        if isinstance(error, dict):  # same codes as HTTP; the status is the HTTP one it maps to
            status = {"overloaded": 503, "deadline_expired": 408, "unauthorized": 401}.get(
                str(error.get("code")), 422)
            return router_outcome(status, data)
        return router_outcome(200, data)

    async def close(self) -> None:
        for ws in self._sessions:
            await ws.close()
        for task in self._readers:
            task.cancel()


class RouterGrpcStreamTarget(RouterGrpcTarget):
    name = "router-grpc-stream"

    def __init__(self, scenario: Scenario, lists: PlanLists, options: TargetOptions) -> None:
        super().__init__(scenario, lists, options)
        self.url = options.url or DEFAULT_GRPC_URL
        self._timeout_s = scenario.client_timeout_ms / 1000.0
        self._calls: list[Any] = []
        self._locks: list[asyncio.Lock] = []
        self._waiters: list[_Waiters] = []
        self._readers: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        await super().start()
        for _ in self.lists.robot_name:
            call = self._stub.StreamAct(metadata=self._metadata)
            waiters = _Waiters()
            self._calls.append(call)
            self._locks.append(asyncio.Lock())
            self._waiters.append(waiters)
            self._readers.append(asyncio.create_task(self._read(call, waiters)))

    @staticmethod
    async def _read(call: Any, waiters: _Waiters) -> None:
        try:
            async for reply in call:
                waiters.deliver(int(reply.sequence), reply)
        except grpc.aio.AioRpcError:
            pass
        finally:
            waiters.fail_all()

    async def send(self, i: int) -> Outcome:
        robot = self.lists.robot[i]
        waiters = self._waiters[robot]
        future = waiters.expect(i)
        try:
            async with self._locks[robot]:  # one write at a time on a stream
                await self._calls[robot].write(self.request(i, sequence=i))
            reply = await asyncio.wait_for(future, self._timeout_s)
        except TimeoutError:
            waiters.pending.pop(i, None)
            return Outcome("client_timeout", error_kind="deadline")
        except grpc.aio.AioRpcError as err:
            name = err.code().name
            return Outcome(f"grpc_{name}", error_kind=grpc_error_kind(name), error_code=name)
        if reply is None:
            return Outcome("transport_error", error_kind="transport")
        if reply.HasField("error"):
            code = reply.error.code
            return Outcome(f"grpc_{code}", error_kind=grpc_error_kind(code), error_code=code)
        return Outcome("ok", reply.route, reply.fallback or None, reply.deadline_met)

    async def close(self) -> None:
        for call in self._calls:
            call.cancel()
        for task in self._readers:
            task.cancel()
        await super().close()

