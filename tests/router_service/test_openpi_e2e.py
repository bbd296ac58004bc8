"""openpi's websocket protocol on the router (`/v1/openpi`), against the real router, Triton and
the unmodified openpi client (`openpi_client` from PyPI): the same actions as `POST /v1/act`,
auth at the handshake, and a text frame + close code for every bad frame, never a crash."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlencode

import httpx
import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from openpi_client import msgpack_numpy as openpi
from openpi_client.action_chunk_broker import ActionChunkBroker
from openpi_client.websocket_client_policy import WebsocketClientPolicy
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.router_fixtures import ROBOT_KEY, RouterFactory, RouterProcess, act_body

pytestmark = [pytest.mark.slow, pytest.mark.triton,
              # openpi_client 0.1.2 calls websockets' connect() outside a `with` (websockets 17)
              pytest.mark.filterwarnings("ignore:connect\\(\\) must be used as a context")]

BOUND_KEY = "openpi-bound-key"  # bound to exactly one robot: no robot_id needed
SLOW_KEY = "openpi-slow-key"
KEYS = {ROBOT_KEY: {"robots": ["*"]}, BOUND_KEY: {"robots": ["arm-7"]},
        SLOW_KEY: {"robots": ["slow-1"], "rate_per_s": 0.1, "burst": 2}}
STATE32 = np.random.default_rng(1).normal(0, 0.3, 39).astype(np.float32)
STATE = STATE32.tolist()  # the same float32 values, for the JSON API
LIMIT = 8192
SPEC = "specialist_reach_v3"


@pytest.fixture
def router(start_router: RouterFactory, triton_faults: Any) -> RouterProcess:
    return start_router(api_keys=json.dumps(KEYS), max_body_bytes=LIMIT)


def ws_url(router: RouterProcess, **query: Any) -> str:
    url = router.url.replace("http://", "ws://") + "/v1/openpi"
    return f"{url}?{urlencode(query)}" if query else url


def policy(router: RouterProcess, key: str | None = ROBOT_KEY, **query: Any
           ) -> WebsocketClientPolicy:
    return WebsocketClientPolicy(host=ws_url(router, **query), api_key=key)


def raw(router: RouterProcess, key: str = ROBOT_KEY, **query: Any
        ) -> tuple[ClientConnection, dict[str, Any]]:
    ws = connect(ws_url(router, **query), additional_headers={"Authorization": f"Api-Key {key}"},
                 open_timeout=10, compression=None, max_size=None)
    return ws, openpi.unpackb(ws.recv(timeout=10))


def refusal(ws: ClientConnection, frame: bytes | str) -> tuple[dict[str, Any], int]:
    """A refused step: its text frame's error, and the close code that follows."""
    ws.send(frame)
    text = ws.recv(timeout=10)
    assert isinstance(text, str), openpi.unpackb(text)
    with pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=10)
    assert closed.value.rcvd is not None
    error: dict[str, Any] = json.loads(text)["error"]
    return error, closed.value.rcvd.code


def obs(state: Any = STATE32, prompt: str | None = "reach-v3", **extra: Any) -> dict[str, Any]:
    o: dict[str, Any] = {"observation/state": state, **extra}
    if prompt is not None:
        o["prompt"] = prompt
    return o


def direct(router: RouterProcess, task: str | None, episode: str) -> dict[str, Any]:
    with router.client() as c:
        reply: dict[str, Any] = c.post("/v1/act", json=act_body(
            STATE, task=task, episode=episode, deadline_ms=500)).json()
    return reply


def test_the_openpi_client_gets_the_actions_post_act_gives(router: RouterProcess) -> None:
    client = policy(router, robot_id="robot-1", deadline_ms=500)
    image = np.zeros((16, 16, 3), np.uint8)  # what openpi robots send too; the router ignores it
    declared = client.infer(obs() | {"observation/image": image})
    again = client.infer(obs())
    inferred = client.infer(obs(prompt="pick up whatever is in front of you"))
    broker = ActionChunkBroker(client, action_horizon=1).infer(obs())
    want, want_inferred = direct(router, "reach-v3", "d1"), direct(router, None, "d2")

    assert declared["actions"].dtype == np.float32 and declared["actions"].shape == (1, 4)
    np.testing.assert_allclose(declared["actions"][0], want["action"], atol=1e-6)
    assert (declared["route"], declared["task"], declared["task_source"]) == (
        want["route"], "reach-v3", "declared")
    assert declared["route"] == SPEC and again["reason"] == "sticky"  # one episode per session
    np.testing.assert_allclose(inferred["actions"][0], want_inferred["action"], atol=1e-6)
    assert inferred["task_source"] == "inferred" and inferred["task"] == want_inferred["task"]
    assert inferred["task_confidence"] == pytest.approx(want_inferred["task_confidence"])
    assert broker["actions"].shape == (4,)  # the broker hands out step 0 of the [1, 4] chunk
    np.testing.assert_allclose(broker["actions"], want["action"], atol=1e-6)
    for reply in (declared, again, inferred, broker):
        assert set(reply) >= {"actions", "server_timing", "route", "policy_version", "task",
                              "task_source", "task_confidence", "fallback", "deadline_met",
                              "decision_id", "reason", "episode_id"}
        assert reply["fallback"] is None and reply["deadline_met"] is True
    assert set(declared["server_timing"]) == {"infer_ms", "queued_ms", "scoring_ms",
                                              "upstream_ms", "total_ms"}
    assert again["server_timing"]["prev_total_ms"] > 0
    client._ws.close()


def test_the_metadata_frame_describes_the_contract_and_session(router: RouterProcess,
                                                               triton: Any) -> None:
    meta = policy(router, robot_id="robot-1").get_server_metadata()
    assert meta["contract_version"] == "test-1" and meta["panel"] == "test"
    assert (meta["state_dim"], meta["action_dim"], meta["action_horizon"]) == (39, 4, 1)
    assert meta["tasks"] == list(triton.manifest.tasks)
    assert meta["observation_mapping"]["state_keys"][0] == "observation/state"
    assert meta["observation_mapping"]["task_keys"] == ["prompt", "task"]
    assert meta["robot_id"] == "robot-1" and meta["episode_id"].startswith("openpi-")
    assert meta["deadline_ms"] == 50 and meta["max_frame_bytes"] == LIMIT  # contract default
    bound = policy(router, BOUND_KEY, episode_id="ep-9", deadline_ms=80)
    meta = bound.get_server_metadata()
    assert (meta["robot_id"], meta["episode_id"], meta["deadline_ms"]) == ("arm-7", "ep-9", 80)
    assert bound.infer(obs())["episode_id"] == "ep-9"
    assert bound.infer(obs(episode_id="ep-10"))["episode_id"] == "ep-10"  # a new episode
    assert bound.infer(obs())["episode_id"] == "ep-10"


@pytest.mark.parametrize("key", [None, "wrong-key"])
def test_a_missing_or_wrong_key_is_refused_at_the_handshake(router: RouterProcess,
                                                            key: str | None) -> None:
    with pytest.raises(InvalidStatus) as refused:
        policy(router, key, robot_id="robot-1")
    assert refused.value.response.status_code == 401
    assert json.loads(refused.value.response.body)["error"]["field"] == "authorization"


@pytest.mark.parametrize(("key", "query", "field"), [
    (ROBOT_KEY, {}, "robot_id"),  # an open key names no robot
    (BOUND_KEY, {"robot_id": "arm-8"}, "robot_id"),  # not the key's robot
    (ROBOT_KEY, {"robot_id": "r", "robot": "r"}, "robot"),
    (ROBOT_KEY, {"robot_id": "r", "deadline_ms": "soon"}, "deadline_ms"),
    (ROBOT_KEY, {"robot_id": "r", "deadline_ms": "0"}, "deadline_ms"),
])
def test_a_bad_session_parameter_closes_with_1008_before_the_metadata(
    router: RouterProcess, key: str, query: dict[str, str], field: str
) -> None:
    with pytest.raises(ConnectionClosed) as closed:
        policy(router, key, **query)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    assert closed.value.rcvd.reason.startswith(f"{field}:"), closed.value.rcvd.reason


def ndarray(dtype: str = "<f4", data: bytes = STATE32.tobytes(), shape: Any = (39,)
            ) -> dict[bytes, Any]:
    return {b"__ndarray__": True, b"data": data, b"dtype": dtype, b"shape": list(shape)}


BAD_FRAMES: list[tuple[str, bytes | str, str]] = [
    ("object dtype", msgpack.packb(obs(ndarray("|O", b"\0" * 8 * 39)), use_bin_type=True),
     "observation/state.dtype"),
    ("shape vs data", msgpack.packb(obs(ndarray(shape=(40,)))), "observation/state.data"),
    ("no shape", msgpack.packb(obs({b"__ndarray__": True, b"data": b"", b"dtype": "<f4"})),
     "observation/state.shape"),
    ("no state key", openpi.packb({"joints": STATE32, "prompt": "reach-v3"}),
     "observation/state"),
    ("short state", openpi.packb(obs(STATE32[:10])), "observation/state"),
    ("nan state", openpi.packb(obs(np.full(39, np.nan, np.float32))), "observation/state[0]"),
    ("string state", openpi.packb(obs("39 floats")), "observation/state"),
    ("bad episode", openpi.packb(obs(episode_id="no spaces allowed")), "episode_id"),
    ("not msgpack", b"\xc1\xc1", "frame"),
    ("not a map", openpi.packb([STATE32]), "frame"),
    ("text frame", json.dumps({"observation/state": STATE}), "frame"),
]


def test_every_bad_frame_gets_a_text_error_naming_the_key_then_1011(router: RouterProcess
                                                                     ) -> None:
    for case, frame, field in BAD_FRAMES:
        ws, _ = raw(router, robot_id="robot-1")
        error, code = refusal(ws, frame)
        assert (error["field"], code) == (field, 1011), (case, error)
        assert error["message"]
    ws, _ = raw(router, robot_id="robot-1")
    ws.send(openpi.packb(obs() | {"observation/image": np.zeros(LIMIT, np.uint8)}))
    with pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    # The router still serves, and counted what happened.
    assert policy(router, robot_id="robot-1").infer(obs())["actions"].shape == (1, 4)
    metrics = router.metrics()
    assert 'router_sessions_total{event="opened",transport="openpi"} 13.0' in metrics
    assert ('router_protocol_errors_total{code="invalid_argument",transport="openpi"} 11.0'
            in metrics)
    assert 'router_protocol_errors_total{code="payload_too_large",transport="openpi"}' in metrics


def test_a_key_over_its_rate_gets_a_text_error_then_1011(router: RouterProcess) -> None:
    ws, meta = raw(router, SLOW_KEY)
    assert meta["robot_id"] == "slow-1"
    for _ in range(2):  # the burst
        ws.send(openpi.packb(obs()))
        assert isinstance(ws.recv(timeout=10), bytes)
    error, code = refusal(ws, openpi.packb(obs()))
    assert (error["code"], code) == ("rate_limited", 1011) and error["retry_after_ms"] > 0


def test_overload_answers_a_text_error_and_keeps_the_session(
    start_router: RouterFactory, triton_faults: Any
) -> None:
    router = start_router(api_keys=json.dumps(KEYS), max_inflight=1)
    for model in ("policy_" + SPEC, "policy_generalist"):
        triton_faults.set_fault(model, delay_ms=300, delay_prob=1.0)
    busy, _ = raw(router, robot_id="robot-1", deadline_ms=1000)
    shed, _ = raw(router, robot_id="robot-2", deadline_ms=1000)
    busy.send(openpi.packb(obs()))
    time.sleep(0.1)  # the first step is in flight at Triton
    shed.send(openpi.packb(obs()))
    text = shed.recv(timeout=10)
    assert isinstance(text, str) and json.loads(text)["error"]["code"] == "overloaded"
    assert json.loads(text)["error"]["retry_after_ms"] > 0
    assert isinstance(busy.recv(timeout=10), bytes)
    shed.send(openpi.packb(obs()))  # same session, after the retry hint
    assert openpi.unpackb(shed.recv(timeout=10))["actions"].shape == (1, 4)


def test_an_openpi_health_check_gets_200_and_host_port_alone_is_refused(
    router: RouterProcess,
) -> None:
    # openpi's server answers `GET /healthz` with 200 "OK\n"; the router's is 200 + JSON.
    assert httpx.get(f"{router.url}/healthz", timeout=5).status_code == 200
    # host + port (openpi's usual form) builds ws://host:port with no /v1/openpi path.
    with pytest.raises(InvalidStatus) as refused:
        WebsocketClientPolicy(host="127.0.0.1", port=router.http_port, api_key=ROBOT_KEY)
    assert refused.value.response.status_code == 403


SCALARS = (st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.floats()
           | st.text(max_size=20) | st.binary(max_size=40))
ARRAYS = st.fixed_dictionaries({
    b"__ndarray__": st.sampled_from([True, 1, False]),
    b"data": st.binary(max_size=200) | st.just(STATE32.tobytes()),
    b"dtype": st.sampled_from(["<f4", "<f8", "|b1", "|u1", "|O", "<U2", "|V4", "f4,f4", ""]),
    b"shape": st.lists(st.integers(-2, 50), max_size=3) | st.just([39]),
}, optional={b"extra": SCALARS})
VALUES = st.recursive(SCALARS | ARRAYS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=12)
OBSERVATIONS = st.fixed_dictionaries({}, optional={
    "observation/state": VALUES | st.just(STATE32) | st.lists(st.floats(width=32), max_size=40),
    "prompt": st.sampled_from(["reach-v3", "fly-v3", ""]) | VALUES,
    "episode_id": st.text(max_size=10) | VALUES,
    "extra": VALUES,
})
VALID = st.fixed_dictionaries({
    "observation/state": st.just(STATE32) | st.lists(st.floats(-2, 2, width=32), min_size=39,
                                                     max_size=39),
}, optional={"prompt": st.sampled_from(["reach-v3", "pick-place-v3", "fly", ""]),
             "episode_id": st.sampled_from(["ep-a", "ep-b"]), "extra": SCALARS})
FRAMES = (VALID.map(openpi.packb)
          | OBSERVATIONS.map(lambda o: msgpack.packb(o, default=openpi.pack_array))
          | VALUES.map(msgpack.packb) | st.binary(max_size=300)
          | st.integers(LIMIT - 100, LIMIT + 500).map(
              lambda n: openpi.packb(obs(pad=b"x" * n))))


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(frame=FRAMES)
def test_fuzz_every_frame_gets_an_answer_or_a_text_error_and_a_close(
    router: RouterProcess, frame: bytes
) -> None:
    ws, _ = raw(router, robot_id="robot-1", deadline_ms=500)
    with ws:
        ws.send(frame)
        try:
            reply = ws.recv(timeout=10)
        except ConnectionClosed as closed:  # only an oversized frame is closed without a word
            assert closed.rcvd is not None and closed.rcvd.code == 1009 and len(frame) > LIMIT
            event("closed 1009")
            return
        if isinstance(reply, bytes):
            answer = openpi.unpackb(reply)
            assert answer["actions"].shape == (1, 4) and answer["actions"].dtype == np.float32
            event("answered")
            return
        error = json.loads(reply)["error"]
        assert error["message"] and error["code"]
        event(f"refused: {error['code']}")
        if error["code"] != "overloaded":
            assert error.get("field"), error
            with pytest.raises(ConnectionClosed) as after:
                ws.recv(timeout=10)
            assert after.value.rcvd is not None and after.value.rcvd.code == 1011
    assert httpx.get(f"{router.url}/healthz", timeout=5).status_code == 200
