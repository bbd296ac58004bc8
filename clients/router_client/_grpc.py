"""gRPC transports: one unary `Act` attempt each, plus the raw StreamAct pipes that
`session` builds on. Errors are converted here, where grpc raises them."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Sequence
from typing import Any

import grpc
import grpc.aio

from . import _codec
from ._retry import Attempt
from .errors import (
    ConnectError,
    DeadlineExceeded,
    RouterError,
    TransportError,
    error_from_status_name,
)
from .messages import ActRequest, ActResponse
from .proto import router_pb2, router_pb2_grpc

Metadata = tuple[tuple[str, str], ...]

# UNAVAILABLE covers both "never connected" and "connection lost mid-call"; only the
# first proves the router never saw the request. grpc reports the difference only in
# its text, so these phrases (checked against grpcio 1.85) decide; anything else is
# treated as possibly sent, which merely forgoes a retry.
_NEVER_CONNECTED_PHRASES = ("failed to connect", "errors resolving", "dns resolution failed")

# Trailing metadata the router attaches to a failed unary call, since a gRPC status has
# no place for them (StreamAct replies carry them in `ActResponse.error` instead). The
# known tasks of an UnknownTask only travel in the status text; `errors` reads them there.
RETRY_AFTER_KEY = "retry-after-ms"
FIELD_KEY = "field"


def auth_metadata(api_key: str | None) -> Metadata:
    return (("authorization", f"Bearer {api_key}"),) if api_key else ()


def error_from_rpc(exc: Any) -> RouterError:
    """Convert a grpc.RpcError / grpc.aio.AioRpcError (both are grpc.Call-like)."""
    code = exc.code()
    name = code.name if code is not None else "UNKNOWN"
    details = exc.details() or ""
    trailing = dict(exc.trailing_metadata() or ())
    never_connected = name == "UNAVAILABLE" and any(
        phrase in details.lower() for phrase in _NEVER_CONNECTED_PHRASES
    )
    return error_from_status_name(
        name,
        details,
        field=trailing.get(FIELD_KEY) or None,
        retry_after_ms=_number_or_none(trailing.get(RETRY_AFTER_KEY)),
        request_sent=not never_connected,
    )


def _number_or_none(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _stub(channel: Any) -> Any:
    # The generated gRPC module is untyped; the stub's methods are called with typed
    # messages and their replies parsed through the typed router_pb2 stubs.
    return router_pb2_grpc.PolicyRouterStub(channel)  # type: ignore[no-untyped-call]


def open_channel(target: str, credentials: grpc.ChannelCredentials | None,
                 options: Sequence[tuple[str, Any]] = ()) -> grpc.Channel:
    if credentials is None:
        return grpc.insecure_channel(target, options=options)
    return grpc.secure_channel(target, credentials, options=options)


def open_aio_channel(target: str, credentials: grpc.ChannelCredentials | None,
                     options: Sequence[tuple[str, Any]] = ()) -> grpc.aio.Channel:
    if credentials is None:
        return grpc.aio.insecure_channel(target, options=options)
    return grpc.aio.secure_channel(target, credentials, options=options)


class GrpcTransport:
    def __init__(self, channel: grpc.Channel, metadata: Metadata) -> None:
        self._channel = channel
        self._stub = _stub(channel)
        self._metadata = metadata

    def act(self, request: ActRequest, attempt: Attempt) -> ActResponse:
        # The call deadline is the router's budget, so no deadline_ms in the message.
        try:
            reply = self._stub.Act(
                _codec.act_message(request), timeout=attempt.budget_s, metadata=self._metadata
            )
        except grpc.RpcError as exc:
            raise error_from_rpc(exc) from exc
        return _codec.parse_act_message(reply)

    def open_stream(self) -> StreamPipe:
        return StreamPipe(self._stub, self._metadata)

    def close(self) -> None:
        self._channel.close()


class AsyncGrpcTransport:
    def __init__(self, channel: grpc.aio.Channel, metadata: Metadata) -> None:
        self._channel = channel
        self._stub = _stub(channel)
        self._metadata = metadata

    async def act(self, request: ActRequest, attempt: Attempt) -> ActResponse:
        try:
            reply = await self._stub.Act(
                _codec.act_message(request), timeout=attempt.budget_s, metadata=self._metadata
            )
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc) from exc
        return _codec.parse_act_message(reply)

    def open_stream(self) -> AsyncStreamPipe:
        return AsyncStreamPipe(self._stub, self._metadata)

    async def aclose(self) -> None:
        await self._channel.close()


_Inbox = router_pb2.ActResponse | RouterError


def _stream_ended() -> ConnectError:
    return ConnectError("router closed the StreamAct stream", request_sent=True, code="OK")


def _stream_failure(exc: Exception) -> RouterError:
    # Raised later, in the acting thread or task; keep the grpc error as its cause.
    if isinstance(exc, grpc.RpcError):
        error = error_from_rpc(exc)
    else:
        error = TransportError(f"StreamAct reader failed: {exc!r}", request_sent=True)
    error.__cause__ = exc
    return error


class StreamPipe:
    """One StreamAct call seen as send / receive-with-timeout. Sync grpc only offers a
    blocking iterator, so a reader thread moves replies into a queue we can wait on
    with a timeout; the thread ends with the call."""

    def __init__(self, stub: Any, metadata: Metadata) -> None:
        self._outbox: queue.SimpleQueue[router_pb2.ActRequest | None] = queue.SimpleQueue()
        self._inbox: queue.SimpleQueue[_Inbox] = queue.SimpleQueue()
        self._ended = threading.Event()
        self._call = stub.StreamAct(iter(self._outbox.get, None), metadata=metadata)
        self._reader = threading.Thread(target=self._read, name="router-stream-reader",
                                        daemon=True)
        self._reader.start()

    @property
    def ended(self) -> bool:
        return self._ended.is_set()

    def _read(self) -> None:
        try:
            for reply in self._call:
                self._inbox.put(reply)
            item: _Inbox = _stream_ended()
        except Exception as exc:  # whatever ends the stream, a waiting act must hear of it
            item = _stream_failure(exc)
        self._ended.set()
        self._inbox.put(item)

    def send(self, message: router_pb2.ActRequest) -> None:
        self._outbox.put(message)

    def receive(self, timeout_s: float) -> router_pb2.ActResponse:
        try:
            item = self._inbox.get(timeout=max(timeout_s, 0.0))
        except queue.Empty:
            raise DeadlineExceeded("no StreamAct reply within the budget",
                                   request_sent=True) from None
        if isinstance(item, RouterError):
            raise item
        return item

    def close(self) -> None:
        self._outbox.put(None)  # half-close: lets the router finish cleanly
        self._call.cancel()
        self._reader.join(timeout=1.0)


class AsyncStreamPipe:
    """The asyncio twin of StreamPipe. A reader task (rather than awaiting `read()` under
    a timeout) because cancelling a pending grpc.aio read cancels the whole call."""

    def __init__(self, stub: Any, metadata: Metadata) -> None:
        self._call = stub.StreamAct(metadata=metadata)
        self._inbox: asyncio.Queue[_Inbox] = asyncio.Queue()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @property
    def ended(self) -> bool:
        return self._reader.done()

    async def _read(self) -> None:
        try:
            while (reply := await self._call.read()) is not grpc.aio.EOF:
                self._inbox.put_nowait(reply)
            item: _Inbox = _stream_ended()
        except Exception as exc:  # whatever ends the stream, a waiting act must hear of it
            item = _stream_failure(exc)
        self._inbox.put_nowait(item)

    async def send(self, message: router_pb2.ActRequest) -> None:
        try:
            await self._call.write(message)
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc) from exc
        except asyncio.InvalidStateError as exc:
            # The call had already finished: this message never left.
            raise ConnectError("StreamAct stream already closed", request_sent=False) from exc

    async def receive(self, timeout_s: float) -> router_pb2.ActResponse:
        try:
            item = await asyncio.wait_for(self._inbox.get(), max(timeout_s, 0.0))
        except TimeoutError:
            raise DeadlineExceeded("no StreamAct reply within the budget",
                                   request_sent=True) from None
        if isinstance(item, RouterError):
            raise item
        return item

    async def aclose(self) -> None:
        self._call.cancel()
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)

