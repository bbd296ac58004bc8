"""Triton over KServe v2 HTTP with the binary tensor extension, on a pool of keep-alive
HTTP/1.1 connections (`http1.py`): the router's default upstream.

Why not gRPC: through the router's own classes, one call costs 0.46 ms of client CPU over
`grpc.aio` and 0.20 ms over this client (1,000 sequential calls each against the same Triton,
`python -m loadtest.upstream_cost`, docs/benchmarks/raw/20261201T210118Z/upstream-cost.json).
The router makes one such call per batch.

A request is the JSON inference header followed by the raw FP32 rows
(`Inference-Header-Content-Length`); the answer carries `action` as raw bytes the same way.
"""

from __future__ import annotations

import numpy as np
import orjson
from numpy.typing import NDArray

from router_service.errors import (
    UpstreamError,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from router_service.http1 import Http1Pool, Reply
from router_service.upstream import ACTION, OBSERVATION, TASK_VECTOR

_HEADER_LENGTH = b"inference-header-content-length"


def _request(model: str, tensors: list[tuple[str, NDArray[np.float32]]], timeout_us: int
             ) -> bytes:
    header = orjson.dumps({
        "inputs": [{"name": name, "shape": list(rows.shape), "datatype": "FP32",
                    "parameters": {"binary_data_size": rows.nbytes}} for name, rows in tensors],
        "outputs": [{"name": ACTION, "parameters": {"binary_data": True}}],
        "parameters": {"timeout": timeout_us},
    })
    body = header + b"".join(np.ascontiguousarray(r, dtype=np.float32).tobytes()
                             for _, r in tensors)
    return (b"POST /v2/models/%s/infer HTTP/1.1\r\nHost: triton\r\n"
            b"Content-Type: application/octet-stream\r\nInference-Header-Content-Length: %d\r\n"
            b"Content-Length: %d\r\n\r\n" % (model.encode(), len(header), len(body))) + body


def _error(model: str, reply: Reply) -> UpstreamError:
    try:
        message = str(orjson.loads(reply.body).get("error", reply.body[:200]))
    except (orjson.JSONDecodeError, AttributeError):
        message = reply.body[:200].decode(errors="replace")
    text = f"{model}: HTTP {reply.status}: {message}"
    if "timeout" in message.lower() or "deadline" in message.lower():
        return UpstreamTimeout(text)
    if reply.status in (404, 503) or "unavailable" in message.lower():
        return UpstreamUnavailable(text)
    return UpstreamRejected(text)


class TritonHttpUpstream:
    def __init__(self, url: str) -> None:
        self.url = url
        self._pool = Http1Pool(url)

    async def infer(self, model: str, obs: NDArray[np.float32],
                    conditioning: NDArray[np.float32] | None, timeout_s: float
                    ) -> NDArray[np.float32]:
        """`[N, state_dim]` observations (+ `[N, tasks]` conditioning) → `[N, action_dim]`."""
        if timeout_s <= 0:
            raise UpstreamTimeout(f"{model}: no budget left to call")
        tensors = [(OBSERVATION, obs)]
        if conditioning is not None:
            tensors.append((TASK_VECTOR, conditioning))
        reply = await self._pool.request(_request(model, tensors, max(1, int(timeout_s * 1e6))),
                                 timeout_s, model)
        if reply.status != 200:
            raise _error(model, reply)
        return self._action(model, reply, obs.shape[0])

    @staticmethod
    def _action(model: str, reply: Reply, rows: int) -> NDArray[np.float32]:
        raw = reply.headers.get(_HEADER_LENGTH)
        if raw is None or not raw.isdigit():
            raise UpstreamRejected(f"{model}: reply has no binary output")
        n = int(raw)
        try:
            meta = orjson.loads(reply.body[:n])
            out = next(o for o in meta["outputs"] if o["name"] == ACTION)
            shape = [int(d) for d in out["shape"]]
        except (orjson.JSONDecodeError, KeyError, StopIteration, TypeError, ValueError) as exc:
            raise UpstreamRejected(f"{model}: reply has no {ACTION!r} output") from exc
        if out.get("datatype") != "FP32" or len(shape) != 2 or shape[0] != rows:
            raise UpstreamRejected(f"{model}: {ACTION!r} is {out.get('datatype')}{shape}, "
                                   f"expected FP32[{rows}, *]")
        data = reply.body[n:n + rows * shape[1] * 4]
        return np.frombuffer(data, dtype=np.float32).reshape(rows, shape[1])

    async def _get(self, path: str, timeout_s: float) -> Reply:
        request = b"GET %s HTTP/1.1\r\nHost: triton\r\n\r\n" % path.encode()
        return await self._pool.request(request, timeout_s, path)

    async def _ready(self, path: str, timeout_s: float) -> bool | None:
        try:
            return (await self._get(path, timeout_s)).status == 200
        except UpstreamTimeout:
            return None  # a busy server is not a down one: callers keep what they knew
        except UpstreamError:
            return False

    async def server_ready(self, timeout_s: float = 2.0) -> bool | None:
        return await self._ready("/v2/health/ready", timeout_s)

    async def model_ready(self, model: str, timeout_s: float = 2.0) -> bool | None:
        return await self._ready(f"/v2/models/{model}/ready", timeout_s)

    async def policy_version(self, model: str, timeout_s: float = 1.0) -> str:
        try:
            reply = await self._get(f"/v2/models/{model}/config", timeout_s)
            if reply.status != 200:
                return "unknown"
            value = orjson.loads(reply.body)["parameters"]["policy_version"]["string_value"]
        except (UpstreamError, orjson.JSONDecodeError, KeyError, TypeError):
            return "unknown"
        return str(value)

    async def close(self) -> None:
        self._pool.close()
