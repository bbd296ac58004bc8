"""Triton over one persistent KServe v2 `ModelStreamInfer` stream per replica
(`ROUTER_TRITON_PROTOCOL=grpc-stream`), for deployments that expose only Triton's gRPC port.
Measured, it is not the cheaper call it was expected to be: per call it costs the router what a
unary grpc.aio call does and Triton 2-4% less (docs/benchmarks/upstream-stream.md). Each
request is one message on the stream, tagged with an id; Triton answers each with one message
carrying the same id, in whatever order its models finish, and a reader task hands each answer
to its caller. A call that gives up (its budget ran out) leaves its id behind; the answer, if it
comes, is dropped.

What differs from the unary upstream: per-request errors arrive as `error_message` text, not a
status code, so they are told apart by Triton's wording; a broken stream fails every call on it
(`UpstreamUnavailable`) and the next call opens a new one.
"""

from __future__ import annotations

import asyncio
import itertools

import grpc
from tritonclient.grpc import service_pb2

from router_service.errors import (
    UpstreamError,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from router_service.upstream import TritonUpstream, convert

# Triton's wording for the two per-request errors the router treats differently from a rejection.
# (The HTTP upstream reads the same words; a unary gRPC call gets a status code instead.)
_TIMEOUT_WORDS = ("timeout", "timed out", "deadline")
_UNAVAILABLE_WORDS = ("unknown model", "not found", "not ready", "unavailable")


def stream_error(model: str, message: str) -> UpstreamError:
    text = f"{model}: {message}"
    lowered = message.lower()
    if any(w in lowered for w in _TIMEOUT_WORDS):
        return UpstreamTimeout(text)
    if any(w in lowered for w in _UNAVAILABLE_WORDS):
        return UpstreamUnavailable(text)
    return UpstreamRejected(text)


class TritonStreamUpstream(TritonUpstream):
    """Health, readiness and config calls stay unary, and `infer` is inherited (request, timer,
    errors); only sending differs: a message on the stream instead of a call."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._call: grpc.aio.StreamStreamCall | None = None
        self._pending: dict[str, tuple[str, asyncio.Future[service_pb2.ModelInferResponse]]] = {}
        self._ids = itertools.count()
        self._write = asyncio.Lock()  # grpc allows one write in flight per stream
        self._reader: asyncio.Task[None] | None = None

    def _stream(self) -> grpc.aio.StreamStreamCall:
        if self._call is None:
            call = self._stub.ModelStreamInfer()  # no deadline: it lives as long as the router
            self._call = call
            self._reader = asyncio.get_running_loop().create_task(self._read(call))
        return self._call

    async def _read(self, call: grpc.aio.StreamStreamCall) -> None:
        error: UpstreamError = UpstreamUnavailable("the inference stream to Triton ended")
        try:
            async for message in call:
                entry = self._pending.pop(message.infer_response.id, None)
                if entry is None or entry[1].done():
                    continue  # its caller gave up
                model, future = entry
                if message.error_message:
                    future.set_exception(stream_error(model, message.error_message))
                else:
                    future.set_result(message.infer_response)
        except grpc.aio.AioRpcError as exc:
            error = convert(exc, "inference stream")
        finally:
            if self._call is call:
                self._call = None
            pending, self._pending = self._pending, {}
            for _, future in pending.values():
                if not future.done():
                    future.set_exception(error)

    async def _send(self, request: service_pb2.ModelInferRequest, timeout_s: float
                    ) -> service_pb2.ModelInferResponse:
        """One message on the stream, and its answer (the caller's timer cuts the wait)."""
        request.id = request_id = str(next(self._ids))
        future: asyncio.Future[service_pb2.ModelInferResponse] = (
            asyncio.get_running_loop().create_future())
        self._pending[request_id] = (request.model_name, future)
        try:
            async with self._write:
                await self._stream().write(request)
            return await future
        finally:
            self._pending.pop(request_id, None)

    async def close(self) -> None:
        if self._call is not None:
            self._call.cancel()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
        await super().close()
