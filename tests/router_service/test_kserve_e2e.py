"""The KServe v2 facade against the real stack (tritonserver, redis-server, a router process),
called by unmodified tritonclient: grpc, grpc.aio and http (binary and JSON tensors).

One router serves the whole module (starting one per test would be most of its time)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
import redis
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpcaio
import tritonclient.http as httpclient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray
from tritonclient.utils import InferenceServerException

from deploy.local.process import free_ports
from deploy.local.router import RouterLaunch, router_process
from policies.serving.manifest import load_artifacts
from tests.router_fixtures import ADMIN_KEY, ROBOT_KEY, ContractFiles, RedisServer, RouterProcess

pytestmark = [pytest.mark.slow, pytest.mark.triton, pytest.mark.redis]

ARM_KEY = "arm-only-key"  # covers robots `arm-*` only
KEYS = {ROBOT_KEY: {"robots": ["*"]}, ARM_KEY: {"robots": ["arm-*"]}}
AUTH = {"authorization": f"Bearer {ROBOT_KEY}"}  # copied per call: see `auth`
SPEC = "specialist_reach_v3"
STATE = np.random.default_rng(7).normal(0, 0.3, (1, 39)).astype(np.float32)


@pytest.fixture(scope="module")
def router(triton: Any, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[RouterProcess]:
    folder = tmp_path_factory.mktemp("kserve")
    files = ContractFiles(folder, triton.artifacts,
                          list(load_artifacts(triton.artifacts).manifest.tasks))
    http_port, grpc_port = free_ports(2)
    process = router_process(RouterLaunch(
        contract=files.write(), triton_grpc=triton.grpc_url, triton_http=triton.http_url,
        http_port=http_port, grpc_port=grpc_port, log_path=folder / "router.log",
        robot_keys=json.dumps(KEYS), admin_key=ADMIN_KEY, redis_url=redis_server.url,
        name="router-kserve", startup_timeout_s=60.0,
        settings={"ROUTER_MAX_QUEUE_AGE_MS": "1000"}))  # 2 shared cores: see start_router
    process.start()
    yield RouterProcess(process, http_port, grpc_port)
    process.stop()


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


def auth() -> dict[str, str]:
    """A fresh headers dict: tritonclient.http's `infer` writes Inference-Header-Content-Length
    into the dict it is given, and a later JSON-only call with the same dict sends it stale."""
    return dict(AUTH)


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
            infer(raw, timeout=2.0, metadata=tuple(AUTH.items()))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert dict(info.value.trailing_metadata())["field"] == "request"
        stats = channel.unary_unary("/inference.GRPCInferenceService/ModelStatistics")
        with pytest.raises(grpc.RpcError) as info:
            stats(b"", timeout=2.0)
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED


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
