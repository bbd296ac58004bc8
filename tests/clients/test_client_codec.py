"""Request building and reply parsing, for both wire formats, without any I/O."""

from __future__ import annotations

import math

import numpy as np
import pytest
from router_client import (
    ActRequest,
    ActResponse,
    Feedback,
    InvalidRequest,
    Overloaded,
    ServerError,
    _codec,
)
from router_client._retry import Attempt
from router_client.proto import router_pb2
from router_fakes import STATE, act_reply_json, act_reply_message


def attempt(budget_s: float = 0.03, explicit: bool = True) -> Attempt:
    return Attempt(number=1, budget_s=budget_s, deadline_explicit=explicit)


# --- ActRequest / Feedback validation -------------------------------------------------------


def test_act_request_accepts_numpy_and_stores_an_immutable_copy() -> None:
    state = np.arange(39, dtype=np.float64)
    request = ActRequest("robot-1", "ep-1", state, task="reach-v3", deadline_ms=30)
    state[0] = 99.0
    assert request.state[0] == 0.0
    assert isinstance(request.state, tuple) and len(request.state) == 39
    assert request.state_array().dtype == np.float32
    assert request == ActRequest("robot-1", "ep-1", list(range(39)), "reach-v3", 30.0)
    assert hash(request) == hash(ActRequest("robot-1", "ep-1", list(range(39)), "reach-v3", 30))


def test_act_request_empty_task_means_infer() -> None:
    assert ActRequest("r", "e", STATE, task="").task is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"state": [1.0, math.nan]}, "non-finite"),
        ({"state": [math.inf]}, "non-finite"),
        ({"state": []}, "non-empty 1-D"),
        ({"state": [[1.0, 2.0]]}, "non-empty 1-D"),
        ({"robot_id": ""}, "robot_id"),
        ({"episode_id": ""}, "episode_id"),
        ({"deadline_ms": 0}, "deadline_ms"),
        ({"deadline_ms": -5}, "deadline_ms"),
        ({"deadline_ms": math.inf}, "deadline_ms"),
    ],
)
def test_act_request_rejects_malformed_values(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"robot_id": "r", "episode_id": "e", "state": STATE}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        ActRequest(**args)  # type: ignore[arg-type]


def test_feedback_normalises_numpy_bool_and_validates_ids() -> None:
    assert Feedback("r", "e", success=np.bool_(True)).success is True
    with pytest.raises(ValueError):
        Feedback("", "e", success=True)
    with pytest.raises(ValueError):
        Feedback("r", "e", success=1)  # type: ignore[arg-type]


# --- HTTP / JSON ----------------------------------------------------------------------------


def test_act_json_sends_the_remaining_budget_when_the_caller_set_a_deadline() -> None:
    request = ActRequest("robot-1", "ep-1", STATE, task="reach-v3", deadline_ms=30)
    body = _codec.act_json(request, attempt(budget_s=0.0125))
    assert body == {
        "robot_id": "robot-1",
        "episode_id": "ep-1",
        "task": "reach-v3",
        "deadline_ms": 12.5,
        "observation": {"state": pytest.approx(STATE)},
    }


def test_act_json_leaves_out_what_the_router_should_decide() -> None:
    body = _codec.act_json(ActRequest("r", "e", STATE), attempt(budget_s=1.0, explicit=False))
    assert "task" not in body and "deadline_ms" not in body


def test_feedback_json_omits_unset_optionals() -> None:
    assert _codec.feedback_json(Feedback("r", "e", success=False)) == {
        "robot_id": "r", "episode_id": "e", "success": False}
    full = _codec.feedback_json(Feedback("r", "e", True, decision_id="d", true_task="reach-v3"))
    assert full["decision_id"] == "d" and full["true_task"] == "reach-v3"


def test_reply_wait_adds_slack_only_when_a_deadline_was_sent() -> None:
    assert _codec.reply_wait_s(attempt(0.03), 20.0, deadline_sent=True) == pytest.approx(0.05)
    assert _codec.reply_wait_s(attempt(0.03), 20.0, deadline_sent=False) == pytest.approx(0.03)


def test_parse_act_json_reads_every_documented_field() -> None:
    response = _codec.parse_act_json(act_reply_json(fallback="specialist_timeout",
                                                    deadline_met=False))
    assert response == ActResponse(
        action=(0.1, -0.2, 0.3, 1.0), route="specialist_reach_v3",
        policy_version="specialist_reach_v3-7", task="reach-v3", task_source="declared",
        task_confidence=1.0, fallback="specialist_timeout", deadline_met=False,
        timing_ms=response.timing_ms, decision_id="dec-1", reason="best_score",
    )
    assert (response.timing_ms.scoring_ms, response.timing_ms.upstream_ms,
            response.timing_ms.total_ms) == (0.2, 2.5, 3.1)
    assert response.action_array().dtype == np.float32
    assert not response.held


def test_parse_act_json_hold_route_and_nulls() -> None:
    response = _codec.parse_act_json(act_reply_json(route="hold", task=None,
                                                    task_confidence=None))
    assert response.held and response.task is None and response.task_confidence is None


@pytest.mark.parametrize("payload", [None, [], {"action": [1.0]}, act_reply_json(action="x"),
                                     act_reply_json(timing_ms=None)])
def test_parse_act_json_malformed_reply_is_a_server_error(payload: object) -> None:
    with pytest.raises(ServerError, match="malformed"):
        _codec.parse_act_json(payload)


def test_http_error_keeps_a_proxy_page_snippet() -> None:
    error = _codec.http_error(502, b"<html>bad gateway</html>", {})
    assert isinstance(error, ServerError) and "bad gateway" in str(error)


# --- gRPC / protobuf ------------------------------------------------------------------------


def test_act_message_unary_leaves_deadline_to_the_call() -> None:
    request = ActRequest("robot-1", "ep-1", STATE, task="reach-v3", deadline_ms=30)
    message = _codec.act_message(request)
    assert message.deadline_ms == 0.0 and message.sequence == 0
    assert message.robot_id == "robot-1" and message.task == "reach-v3"
    assert list(message.observation.state) == pytest.approx(STATE, abs=1e-6)


def test_act_message_stream_carries_budget_and_sequence() -> None:
    message = _codec.act_message(ActRequest("r", "e", STATE), deadline_ms=25.0, sequence=7)
    assert (message.task, message.deadline_ms, message.sequence) == ("", 25.0, 7)


def test_parse_act_message_maps_empty_strings_to_none() -> None:
    response = _codec.parse_act_message(act_reply_message(sequence=3, fallback="", task=""))
    assert response.fallback is None and response.task is None and response.sequence == 3
    assert response.action == pytest.approx((0.1, -0.2, 0.3, 1.0), abs=1e-6)
    assert response.timing_ms.upstream_ms == 2.5


def test_stream_reply_error_only_when_the_error_field_is_set() -> None:
    assert _codec.stream_reply_error(act_reply_message(1)) is None
    invalid = _codec.stream_reply_error(router_pb2.ActResponse(sequence=2, error=router_pb2.Error(
        code="INVALID_ARGUMENT", message="bad state", field="observation.state")))
    assert isinstance(invalid, InvalidRequest) and invalid.field == "observation.state"
    shed = _codec.stream_reply_error(router_pb2.ActResponse(error=router_pb2.Error(
        code="RESOURCE_EXHAUSTED", message="shed", retry_after_ms=40)))
    assert isinstance(shed, Overloaded) and shed.retry_after_ms == 40
