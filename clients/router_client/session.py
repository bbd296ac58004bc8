"""StreamAct sessions: one long-lived gRPC stream per robot, one reply per request, in order.

A stream saves the per-call setup of unary `Act` (headers, deadline propagation, a new
HTTP/2 stream each step), which matters at control rates. A stream has no per-message
deadline, so each message carries its budget in `deadline_ms`.

If a reply does not come within its budget the session raises `DeadlineExceeded` and
moves on: the late reply is recognised by its sequence number and dropped when it turns
up. If the stream breaks, the next `act` opens a new one.
"""

from __future__ import annotations

import time
from dataclasses import replace
from functools import partial

from . import _codec
from ._grpc import AsyncGrpcTransport, AsyncStreamPipe, GrpcTransport, StreamPipe
from ._retry import Attempt, acall_with_retries, act_budget, call_with_retries
from .config import RetryPolicy, Timeouts
from .errors import ServerError
from .messages import ActRequest, ActResponse
from .proto import router_pb2

__all__ = ["ActSession", "AsyncActSession"]


class _Ledger:
    """Sequence numbering and reply matching, shared by the sync and async sessions."""

    def __init__(self, robot_id: str, slack_ms: float) -> None:
        self.robot_id = robot_id
        self._slack_ms = slack_ms
        self._last_sent = 0

    def check(self, request: ActRequest) -> None:
        if request.robot_id != self.robot_id:
            raise ValueError(
                f"session belongs to robot {self.robot_id!r}, not {request.robot_id!r}"
            )

    def message(self, request: ActRequest, attempt: Attempt) -> router_pb2.ActRequest:
        self._last_sent += 1
        return _codec.act_message(request, deadline_ms=attempt.budget_ms,
                                  sequence=self._last_sent)

    def reply_by(self, attempt: Attempt) -> float:
        """Monotonic time after which the reply to this attempt is given up on."""
        return time.monotonic() + _codec.reply_wait_s(attempt, self._slack_ms, deadline_sent=True)

    def accept(self, reply: router_pb2.ActResponse) -> ActResponse | None:
        """The response, or None for a late reply to a request already given up on."""
        if reply.sequence < self._last_sent:
            return None
        if reply.sequence > self._last_sent:
            raise ServerError(f"router replied to sequence {reply.sequence}, "
                              f"but the last one sent was {self._last_sent}")
        error = _codec.stream_reply_error(reply)
        if error is not None:
            raise error
        return _codec.parse_act_message(reply)


class ActSession:
    """A StreamAct session for one robot. Create with `RouterClient.session(robot_id)`;
    close it (or use `with`) to end the stream. Not thread-safe: one control loop."""

    def __init__(self, transport: GrpcTransport, robot_id: str, timeouts: Timeouts,
                 retry: RetryPolicy) -> None:
        self._transport = transport
        self._ledger = _Ledger(robot_id, timeouts.deadline_slack_ms)
        self._timeouts = timeouts
        self._retry = retry
        self._pipe: StreamPipe | None = None
        self._closed = False

    @property
    def robot_id(self) -> str:
        return self._ledger.robot_id

    def act(self, request: ActRequest) -> ActResponse:
        self._ledger.check(request)
        budget = act_budget(request, self._timeouts, self._retry)
        response = call_with_retries(partial(self._exchange, request), budget)
        return replace(response, client_ms=budget.elapsed_s() * 1000.0)

    def _exchange(self, request: ActRequest, attempt: Attempt) -> ActResponse:
        if self._closed:
            raise RuntimeError("session is closed")
        if self._pipe is not None and self._pipe.ended:
            self._pipe.close()  # the stream broke under an earlier request; start afresh
            self._pipe = None
        if self._pipe is None:
            self._pipe = self._transport.open_stream()
        message = self._ledger.message(request, attempt)
        reply_by = self._ledger.reply_by(attempt)
        self._pipe.send(message)
        while True:
            response = self._ledger.accept(self._pipe.receive(reply_by - time.monotonic()))
            if response is not None:
                return response

    def close(self) -> None:
        self._closed = True
        if self._pipe is not None:
            self._pipe.close()
            self._pipe = None

    def __enter__(self) -> ActSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncActSession:
    """The asyncio twin of ActSession; create with `AsyncRouterClient.session(robot_id)`."""

    def __init__(self, transport: AsyncGrpcTransport, robot_id: str, timeouts: Timeouts,
                 retry: RetryPolicy) -> None:
        self._transport = transport
        self._ledger = _Ledger(robot_id, timeouts.deadline_slack_ms)
        self._timeouts = timeouts
        self._retry = retry
        self._pipe: AsyncStreamPipe | None = None
        self._closed = False

    @property
    def robot_id(self) -> str:
        return self._ledger.robot_id

    async def act(self, request: ActRequest) -> ActResponse:
        self._ledger.check(request)
        budget = act_budget(request, self._timeouts, self._retry)
        response = await acall_with_retries(partial(self._exchange, request), budget)
        return replace(response, client_ms=budget.elapsed_s() * 1000.0)

    async def _exchange(self, request: ActRequest, attempt: Attempt) -> ActResponse:
        if self._closed:
            raise RuntimeError("session is closed")
        if self._pipe is not None and self._pipe.ended:
            await self._pipe.aclose()
            self._pipe = None
        if self._pipe is None:
            self._pipe = self._transport.open_stream()
        message = self._ledger.message(request, attempt)
        reply_by = self._ledger.reply_by(attempt)
        await self._pipe.send(message)
        while True:
            reply = await self._pipe.receive(reply_by - time.monotonic())
            response = self._ledger.accept(reply)
            if response is not None:
                return response

    async def aclose(self) -> None:
        self._closed = True
        if self._pipe is not None:
            await self._pipe.aclose()
            self._pipe = None

    async def __aenter__(self) -> AsyncActSession:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
