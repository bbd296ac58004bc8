"""The KServe v2 facade against the real stack (tritonserver, redis-server, a router process),
called by unmodified tritonclient: grpc, grpc.aio and http (binary and JSON tensors).

One router serves the whole module (tests/router_service/kserve_testkit.py); the fuzzing is in
test_kserve_fuzz_e2e.py."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import pytest
import redis
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpcaio
import tritonclient.http as httpclient
from numpy.typing import NDArray
from tritonclient.utils import InferenceServerException

from tests.router_fixtures import RedisServer, RouterProcess
from tests.router_service.kserve_testkit import ARM_KEY, SPEC, STATE, auth, kserve_router

pytestmark = [pytest.mark.slow, pytest.mark.triton, pytest.mark.redis]


@pytest.fixture(scope="module")
def router(triton: Any, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[RouterProcess]:
    yield from kserve_router(triton, redis_server, tmp_path_factory.mktemp("kserve"))


@pytest.fixture(scope="module")
def grpc_client(router: RouterProcess) -> Iterator[grpcclient.InferenceServerClient]:
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{router.grpc_port}")
    yield client
    client.close()


@pytest.fixture(scope="module")
def http_client(router: RouterProcess) -> Iterator[httpclient.InferenceServerClient]:
    client = httpclient.InferenceServerClient(f"127.0.0.1:{router.http_port}")
    yield client
    client.close()


def params(episode: str, task: str | None = None, robot: str = "kserve-1",
           **more: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"robot_id": robot, "episode_id": episode, **more}
    if task is not None:
        out["task"] = task
    return out


def grpc_input(state: NDArray[Any] = STATE, datatype: str = "FP32", name: str = "observation"
               ) -> grpcclient.InferInput:
    tensor = grpcclient.InferInput(name, list(state.shape), datatype)
    tensor.set_data_from_numpy(state)
    return tensor


def http_input(state: NDArray[Any] = STATE, binary: bool = True, datatype: str = "FP32",
               name: str = "observation") -> httpclient.InferInput:
    tensor = httpclient.InferInput(name, list(state.shape), datatype)
    tensor.set_data_from_numpy(state, binary_data=binary)
    return tensor


def v1_act(router: RouterProcess, task: str | None, episode: str) -> dict[str, Any]:
    body: dict[str, Any] = {"robot_id": "kserve-1", "episode_id": episode, "deadline_ms": 500,
                            "observation": {"state": STATE[0].tolist()}}
    if task is not None:
        body["task"] = task
    with router.client() as c:
        reply = c.post("/v1/act", json=body)
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def direct_triton(triton: Any, ensemble: str, task: str) -> dict[str, Any]:
    """What Triton's own ensemble answers for STATE on `task` (the generalist needs its one-hot
    in the manifest's task order): the pass-through reference."""
    tasks = list(triton.manifest.tasks)
    client = grpcclient.InferenceServerClient(triton.grpc_url)
    inputs = [grpc_input(STATE)]
    if ensemble == "generalist":
        onehot = np.zeros((1, len(tasks)), np.float32)
        onehot[0, tasks.index(task)] = 1.0
        inputs.append(grpc_input(onehot, name="task_onehot"))
    try:
        result = client.infer(ensemble, inputs)
    finally:
        client.close()
    return {"action": result.as_numpy("action")[0].tolist(), "route": ensemble, "task": task,
            "task_source": "declared"}


def decision(redis_url: str, decision_id: str) -> dict[str, Any]:
    """The decision as the router logged it (flushed to Redis every 100 ms)."""
    stream: Any = redis.Redis.from_url(redis_url, decode_responses=True)
    give_up = time.monotonic() + 5.0
    while time.monotonic() < give_up:
        for _, entry in stream.xrevrange("router:decisions", count=200):
            if entry["decision_id"] == decision_id:
                return dict(json.loads(entry["record"]))
        time.sleep(0.05)
    raise AssertionError(f"decision {decision_id} not in the log")


def plain(value: Any) -> Any:
    """A response parameter as a value: gRPC's JSON form wraps it (`{"string_param": ...}`)."""
    if isinstance(value, dict):
        (choice,) = value.values()
        return choice
    return value


def status_of(call: Any) -> tuple[str, str]:
    with pytest.raises(InferenceServerException) as info:
        call()
    return str(info.value.status()), str(info.value.message())


def test_health_metadata_and_config(grpc_client: Any, http_client: Any) -> None:
    assert grpc_client.is_server_live() and grpc_client.is_server_ready()
    assert http_client.is_server_live() and http_client.is_server_ready()
    for model in ("route", SPEC, "generalist"):
        assert grpc_client.is_model_ready(model) and http_client.is_model_ready(model)
    assert not grpc_client.is_model_ready("no-such-model")
    assert not http_client.is_model_ready("no-such-model")
    assert "binary_tensor_data" in grpc_client.get_server_metadata().extensions
    assert http_client.get_server_metadata()["name"] == "robot-policy-router"
    for meta in (grpc_client.get_model_metadata("route", headers=auth(), as_json=True),
                 http_client.get_model_metadata("route", headers=auth())):
        assert meta["inputs"][0]["name"] == "observation"
        assert [int(d) for d in meta["inputs"][0]["shape"]] == [-1, 39]
        assert [int(d) for d in meta["outputs"][0]["shape"]] == [-1, 4]
    config = grpc_client.get_model_config(SPEC, headers=auth()).config
    assert config.max_batch_size == 1 and list(config.input[0].dims) == [39]
    assert config.parameters["tasks"].string_value == "reach-v3"
    http_config = http_client.get_model_config("generalist", headers=auth())
    assert http_config["parameters"]["kind"]["string_value"] == "generalist"
    # Metadata and config are robot endpoints (like /v1/contract); health is open.
    assert status_of(lambda: grpc_client.get_model_config(SPEC))[0] == "StatusCode.UNAUTHENTICATED"
    assert status_of(lambda: http_client.get_model_metadata(SPEC))[0] == "401"


@pytest.mark.parametrize(("model", "task", "act_task"), [
    ("route", None, None), ("route", "pick-place-v3", "pick-place-v3"),
    (SPEC, None, "reach-v3"), ("generalist", "reach-v3", "reach-v3"),
], ids=["route-inferred", "route-declared", "specialist", "generalist"])
def test_actions_equal_those_of_v1_act(router: RouterProcess, grpc_client: Any,
                                       http_client: Any, triton: Any, model: str,
                                       task: str | None, act_task: str | None) -> None:
    """`route` answers as /v1/act does; a route name passes through to that route: the
    `generalist` on reach-v3 answers with the generalist, although /v1/act would pick the
    specialist the calibration table prefers (checked against Triton's own ensemble)."""
    expected = v1_act(router, act_task, f"act-{model}-{task}")
    if model == "generalist":
        assert expected["route"] == SPEC  # the router alone would not have picked it
        versions = {"policy_version": None}
        expected = direct_triton(triton, "generalist", "reach-v3") | versions
    elif model == SPEC:
        assert expected["route"] == SPEC
    replies: list[tuple[NDArray[Any], dict[str, Any]]] = []
    result = grpc_client.infer(model, [grpc_input()], headers=auth(), client_timeout=1.0,
                               parameters=params(f"grpc-{model}-{task}", task))
    replies.append((result.as_numpy("action"), result.get_response(as_json=True)["parameters"]))

    async def aio_call() -> Any:
        async with grpcaio.InferenceServerClient(f"127.0.0.1:{router.grpc_port}") as client:
            return await client.infer(model, [grpc_input()], headers=auth(), client_timeout=1.0,
                                      parameters=params(f"aio-{model}-{task}", task))
    result = asyncio.run(aio_call())
    replies.append((result.as_numpy("action"), result.get_response(as_json=True)["parameters"]))
    for binary in (True, False):
        result = http_client.infer(
            model, [http_input(binary=binary)], headers=auth(), timeout=1_000_000,
            outputs=[httpclient.InferRequestedOutput("action", binary_data=binary)],
            parameters=params(f"http-{binary}-{model}-{task}", task))
        replies.append((result.as_numpy("action"), result.get_response()["parameters"]))
    for action, reply in replies:
        assert action.shape == (1, 4) and action.dtype == np.float32
        np.testing.assert_allclose(action[0], expected["action"], atol=1e-6)
        flat = {k: plain(v) for k, v in reply.items()}
        assert flat["route"] == expected["route"] and flat["task"] == expected["task"]
        assert flat["task_source"] == expected["task_source"]
        if expected["policy_version"] is not None:
            assert flat["policy_version"] == expected["policy_version"]
        assert flat["deadline_met"] is True and len(flat["decision_id"]) == 32
        assert flat["fallback"] == "" and flat["reason"]
        if model != "route":
            assert flat["reason"] == "requested", flat["reason"]


def test_client_timeout_becomes_the_deadline(grpc_client: Any, http_client: Any,
                                             redis_server: RedisServer) -> None:
    """The budget in the decision log. A client deadline reaches the router minus the time on
    the way (generous lower bounds: 2 shared cores); the budget counts from arrival, which is
    the handler's start less the estimated queue wait (`queued_ms`)."""
    def budget(result: Any, grpc_style: bool, of_arrival: bool = False) -> float:
        reply = result.get_response(as_json=True) if grpc_style else result.get_response()
        record = decision(redis_server.url, plain(reply["parameters"]["decision_id"]))
        return float(record["budget_ms"] - (record["queued_ms"] if of_arrival else 0.0))

    grpc_timed = grpc_client.infer("route", [grpc_input()], headers=auth(), client_timeout=0.3,
                                   parameters=params("deadline-1", "reach-v3"))
    assert 200.0 <= budget(grpc_timed, True, of_arrival=True) <= 300.5
    grpc_default = grpc_client.infer("route", [grpc_input()], headers=auth(),
                                     parameters=params("deadline-2", "reach-v3"))
    assert budget(grpc_default, True) == pytest.approx(50.0)  # the contract's default
    http_timed = http_client.infer("route", [http_input()], headers=auth(), timeout=250_000,
                                   parameters=params("deadline-3", "reach-v3"))
    assert budget(http_timed, False) == pytest.approx(250.0)  # tritonclient's timeout=, in µs
    http_param = http_client.infer("route", [http_input()], headers=auth(),
                                   parameters=params("deadline-4", "reach-v3", deadline_ms=120))
    assert budget(http_param, False) == pytest.approx(120.0)
    header = {**auth(), "X-Deadline-Unix-Ms": str(time.time() * 1000 + 400)}
    http_abs = http_client.infer("route", [http_input()], headers=header,
                                 parameters=params("deadline-5", "reach-v3"))
    assert 300.0 <= budget(http_abs, False, of_arrival=True) <= 400.5


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_compressed_http_request(http_client: Any, algorithm: str) -> None:
    """tritonclient's `request_compression_algorithm`: inflated, then served as any other."""
    result = http_client.infer("route", [http_input()], headers=auth(),
                               request_compression_algorithm=algorithm,
                               parameters=params(f"zip-{algorithm}", "reach-v3"))
    assert plain(result.get_response()["parameters"]["route"]) == SPEC


def test_unknown_model_is_not_found(grpc_client: Any, http_client: Any) -> None:
    code, message = status_of(lambda: grpc_client.infer(
        "nope", [grpc_input()], headers=auth(), parameters=params("e")))
    assert code == "StatusCode.NOT_FOUND" and "nope" in message
    assert status_of(lambda: http_client.infer("nope", [http_input()], headers=auth(),
                                               parameters=params("e")))[0] == "404"
    assert status_of(lambda: http_client.get_model_config("nope", headers=auth()))[0] == "404"
    assert status_of(lambda: grpc_client.get_model_metadata(
        "route", model_version="2", headers=auth()))[0] == "StatusCode.NOT_FOUND"
    assert status_of(lambda: http_client.infer("route", [http_input()], model_version="2",
                                               headers=auth(), parameters=params("e")))[0] == "404"
    versioned = http_client.infer("route", [http_input()], model_version="1", headers=auth(),
                                  parameters=params("v1", "reach-v3"))  # /versions/1/infer
    assert versioned.get_response()["model_version"] == "1"


NAN = np.where(np.arange(39) == 3, np.nan, STATE).astype(np.float32)
BAD = [  # (grpc inputs, http inputs, parameters, field the message starts with)
    ([grpc_input(STATE.astype(np.float64), "FP64")],
     [http_input(STATE.astype(np.float64), datatype="FP64")], None, "observation.datatype"),
    ([grpc_input(STATE[:, :5])], [http_input(STATE[:, :5])], None, "observation.shape"),
    ([grpc_input(np.repeat(STATE, 2, axis=0))], [http_input(np.repeat(STATE, 2, axis=0))], None,
     "observation.shape"),
    ([grpc_input(name="obs")], [http_input(name="obs")], None, "inputs[0].name"),
    ([grpcclient.InferInput("observation", [1, 39], "FP32")],
     [httpclient.InferInput("observation", [1, 39], "FP32")], None, "raw_input_contents"),
    ([grpc_input(NAN)], [http_input(NAN)], None, "observation[3]"),
    ([grpc_input()], [http_input()], {"episode_id": "e"}, "parameters.robot_id"),
    ([grpc_input()], [http_input()], params("e", "fly-v3"), "parameters.task"),
]


@pytest.mark.parametrize(("grpc_inputs", "http_inputs", "parameters", "field"), BAD,
                         ids=["dtype", "shape", "batch", "name", "no-data", "nan", "robot_id",
                              "task"])
def test_bad_input_is_invalid_argument_naming_the_field(
        grpc_client: Any, http_client: Any, grpc_inputs: list[Any], http_inputs: list[Any],
        parameters: dict[str, Any] | None, field: str) -> None:
    parameters = parameters or params("bad")
    code, message = status_of(lambda: grpc_client.infer("route", grpc_inputs, headers=auth(),
                                                        parameters=parameters))
    assert code == "StatusCode.INVALID_ARGUMENT" and message.startswith(field), message
    code, message = status_of(lambda: http_client.infer("route", http_inputs, headers=auth(),
                                                        parameters=parameters))
    # Over HTTP, JSON data that is missing is named `observation.data` (no raw contents there)
    assert code == "400" and message.startswith(
        "observation.data" if field == "raw_input_contents" else field), message


def test_keys_are_checked(grpc_client: Any, http_client: Any) -> None:
    wrong = {"authorization": "Bearer wrong-key"}
    assert status_of(lambda: grpc_client.infer("route", [grpc_input()], headers=wrong,
                                               parameters=params("k")))[0] == \
        "StatusCode.UNAUTHENTICATED"
    assert status_of(lambda: http_client.infer("route", [http_input()], headers=wrong,
                                               parameters=params("k")))[0] == "401"
    arm = {"authorization": f"Bearer {ARM_KEY}"}  # a key that does not cover kserve-1
    code, message = status_of(lambda: grpc_client.infer("route", [grpc_input()], headers=arm,
                                                        parameters=params("k")))
    assert code == "StatusCode.PERMISSION_DENIED" and message.startswith("parameters.robot_id")
    assert status_of(lambda: http_client.infer("route", [http_input()], headers=arm,
                                               parameters=params("k")))[0] == "403"
    ok = http_client.infer("route", [http_input()], headers=arm,
                           parameters=params("k", "reach-v3", robot="arm-1"))
    assert ok.as_numpy("action").shape == (1, 4)


@pytest.mark.parametrize("raw", [b"\x0a\xff", b"\x0a\x02\xff\xfe", b"\xff\xff\xff\xff"],
                         ids=["truncated", "invalid-utf8", "garbage"])
def test_malformed_protobuf_is_invalid_argument(router: RouterProcess, raw: bytes) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{router.grpc_port}") as channel:
        infer = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        with pytest.raises(grpc.RpcError) as info:
            infer(raw, timeout=2.0, metadata=tuple(auth().items()))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert dict(info.value.trailing_metadata())["field"] == "request"
        stats = channel.unary_unary("/inference.GRPCInferenceService/ModelStatistics")
        with pytest.raises(grpc.RpcError) as info:
            stats(b"", timeout=2.0)
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED

