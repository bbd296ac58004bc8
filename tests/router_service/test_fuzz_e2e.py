"""Property-based fuzzing of the robot endpoints against the real router (hypothesis): whatever
a client sends, the answer is never a 5xx or a dropped connection, and a refusal names the
field it is about."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.router_fixtures import ROBOT_KEY, RouterFactory

pytestmark = [pytest.mark.slow, pytest.mark.triton]

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=12), inner,
                                                                 max_size=6),
    max_leaves=30,
)
IDS = st.one_of(st.text(max_size=140), st.integers(), st.none(), st.sampled_from(["r-1", "ep-1"]))
STATE = st.one_of(
    st.lists(st.floats(allow_nan=False, width=32), min_size=0, max_size=45),
    st.lists(st.floats(allow_nan=False), min_size=39, max_size=39), JSON)
ACT = st.fixed_dictionaries(
    {"robot_id": IDS, "episode_id": IDS},
    optional={"task": st.one_of(st.sampled_from(["reach-v3", "fly-v3", ""]), JSON),
              "deadline_ms": st.one_of(st.floats(allow_nan=False), st.integers(), JSON),
              "deadline_unix_ms": st.one_of(st.floats(allow_nan=False), JSON),
              "observation": st.one_of(st.fixed_dictionaries({"state": STATE}), JSON),
              "extra": JSON})
FEEDBACK = st.fixed_dictionaries(
    {"robot_id": IDS, "episode_id": IDS},
    optional={"decision_id": st.one_of(st.text(max_size=40), JSON),
              "success": st.one_of(st.booleans(), JSON),
              "true_task": st.one_of(st.sampled_from(["reach-v3", "fly-v3"]), JSON)})
BODY = st.one_of(
    ACT.map(lambda b: json.dumps(b).encode()),
    JSON.map(lambda b: json.dumps(b).encode()),
    st.binary(max_size=300),
)
CASES = settings(max_examples=150, deadline=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture,
                                        HealthCheck.too_slow])


def _check(reply: httpx.Response) -> None:
    assert reply.status_code < 500, (reply.status_code, reply.text)
    if reply.status_code >= 400:
        error = reply.json()["error"]
        assert error["message"]
        if reply.status_code in (413, 422):
            assert error.get("field"), error  # a refusal names what it is about


@pytest.fixture
def client(start_router: RouterFactory) -> Any:
    router = start_router()
    with httpx.Client(base_url=router.url, timeout=10.0,
                      headers={"Authorization": f"Bearer {ROBOT_KEY}",
                               "Content-Type": "application/json"}) as c:
        yield c


@CASES
@given(body=BODY)
def test_act_never_answers_5xx(client: httpx.Client, body: bytes) -> None:
    _check(client.post("/v1/act", content=body))


@CASES
@given(body=st.one_of(FEEDBACK.map(lambda b: json.dumps(b).encode()),
                      JSON.map(lambda b: json.dumps(b).encode()), st.binary(max_size=200)))
def test_feedback_never_answers_5xx(client: httpx.Client, body: bytes) -> None:
    _check(client.post("/v1/feedback", content=body))
