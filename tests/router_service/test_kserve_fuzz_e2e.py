"""Fuzzing the KServe v2 facade on the real stack: whatever a client sends to
/v2/models/route/infer (HTTP) or ModelInfer (gRPC), never a 5xx or INTERNAL."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.router_fixtures import RedisServer, RouterProcess
from tests.router_service.kserve_testkit import SPEC, STATE, auth, kserve_router

pytestmark = [pytest.mark.slow, pytest.mark.triton, pytest.mark.redis]


@pytest.fixture(scope="module")
def router(triton: Any, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[RouterProcess]:
    yield from kserve_router(triton, redis_server, tmp_path_factory.mktemp("kserve-fuzz"))


# -- fuzzing: whatever a client sends to /v2/models/route/infer, never a 5xx ---------------
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63) | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner,
                                                                max_size=5),
    max_leaves=20,
)
SHAPES = st.sampled_from([[1, 39], [39], [2, 39], [0, 39], [1, 5], [], [1, 1, 39]])
TENSOR = st.fixed_dictionaries(
    {"name": st.sampled_from(["observation", "obs"]) | JSON,
     "datatype": st.sampled_from(["FP32", "FP64", "BYTES"]) | JSON,
     "shape": SHAPES | JSON},
    optional={"data": st.lists(st.floats(width=32), min_size=37, max_size=40)
              | st.lists(st.lists(st.floats(width=32), max_size=39), max_size=2) | JSON,
              "parameters": st.fixed_dictionaries(
                  {}, optional={"binary_data_size": st.sampled_from([156, 0, 4, -1]) | JSON})})
PARAMS = st.fixed_dictionaries(
    {}, optional={"robot_id": st.sampled_from(["kserve-fuzz", "arm-1", ""]) | JSON,
                  "episode_id": st.sampled_from(["ep-1", "x" * 129]) | JSON,
                  "task": st.sampled_from(["reach-v3", "fly-v3", ""]) | JSON,
                  # below ~1 ms a budget is gone before the handler runs: the engine's 503
                  # (late_in_queue) by design, so the fuzzer stays out of (0, 5) ms
                  "deadline_ms": st.floats(min_value=5.0, max_value=1e9) | st.floats(
                      max_value=0.0) | JSON,
                  "timeout": st.integers(-10, 0) | st.integers(5000, 10**12) | JSON,
                  "binary_data_output": st.booleans() | JSON})
REQUEST = st.fixed_dictionaries(
    {"inputs": st.lists(TENSOR, max_size=2) | JSON},
    optional={"parameters": PARAMS | JSON, "id": JSON,
              "outputs": st.lists(st.fixed_dictionaries(
                  {"name": st.sampled_from(["action", "value"]) | JSON}), max_size=2) | JSON})
HEADER_LENGTH = st.none() | st.integers(-3, 400).map(str) | st.sampled_from(["", "abc", "1e3"])
Case = tuple[bytes, dict[str, str]]


@st.composite
def anything(draw: st.DrawFn) -> Case:
    """Random documents, often KServe-shaped, as JSON or as a header + binary tail."""
    head = json.dumps(draw(REQUEST | JSON)).encode()  # writes NaN/Infinity, as tritonclient
    length = draw(HEADER_LENGTH)
    if length is None:
        return draw(st.binary(max_size=300)) if draw(st.booleans()) else head, {}
    if draw(st.booleans()):
        length = str(len(head))  # a well-formed split, often with the wrong sizes
    return head + draw(st.binary(max_size=200)), {"Inference-Header-Content-Length": length}


@st.composite
def near_valid(draw: st.DrawFn) -> Case:
    """A request tritonclient could have sent, with the parameters varied: reaches the engine."""
    state = draw(st.lists(st.floats(-10, 10, width=32), min_size=39, max_size=39))
    binary = draw(st.booleans())
    tensor: dict[str, Any] = {"name": "observation", "datatype": "FP32",
                              "shape": draw(st.sampled_from([[1, 39], [39]]))}
    parameters: dict[str, Any] = {"robot_id": "kserve-fuzz", "episode_id": "ep-1"}
    # Mostly valid values, each parameter varied on its own: many requests reach Triton.
    for name, valid, invalid in (
            ("robot_id", ["kserve-fuzz"], ["r 1", 1]), ("episode_id", ["ep-2"], [""]),
            ("task", ["reach-v3", "pick-place-v3"], ["fly-v3", 3]),
            ("deadline_ms", [30.0, 300], [-1.0, 1e9, "20"]),
            ("timeout", [0, 200_000, 10**12], [-5]),
            ("deadline_unix_ms", [time.time() * 1000 + 5000], [1.0]),
            ("binary_data_output", [True, False], [])):
        value = draw(st.sampled_from([None] * 4 + valid * 2 + invalid))
        if value is not None:
            parameters[name] = value
    doc: dict[str, Any] = {"inputs": [tensor], "parameters": parameters}
    if binary:
        tensor["parameters"] = {"binary_data_size": 156}
        head = json.dumps(doc).encode()
        return (head + np.asarray(state, dtype="<f4").tobytes(),
                {"Inference-Header-Content-Length": str(len(head))})
    tensor["data"] = state
    return json.dumps(doc).encode(), {}


CASES = settings(max_examples=150, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow])


@CASES
@given(case=anything() | near_valid())
def test_fuzz_http_infer_never_answers_5xx(router: RouterProcess, case: Case) -> None:
    body, extra = case
    headers = {**auth(), "Content-Type": "application/octet-stream", **extra}
    reply = httpx.post(f"{router.url}/v2/models/route/infer", content=body, headers=headers,
                       timeout=10.0)
    assert reply.status_code < 500, (reply.status_code, reply.text)
    event(f"HTTP {reply.status_code}")  # --hypothesis-show-statistics: what was reached
    if reply.status_code >= 400:
        error = reply.json()["error"]
        assert isinstance(error, str) and error


# What a client's mistake may get over gRPC; never INTERNAL or UNKNOWN (the router's fault).
CLIENT_CODES = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
                grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED,
                grpc.StatusCode.PERMISSION_DENIED}


@st.composite
def infer_request(draw: st.DrawFn) -> bytes:
    """A `ModelInferRequest`, each field valid or not: models, tensors, raw contents and
    parameters of every kind, serialised (what reaches the router's deserializer)."""
    from tritonclient.grpc import service_pb2

    tensors = [service_pb2.ModelInferRequest.InferInputTensor(
        name=draw(st.sampled_from(["observation", "task_onehot", "x", ""])),
        datatype=draw(st.sampled_from(["FP32", "FP64", "INT8", "BYTES", "BF16", "??"])),
        shape=draw(st.lists(st.integers(-2, 40), max_size=3)))
        for _ in range(draw(st.integers(0, 2)))]
    raw = draw(st.lists(st.one_of(st.binary(max_size=200), st.just(STATE.tobytes())),
                        max_size=2))
    values = draw(st.dictionaries(st.sampled_from(
        ["robot_id", "episode_id", "task", "deadline_ms", "timeout", "deadline_unix_ms", "z"]),
        st.one_of(st.text(max_size=20), st.integers(-2**40, 2**40), st.booleans(),
                  st.floats(allow_nan=True)), max_size=6))
    params = {}
    for name, value in values.items():
        param = service_pb2.InferParameter()
        if isinstance(value, bool):
            param.bool_param = value
        elif isinstance(value, int):
            param.int64_param = value
        elif isinstance(value, float):
            param.double_param = value
        else:
            param.string_param = value
        params[name] = param
    request = service_pb2.ModelInferRequest(
        model_name=draw(st.sampled_from(["route", SPEC, "generalist", "nope", ""])),
        model_version=draw(st.sampled_from(["", "1", "2"])), inputs=tensors,
        raw_input_contents=raw, parameters=params)
    return bytes(request.SerializeToString())


@CASES
@given(raw=infer_request() | st.binary(max_size=300))
def test_fuzz_grpc_infer_never_answers_internal(router: RouterProcess, raw: bytes) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{router.grpc_port}") as channel:
        infer = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        try:
            infer(raw, timeout=5.0, metadata=tuple(auth().items()))
            event("OK")
        except grpc.RpcError as err:
            assert err.code() in CLIENT_CODES, (err.code(), err.details())
            assert err.details()  # the reason, field first
            event(err.code().name)


def test_router_is_still_healthy(router: RouterProcess) -> None:
    assert httpx.get(f"{router.url}/readyz", timeout=5.0).status_code == 200
    refused = [line for line in router.metrics().splitlines()
               if line.startswith("router_requests_total{") and 'route="none"' in line
               and 'outcome="rejected"' in line]
    assert refused and float(refused[0].split()[-1]) > 0  # counted like /v1/act refusals
