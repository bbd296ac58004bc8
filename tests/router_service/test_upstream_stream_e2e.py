"""`ROUTER_TRITON_PROTOCOL=grpc-stream`: the router's calls on one `ModelStreamInfer` stream,
against the real tritonserver (answers matched to their callers, a late answer dropped, errors
converted, a broken stream replaced), and a router serving through it."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
import pytest

from router_service.errors import UpstreamTimeout, UpstreamUnavailable
from router_service.upstream import TritonUpstream
from router_service.upstream_stream import TritonStreamUpstream, stream_error
from tests.router_fixtures import RouterFactory, act_body

pytestmark = [pytest.mark.slow, pytest.mark.triton]

SPEC = "specialist_reach_v3"


def batches() -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [rng.normal(0, 0.3, (n, 39)).astype(np.float32) for n in (1, 3, 1, 8, 2, 5)]


def test_concurrent_calls_on_one_stream_each_get_their_own_rows(triton_faults: Any) -> None:
    async def both() -> tuple[list[np.ndarray], list[np.ndarray], int]:
        unary, stream = TritonUpstream(triton_faults.grpc_url), TritonStreamUpstream(
            triton_faults.grpc_url)
        try:
            want = [await unary.infer(SPEC, b, None, 5.0) for b in batches()]
            got = await asyncio.gather(*(stream.infer(SPEC, b, None, 5.0) for b in batches()))
            return want, list(got), len(stream._pending)
        finally:
            await unary.close()
            await stream.close()

    want, got, left = asyncio.run(both())
    assert [g.shape for g in got] == [w.shape for w in want]
    for w, g in zip(want, got, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    assert left == 0


def test_a_late_answer_times_out_and_the_stream_keeps_serving(triton_faults: Any) -> None:
    obs = batches()[0]

    async def scenario() -> tuple[float, np.ndarray]:
        stream = TritonStreamUpstream(triton_faults.grpc_url)
        try:
            await stream.infer(SPEC, obs, None, 5.0)  # the stream is open
            triton_faults.set_fault("policy_" + SPEC, delay_ms=400, delay_prob=1.0)
            start = time.monotonic()
            with pytest.raises(UpstreamTimeout):
                await stream.infer(SPEC, obs, None, 0.1)
            waited = time.monotonic() - start
            triton_faults.clear_faults()
            await asyncio.sleep(0.5)  # the late answer arrives and is dropped
            return waited, await stream.infer(SPEC, obs, None, 5.0)
        finally:
            await stream.close()

    waited, after = asyncio.run(scenario())
    assert 0.09 <= waited < 0.35
    assert after.shape[0] == 1


def test_unknown_model_is_unavailable_at_once(triton_faults: Any) -> None:
    async def call() -> float:
        stream = TritonStreamUpstream(triton_faults.grpc_url)
        try:
            start = time.monotonic()
            with pytest.raises(UpstreamUnavailable, match="no_such_model"):
                await stream.infer("no_such_model", batches()[0], None, 3.0)
            return time.monotonic() - start
        finally:
            await stream.close()

    assert asyncio.run(call()) < 1.0  # answered by Triton, not cut by the timeout


def test_a_broken_stream_fails_its_calls_and_the_next_call_opens_another(
    triton_faults: Any,
) -> None:
    async def scenario() -> np.ndarray:
        stream = TritonStreamUpstream(triton_faults.grpc_url)
        try:
            await stream.infer(SPEC, batches()[0], None, 5.0)
            triton_faults.set_fault("policy_" + SPEC, delay_ms=300, delay_prob=1.0)
            pending = asyncio.ensure_future(stream.infer(SPEC, batches()[0], None, 5.0))
            await asyncio.sleep(0.05)
            assert stream._call is not None
            stream._call.cancel()  # as when the connection to Triton drops
            with pytest.raises((UpstreamTimeout, UpstreamUnavailable)):
                await pending
            triton_faults.clear_faults()
            return await stream.infer(SPEC, batches()[1], None, 5.0)
        finally:
            await stream.close()

    assert asyncio.run(scenario()).shape[0] == 3


@pytest.mark.parametrize(("message", "kind"), [
    ("Request timeout expired", "UpstreamTimeout"),
    ("Request for unknown model: 'x' is not found", "UpstreamUnavailable"),
    ("policy_x: injected failure", "UpstreamRejected"),
])
def test_stream_error_words(message: str, kind: str) -> None:
    assert type(stream_error("m", message)).__name__ == kind


def test_router_serves_through_the_stream(start_router: RouterFactory, triton_faults: Any
                                          ) -> None:
    # Triton's HTTP address points nowhere: only the gRPC stream can answer.
    router = start_router(triton_protocol="grpc-stream", triton_http_url="127.0.0.1:1")
    state = np.random.default_rng(0).normal(0, 0.3, 39).round(4).tolist()
    with router.client() as client:
        replies = [client.post("/v1/act", json=act_body(state)) for _ in range(5)]
    assert [r.status_code for r in replies] == [200] * 5, replies[-1].text
    assert {r.json()["route"] for r in replies} == {SPEC}
    assert {r.json()["fallback"] for r in replies} == {None}
