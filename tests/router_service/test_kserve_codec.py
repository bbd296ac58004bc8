"""The KServe facade's codec, on the bytes tritonclient itself builds (its request builders),
without servers: tensors in, action out, request parameters, and errors naming the field."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from numpy.typing import NDArray
from tritonclient.grpc import _utils as grpc_utils
from tritonclient.http import InferResult
from tritonclient.http import _utils as http_utils

from router_service.engine import ActReply
from router_service.errors import (
    DeadlineExpired,
    Forbidden,
    InvalidRequest,
    Overloaded,
    RateLimited,
    RouterError,
    Unauthorized,
    UnknownTask,
)
from router_service.keys import parse_keys
from router_service.kserve.grpc_service import _observation, _parser, _response
from router_service.kserve.http_codec import decode_request, encode_response
from router_service.kserve.models import ModelView, UnknownModel
from router_service.kserve.params import call_params, grpc_values, robot_for
from router_service.kserve.service import kserve_error
from router_service.kserve.tensors import from_values

DIM = 39
STATE = np.random.default_rng(1).normal(0, 0.3, (1, DIM)).astype(np.float32)
PARAMS = {"robot_id": "r-1", "episode_id": "e-1", "task": "reach-v3"}
REPLY = ActReply(action=[0.25, -0.5, 0.125, 1.0], route="specialist_reach_v3",
                 policy_version="v7", task="reach-v3", task_source="declared",
                 task_confidence=1.0, fallback=None, deadline_met=True,
                 timing_ms={"queued": 0.1, "scoring": 0.2, "upstream": 1.5, "total": 2.0},
                 decision_id="d" * 32, reason="best_score")
SHORT_BINARY = (b'{"inputs": [{"name": "observation", "datatype": "FP32", "shape": [39], '
                b'"parameters": {"binary_data_size": 8}}]}')


def http_body(inputs: list[Any], outputs: list[Any] | None = None, timeout: int | None = None,
              parameters: dict[str, Any] | None = None) -> tuple[bytes, str | None]:
    """What tritonclient.http's `infer` puts on the wire (body, Inference-Header-Content-Length)."""
    body, size = http_utils._get_inference_request(
        inputs=inputs, request_id="", outputs=outputs, sequence_id=0, sequence_start=False,
        sequence_end=False, priority=0, timeout=timeout,
        custom_parameters=PARAMS if parameters is None else parameters)
    return body, None if size is None else str(size)


def http_input(data: NDArray[Any], datatype: str = "FP32", binary: bool = True,
               name: str = "observation") -> Any:
    tensor = httpclient.InferInput(name, list(data.shape), datatype)
    tensor.set_data_from_numpy(data, binary_data=binary)
    return tensor


def grpc_request(data: NDArray[Any] | None, datatype: str = "FP32", name: str = "observation",
                 shape: list[int] | None = None) -> Any:
    tensor = grpcclient.InferInput(name, shape or list(STATE.shape), datatype)
    if data is not None:
        tensor.set_data_from_numpy(data)
    return grpc_utils._get_inference_request(
        model_name="route", inputs=[tensor], model_version="", request_id="", outputs=None,
        sequence_id=0, sequence_start=False, sequence_end=False, priority=0, timeout=None,
        parameters=PARAMS)


def short_raw() -> Any:
    request = grpc_request(STATE)
    request.raw_input_contents[0] = STATE[0, :5].tobytes()
    return request


def field_of(call: Any) -> str:
    with pytest.raises(RouterError) as info:
        call()
    assert info.value.field is not None
    assert info.value.message.startswith(info.value.field), info.value.message
    return info.value.field


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_http_request_decodes_binary_and_json_tensors(binary: bool) -> None:
    body, size = http_body([http_input(STATE, binary=binary)], timeout=30_000)
    decoded = decode_request(body, size, DIM)
    np.testing.assert_array_equal(decoded.observation.state, STATE[0])
    assert decoded.observation.batched and decoded.binary_output  # no outputs named: binary
    params = call_params(decoded.parameters)
    assert (params.robot_id, params.episode_id, params.task) == ("r-1", "e-1", "reach-v3")
    assert params.deadline_ms == 30.0  # tritonclient's timeout= (µs) is the budget


@pytest.mark.parametrize("binary", [True, False])
def test_http_response_reads_back_with_tritonclient(binary: bool) -> None:
    body, size = http_body([http_input(STATE)],
                           outputs=[httpclient.InferRequestedOutput("action", binary_data=binary)])
    decoded = decode_request(body, size, DIM)
    assert decoded.binary_output is binary
    payload, headers = encode_response("route", decoded, REPLY)
    result = InferResult.from_response_body(
        payload, header_length=int(headers["Inference-Header-Content-Length"]) if binary
        else None)
    np.testing.assert_array_equal(result.as_numpy("action"), [REPLY.action])
    params = result.get_response()["parameters"]
    assert params["route"] == "specialist_reach_v3" and params["deadline_met"] is True
    assert params["fallback"] == "" and params["decision_id"] == REPLY.decision_id


def test_grpc_request_and_response_round_trip() -> None:
    request = _parser(grpcclient.service_pb2.ModelInferRequest)(
        grpc_request(STATE).SerializeToString())
    obs = _observation(request, DIM)
    np.testing.assert_array_equal(obs.state, STATE[0])
    assert call_params(grpc_values(request.parameters)).robot_id == "r-1"
    response = _response(request, REPLY, obs.batched)
    result = grpcclient.InferResult(response)
    np.testing.assert_array_equal(result.as_numpy("action"), [REPLY.action])
    assert response.parameters["route"].string_param == "specialist_reach_v3"
    assert response.parameters["deadline_met"].bool_param is True


@pytest.mark.parametrize(("inputs", "field"), [
    ([http_input(STATE.astype(np.float64), "FP64")], "observation.datatype"),
    ([http_input(STATE[:, :5])], "observation.shape"),
    ([http_input(np.repeat(STATE, 2, axis=0))], "observation.shape"),
    ([http_input(STATE, name="obs")], "inputs[0].name"),
    ([http_input(STATE), http_input(STATE)], "inputs[1].name"),
    ([httpclient.InferInput("observation", [1, DIM], "FP32")], "observation.data"),
    ([http_input(np.where(np.arange(DIM) == 3, np.nan, STATE).astype(np.float32))],
     "observation[3]"),
    ([http_input(np.where(np.arange(DIM) == 7, np.inf, STATE).astype(np.float32), binary=False)],
     "observation[7]"),
], ids=["dtype", "shape", "batch", "name", "twice", "no-data", "nan", "inf-json"])
def test_http_bad_inputs_name_the_field(inputs: list[Any], field: str) -> None:
    body, size = http_body(inputs)
    assert field_of(lambda: decode_request(body, size, DIM)) == field


@pytest.mark.parametrize(("body", "size", "field"), [
    (b"{not json", None, "body"),
    (b"[1, 2]", None, "body"),
    (b'{"inputs": []}', None, "inputs"),
    (b'{"inputs": [{"name": "observation", "datatype": "FP32", "shape": "39"}]}', None,
     "observation.shape"),
    (b'{"inputs": [{"name": "observation", "datatype": "FP32", "shape": [39], '
     b'"data": ["1"]}]}', None, "observation.data"),
    (b'{"inputs": [{"name": "observation", "datatype": "FP32", "shape": [39], '
     b'"data": [true]}]}', None, "observation.data"),
    (b'{"inputs": [{"name": "observation", "datatype": "FP32", "shape": [39], '
     b'"parameters": {"binary_data_size": 156}}]}', "120", "inference-header-content-length"),
    (b'{"inputs": [{"name": "observation", "datatype": "FP32", "shape": [39], '
     b'"parameters": {"binary_data_size": 156}}]}' + b"\0" * 12, None,
     "body"),
    (SHORT_BINARY + b"\0" * 8, str(len(SHORT_BINARY)), "inputs[0].parameters.binary_data_size"),
    (b'{"inputs": [{"name": "observation", "datatype": "FP32", "shape": [39], "data": [0]}],'
     b' "outputs": [{"name": "value"}]}', None, "observation.data"),
], ids=["not-json", "not-object", "no-inputs", "shape-type", "string-data", "bool-data",
        "header-too-long", "binary-without-header", "short-binary", "short-data"])
def test_http_malformed_bodies_name_the_field(body: bytes, size: str | None, field: str) -> None:
    assert field_of(lambda: decode_request(body, size, DIM)) == field


def test_http_unknown_output_is_named() -> None:
    body, size = http_body([http_input(STATE)], outputs=[httpclient.InferRequestedOutput("v")])
    assert field_of(lambda: decode_request(body, size, DIM)) == "outputs[0].name"


@pytest.mark.parametrize(("request_", "field"), [
    (grpc_request(STATE.astype(np.float64), "FP64"), "observation.datatype"),
    (grpc_request(None), "raw_input_contents"),
    (grpc_request(STATE[:, :5], shape=[1, 5]), "observation.shape"),
    (grpc_request(np.repeat(STATE, 3, axis=0), shape=[3, DIM]), "observation.shape"),
    (grpc_request(STATE, name="state"), "inputs[0].name"),
    (short_raw(), "raw_input_contents[0]"),
    (grpc_request(np.where(np.arange(DIM) == 0, -np.inf, STATE).astype(np.float32)),
     "observation[0]"),
], ids=["dtype", "no-data", "shape", "batch", "name", "short-raw", "inf"])
def test_grpc_bad_inputs_name_the_field(request_: Any, field: str) -> None:
    assert field_of(lambda: _observation(request_, DIM)) == field


def test_grpc_contents_are_accepted_and_garbage_is_malformed() -> None:
    request = grpc_request(None)
    request.inputs[0].contents.fp32_contents.extend(STATE[0].tolist())
    np.testing.assert_array_equal(_observation(request, DIM).state, STATE[0])
    parsed = _parser(grpcclient.service_pb2.ModelInferRequest)(b"\x0a\xff\xff\xff")
    assert type(parsed).__name__ == "Malformed" and "ModelInferRequest" in parsed.reason


@pytest.mark.parametrize(("values", "field"), [
    ({"robot_id": "r"}, "parameters.episode_id"),
    ({"robot_id": 5, "episode_id": "e"}, "parameters.robot_id"),
    ({"robot_id": "r", "episode_id": "e", "task": 1}, "parameters.task"),
    ({"robot_id": "r", "episode_id": "e", "deadline_ms": "20"}, "parameters.deadline_ms"),
    ({"robot_id": "r", "episode_id": "e", "deadline_ms": True}, "parameters.deadline_ms"),
    ({"robot_id": "r", "episode_id": "e", "timeout": float("nan")}, "parameters.timeout"),
])
def test_bad_parameters_name_the_field(values: dict[str, Any], field: str) -> None:
    assert field_of(lambda: call_params(values)) == field


def test_robot_id_defaults_only_to_a_keys_one_robot() -> None:
    given = call_params({"robot_id": "arm-2", "episode_id": "e"})
    implied = call_params({"episode_id": "e"})
    one = parse_keys('{"k1": {"robots": ["arm-1"]}, "k2": {"robots": ["arm-*"]}}', "test")
    assert robot_for(given, one[0]) == "arm-2"  # the engine then checks the key covers it
    assert robot_for(implied, one[0]) == "arm-1"
    assert field_of(lambda: robot_for(implied, one[1])) == "parameters.robot_id"


def test_deadlines_combine_to_the_earliest() -> None:
    base = {"robot_id": "r", "episode_id": "e"}
    assert call_params(base).deadline_ms is None
    assert call_params({**base, "timeout": 0}).deadline_ms is None  # Triton's "no timeout"
    assert call_params({**base, "timeout": 40_000, "deadline_ms": 25}).deadline_ms == 25
    assert call_params({**base, "timeout": 10**9}).deadline_ms == 60_000  # capped, no hurry


def test_route_models_pin_their_task() -> None:
    spec = ModelView("specialist_reach_v3", "specialist", ("reach-v3",), {}, {})
    gen = ModelView("generalist", "generalist", ("reach-v3", "pick-place-v3"), {}, {})
    route = ModelView("route", "route", ("reach-v3", "pick-place-v3"), {}, {})
    assert spec.task_for(None) == "reach-v3" and spec.task_for("reach-v3") == "reach-v3"
    assert gen.task_for("pick-place-v3") == "pick-place-v3"
    assert route.task_for(None) is None and route.task_for("fly") == "fly"  # engine refuses
    assert field_of(lambda: spec.task_for("pick-place-v3")) == "parameters.task"
    assert field_of(lambda: gen.task_for(None)) == "parameters.task"


@pytest.mark.parametrize(("exc", "status", "code", "field"), [
    (InvalidRequest("robot_id must be ...", field="robot_id"), 400, "INVALID_ARGUMENT",
     "parameters.robot_id"),
    (InvalidRequest("observation.state[2] is not finite", field="observation.state[2]"), 400,
     "INVALID_ARGUMENT", "observation[2]"),
    (UnknownTask("fly", ["reach-v3"]), 400, "INVALID_ARGUMENT", "parameters.task"),
    (UnknownModel("unknown model 'x'", field="model_name"), 404, "NOT_FOUND", "model_name"),
    (Unauthorized("no key", field="authorization"), 401, "UNAUTHENTICATED", "authorization"),
    (Forbidden("not yours", field="robot_id"), 403, "PERMISSION_DENIED", "parameters.robot_id"),
    (RateLimited("slow down", retry_after_ms=20, key_id="k"), 429, "RESOURCE_EXHAUSTED", None),
    (Overloaded("busy", retry_after_ms=5, reason="inflight"), 503, "RESOURCE_EXHAUSTED", None),
    (DeadlineExpired("passed", field="deadline_ms"), 408, "DEADLINE_EXCEEDED",
     "parameters.deadline_ms"),
    (RouterError("bug"), 500, "INTERNAL", None),
])
def test_router_errors_become_kserve_statuses(exc: RouterError, status: int, code: str,
                                              field: str | None) -> None:
    err = kserve_error(exc)
    assert (err.http_status, err.grpc_code, err.field) == (status, code, field)
    if field:
        assert err.message.startswith(field)


def test_values_out_of_fp32_range_are_not_finite() -> None:
    assert field_of(lambda: from_values([1e39] + [0.0] * (DIM - 1), DIM, False,
                                        "observation.data")) == "observation[0]"
