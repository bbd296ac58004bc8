"""A robot's session over WebSocket (`/v1/act/stream`) against the real router and Triton: the
same messages as `POST /v1/act`, auth at the handshake, a clear error for every bad frame."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.router_fixtures import ROBOT_KEY, RouterFactory, act_body

pytestmark = [pytest.mark.slow, pytest.mark.triton]

STATE = np.random.default_rng(0).normal(0, 0.3, 39).round(4).tolist()


@pytest.fixture
def router(start_router: RouterFactory, triton_faults: Any) -> Any:
    return start_router(max_body_bytes=8192)


def session(router: Any, key: str | None = ROBOT_KEY) -> ClientConnection:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    url = router.url.replace("http://", "ws://") + "/v1/act/stream"
    return connect(url, additional_headers=headers, open_timeout=10)


def exchange(ws: ClientConnection, message: str | bytes) -> dict[str, Any]:
    ws.send(message)
    reply: dict[str, Any] = json.loads(ws.recv(timeout=10))
    return reply


def test_a_session_answers_each_step_with_its_sequence(router: Any) -> None:
    with session(router) as ws:
        replies = [exchange(ws, json.dumps(act_body(STATE, episode="ws") | {"sequence": i}))
                   for i in range(5)]
        inferred = exchange(ws, json.dumps(act_body(STATE, task=None, episode="ws2")))
    assert [r["sequence"] for r in replies] == list(range(5))
    assert all(len(r["action"]) == 4 and r["route"] == "specialist_reach_v3" for r in replies)
    assert [r["reason"] for r in replies[1:]] == ["sticky"] * 4  # one episode, one route
    assert inferred["task_source"] == "inferred" and "sequence" not in inferred
    assert set(replies[0]["timing_ms"]) == {"queued", "scoring", "upstream", "total"}


@pytest.mark.parametrize("key", [None, "wrong-key"])
def test_a_session_without_a_valid_key_is_closed_with_1008(router: Any, key: str | None
                                                           ) -> None:
    with session(router, key) as ws, pytest.raises(ConnectionClosed) as closed:
        exchange(ws, json.dumps(act_body(STATE)))
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    assert closed.value.rcvd.reason.startswith("authorization:")


@pytest.mark.parametrize(("frame", "field"), [
    ("{not json", "body"),
    (json.dumps({"robot_id": "r", "episode_id": "e"}), "observation"),
    (json.dumps(act_body(STATE[:3])), "observation.state"),
    (json.dumps(act_body(STATE, task="fly-v3")), "task"),
    (json.dumps(act_body(STATE) | {"sequence": -1}), "sequence"),
    (json.dumps(act_body(STATE) | {"extra": 1}), "extra"),
    (json.dumps(act_body([float("nan")] * 39)).replace("NaN", "1e999"), "observation.state[0]"),
])
def test_a_bad_frame_gets_an_error_naming_the_field_and_the_session_goes_on(
    router: Any, frame: str, field: str
) -> None:
    with session(router) as ws:
        error = exchange(ws, frame)
        after = exchange(ws, json.dumps(act_body(STATE, episode="after") | {"sequence": 7}))
    assert error["error"]["field"] == field, error
    assert error["error"]["message"]
    assert after["sequence"] == 7 and len(after["action"]) == 4


def test_a_binary_frame_carrying_json_is_served(router: Any) -> None:
    with session(router) as ws:
        reply = exchange(ws, json.dumps(act_body(STATE) | {"sequence": 3}).encode())
    assert reply["sequence"] == 3 and len(reply["action"]) == 4


def test_an_oversized_frame_closes_the_session_with_1009(router: Any) -> None:
    with session(router) as ws, pytest.raises(ConnectionClosed) as closed:
        exchange(ws, json.dumps(act_body(STATE) | {"pad": "x" * 20_000}))
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
