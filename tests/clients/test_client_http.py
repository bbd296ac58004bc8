"""The HTTP clients (sync and async) on an httpx mock transport: what they send, how long
they wait, and which failures they retry."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from router_client import (
    ActRequest,
    AsyncRouterClient,
    ConnectError,
    DeadlineExceeded,
    Feedback,
    InvalidRequest,
    Overloaded,
    RetryPolicy,
    RouterClient,
    RouterError,
    ServerError,
    Timeouts,
)
from router_fakes import STATE, act_reply_json

NO_JITTER = RetryPolicy(jitter=0.0, backoff_s=0.005, min_attempt_ms=5.0)


Reply = httpx.Response | Exception


class ScriptedRouter:
    """An httpx handler that answers with `replies` in order and records the requests."""

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        reply = self.replies.pop(0) if self.replies else httpx.Response(200, json=act_reply_json())
        if isinstance(reply, Exception):
            raise reply
        return reply

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(request.content) for request in self.requests]


def shed(retry_after_ms: float) -> httpx.Response:
    return httpx.Response(503, headers={"Retry-After": "1"}, json={"error": {
        "code": "overloaded", "message": "shed", "retry_after_ms": retry_after_ms}})


def request(deadline_ms: float | None = 100.0) -> ActRequest:
    return ActRequest("robot-1", "ep-1", STATE, task="reach-v3", deadline_ms=deadline_ms)


Act = Callable[[ScriptedRouter, ActRequest], Any]


def sync_act(router: ScriptedRouter, req: ActRequest) -> Any:
    with RouterClient("http://router:8080", api_key="k", retry=NO_JITTER,
                      httpx_transport=httpx.MockTransport(router)) as client:
        return client.act(req)


async def async_act(router: ScriptedRouter, req: ActRequest) -> Any:
    async with AsyncRouterClient("http://router:8080", api_key="k", retry=NO_JITTER,
                                 httpx_transport=httpx.MockTransport(router)) as client:
        return await client.act(req)


async def run(act: Act, router: ScriptedRouter, req: ActRequest) -> Any:
    result = act(router, req)
    return await result if hasattr(result, "__await__") else result


both_clients = pytest.mark.parametrize("act", [sync_act, async_act], ids=["sync", "async"])


@both_clients
async def test_shed_then_served_within_the_deadline(act: Act) -> None:
    router = ScriptedRouter(shed(retry_after_ms=20))
    started = time.monotonic()
    response = await run(act, router, request(deadline_ms=200))
    assert response.decision_id == "dec-1" and len(router.requests) == 2
    assert time.monotonic() - started >= 0.020  # waited for retry_after_ms
    first, second = router.bodies()
    # The retry carries what is left of the budget, not the original deadline.
    assert first["deadline_ms"] <= 200 and second["deadline_ms"] <= 200 - 20
    assert response.client_ms >= 20


@both_clients
async def test_shed_whose_retry_does_not_fit_is_raised(act: Act) -> None:
    router = ScriptedRouter(shed(retry_after_ms=500))
    with pytest.raises(Overloaded) as raised:
        await run(act, router, request(deadline_ms=50))
    assert raised.value.retry_after_ms == 500 and len(router.requests) == 1


@both_clients
async def test_connect_failure_is_retried(act: Act) -> None:
    router = ScriptedRouter(httpx.ConnectError("refused"), httpx.ConnectError("refused"))
    response = await run(act, router, request())
    assert response.route == "specialist_reach_v3" and len(router.requests) == 3


@both_clients
async def test_connect_failures_give_up_after_max_attempts(act: Act) -> None:
    router = ScriptedRouter(*[httpx.ConnectError("refused")] * 5)
    with pytest.raises(ConnectError) as raised:
        await run(act, router, request())
    assert len(router.requests) == NO_JITTER.max_attempts
    assert isinstance(raised.value.__cause__, httpx.ConnectError)


def error_reply(status: int, code: str, **extra: Any) -> Callable[[], Reply]:
    # A factory: an httpx.Response can only be read once, and each case runs twice.
    return lambda: httpx.Response(status, json={"error": {"code": code, "message": code,
                                                          **extra}})


@both_clients
@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (lambda: httpx.ReadTimeout("late"), DeadlineExceeded),
        (lambda: httpx.ReadError("reset"), ConnectError),
        (error_reply(408, "deadline_expired"), DeadlineExceeded),
        (error_reply(422, "unknown_task", known_tasks=["reach-v3"]), InvalidRequest),
        (error_reply(401, "unauthorized"), RouterError),
        (lambda: httpx.Response(500, text="boom"), ServerError),
    ],
)
async def test_act_is_not_retried_after_sending_or_on_4xx(
    act: Act, reply: Callable[[], Reply], expected: type
) -> None:
    router = ScriptedRouter(reply())
    with pytest.raises(expected):
        await run(act, router, request())
    assert len(router.requests) == 1


@both_clients
async def test_http_timeout_is_the_deadline_plus_slack(act: Act) -> None:
    router = ScriptedRouter()
    await run(act, router, request(deadline_ms=30))
    timeout = router.requests[0].extensions["timeout"]
    slack_s = Timeouts().deadline_slack_ms / 1000
    assert 0.045 < timeout["read"] <= 0.030 + slack_s
    assert timeout["connect"] == timeout["read"]  # capped by the budget, below connect_s


@both_clients
async def test_without_deadline_the_default_budget_applies_and_none_is_sent(act: Act) -> None:
    router = ScriptedRouter()
    await run(act, router, request(deadline_ms=None))
    assert "deadline_ms" not in router.bodies()[0]
    timeout = router.requests[0].extensions["timeout"]
    assert timeout["read"] == pytest.approx(Timeouts().act_s, abs=0.01)
    assert timeout["connect"] == Timeouts().connect_s


def test_feedback_is_retried_on_server_error_and_lost_reply() -> None:
    router = ScriptedRouter(httpx.Response(500, text="boom"), httpx.ReadError("reset"),
                            httpx.Response(202, json={"accepted": True}))
    with RouterClient("http://router:8080", api_key="k",
                      retry=RetryPolicy(max_attempts=3, jitter=0.0),
                      httpx_transport=httpx.MockTransport(router)) as client:
        client.feedback(Feedback("robot-1", "ep-1", success=True, decision_id="dec-1"))
    assert len(router.requests) == 3
    assert {r.url.path for r in router.requests} == {"/v1/feedback"}
    assert router.bodies()[0] == {"robot_id": "robot-1", "episode_id": "ep-1",
                                  "success": True, "decision_id": "dec-1"}


async def test_async_feedback_is_not_retried_on_validation_error() -> None:
    router = ScriptedRouter(httpx.Response(422, json={"error": {
        "code": "invalid_argument", "message": "bad", "field": "episode_id"}}))
    async with AsyncRouterClient("http://router:8080", api_key="k",
                                 httpx_transport=httpx.MockTransport(router)) as client:
        with pytest.raises(InvalidRequest) as raised:
            await client.feedback(Feedback("robot-1", "ep-1", success=False))
    assert raised.value.field == "episode_id" and len(router.requests) == 1


def test_api_key_and_endpoint() -> None:
    router = ScriptedRouter()
    sync_act(router, request())
    sent = router.requests[0]
    assert sent.headers["authorization"] == "Bearer k"
    assert sent.method == "POST" and str(sent.url) == "http://router:8080/v1/act"


def test_api_key_defaults_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROUTER_API_KEY", "from-env")
    router = ScriptedRouter()
    with RouterClient("http://router:8080", httpx_transport=httpx.MockTransport(router)) as c:
        c.act(request())
    assert router.requests[0].headers["authorization"] == "Bearer from-env"
