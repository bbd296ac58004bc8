"""The gRPC transport and StreamAct sessions against an in-process fake router."""

from __future__ import annotations

import time
from typing import Any

import grpc
import pytest
from router_client import (
    ActRequest,
    AsyncRouterClient,
    ConnectError,
    DeadlineExceeded,
    InvalidRequest,
    RetryPolicy,
    RouterClient,
    ServerError,
    Timeouts,
    Unauthorized,
    UnknownTask,
)
from router_client._grpc import GrpcTransport
from router_client.client import default_grpc_target
from router_fakes import STATE, FakeRouter, abort_with, answer, delayed, stream_error

KEY = "test-robot-key"
RETRY = RetryPolicy(jitter=0.0)


def request(deadline_ms: float | None = 200.0, robot_id: str = "robot-1") -> ActRequest:
    return ActRequest(robot_id, "ep-1", STATE, task="reach-v3", deadline_ms=deadline_ms)


def sync_client(target: str, **kwargs: Any) -> RouterClient:
    return RouterClient("http://unused:8080", api_key=KEY, transport="grpc", grpc_target=target,
                        retry=RETRY, **kwargs)


def async_client(target: str, **kwargs: Any) -> AsyncRouterClient:
    return AsyncRouterClient("http://unused:8080", api_key=KEY, transport="grpc",
                             grpc_target=target, retry=RETRY, **kwargs)


def test_default_grpc_target_is_the_http_host_on_50051() -> None:
    assert default_grpc_target("http://router.local:8080") == "router.local:50051"
    assert default_grpc_target("https://[::1]:8443/") == "[::1]:50051"


# --- unary Act ------------------------------------------------------------------------------


def test_act_sends_key_and_uses_the_deadline_as_the_call_budget(fake_router: FakeRouter) -> None:
    with sync_client(fake_router.target) as client:
        response = client.act(request(deadline_ms=80))
    assert response.route == "specialist_reach_v3" and response.deadline_met
    assert response.client_ms > 0
    seen = fake_router.seen[0]
    assert seen.metadata["authorization"] == f"Bearer {KEY}"
    assert seen.request.deadline_ms == 0.0  # the call deadline carries the budget
    # + 1 ms: gRPC rounds the deadline up to a whole ms on the wire (the router takes it off)
    assert seen.time_remaining is not None and 0.0 < seen.time_remaining <= 0.081


def test_act_without_deadline_uses_the_default_budget(fake_router: FakeRouter) -> None:
    with sync_client(fake_router.target, timeouts=Timeouts(act_s=0.5)) as client:
        client.act(request(deadline_ms=None))
    remaining = fake_router.seen[0].time_remaining
    assert remaining is not None and 0.3 < remaining <= 0.5


async def test_async_act(fake_router: FakeRouter) -> None:
    async with async_client(fake_router.target) as client:
        response = await client.act(request())
    assert response.decision_id == "dec-0"
    assert fake_router.seen[0].metadata["authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_resource_exhausted_is_retried_after_the_hint(fake_router: FakeRouter,
                                                            use_async: bool) -> None:
    fake_router.script.append(abort_with(grpc.StatusCode.RESOURCE_EXHAUSTED, "shed",
                                         field="", **{"retry-after-ms": "15"}))
    started = time.monotonic()
    if use_async:
        async with async_client(fake_router.target) as aclient:
            await aclient.act(request())
    else:
        with sync_client(fake_router.target) as client:
            client.act(request())
    assert len(fake_router.seen) == 2 and time.monotonic() - started >= 0.015


@pytest.mark.parametrize(
    ("behaviour", "expected"),
    [
        (abort_with(grpc.StatusCode.INVALID_ARGUMENT,
                    "task: unknown task 'fly'; known tasks: reach-v3, push-v3",
                    field="task", **{"retry-after-ms": "0"}), UnknownTask),
        (abort_with(grpc.StatusCode.UNAUTHENTICATED, "bad key"), Unauthorized),
        (abort_with(grpc.StatusCode.INTERNAL, "boom"), ServerError),
        (abort_with(grpc.StatusCode.DEADLINE_EXCEEDED, "expired"), DeadlineExceeded),
        (delayed(0.3), DeadlineExceeded),
    ],
)
@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_rejections_and_timeouts_are_mapped_and_not_retried(
    fake_router: FakeRouter, behaviour: Any, expected: type, use_async: bool
) -> None:
    fake_router.script.append(behaviour)
    with pytest.raises(expected) as raised:
        if use_async:
            async with async_client(fake_router.target) as aclient:
                await aclient.act(request(deadline_ms=100))
        else:
            with sync_client(fake_router.target) as client:
                client.act(request(deadline_ms=100))
    assert len(fake_router.seen) == 1
    assert isinstance(raised.value.__cause__, grpc.RpcError)
    if expected is UnknownTask:
        assert raised.value.known_tasks == ("reach-v3", "push-v3")


def test_refused_connection_is_not_sent_and_retried(closed_port: int,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    attempts: list[float] = []
    original = GrpcTransport.act

    def counting(self: GrpcTransport, *args: Any) -> Any:
        attempts.append(time.monotonic())
        return original(self, *args)

    monkeypatch.setattr(GrpcTransport, "act", counting)
    with sync_client(f"127.0.0.1:{closed_port}") as client, pytest.raises(ConnectError) as raised:
        client.act(request(deadline_ms=2000))
    assert not raised.value.request_sent
    assert len(attempts) == RETRY.max_attempts


# --- StreamAct sessions ---------------------------------------------------------------------


def test_session_to_a_dead_router_retries_then_raises_connect_error(closed_port: int) -> None:
    with sync_client(f"127.0.0.1:{closed_port}") as client, client.session("robot-1") as session:
        with pytest.raises(ConnectError) as raised:
            session.act(request(deadline_ms=2000))
        assert not raised.value.request_sent


def test_session_replies_in_order_on_one_stream(fake_router: FakeRouter) -> None:
    with sync_client(fake_router.target) as client, client.session("robot-1") as session:
        replies = [session.act(request(deadline_ms=100)) for _ in range(3)]
    assert [r.sequence for r in replies] == [1, 2, 3]
    assert [r.decision_id for r in replies] == ["dec-1", "dec-2", "dec-3"]
    assert fake_router.streams_opened == 1
    deadlines = [seen.request.deadline_ms for seen in fake_router.seen]
    assert all(0 < d <= 100 for d in deadlines)  # budget travels in the message
    assert fake_router.seen[0].metadata["authorization"] == f"Bearer {KEY}"


def test_session_message_error_is_raised_and_the_stream_goes_on(fake_router: FakeRouter) -> None:
    fake_router.script.append(stream_error("INVALID_ARGUMENT", "bad", field="observation.state"))
    with sync_client(fake_router.target) as client, client.session("robot-1") as session:
        with pytest.raises(InvalidRequest) as raised:
            session.act(request())
        assert raised.value.field == "observation.state"
        assert session.act(request()).sequence == 2
    assert fake_router.streams_opened == 1


def test_session_retries_a_shed_message(fake_router: FakeRouter) -> None:
    fake_router.script.append(stream_error("RESOURCE_EXHAUSTED", "shed", retry_after_ms=10))
    with sync_client(fake_router.target) as client, client.session("robot-1") as session:
        assert session.act(request()).sequence == 2


def test_session_drops_a_late_reply_to_an_abandoned_request(fake_router: FakeRouter) -> None:
    fake_router.script.append(delayed(0.15))
    with sync_client(fake_router.target) as client, client.session("robot-1") as session:
        with pytest.raises(DeadlineExceeded):
            session.act(request(deadline_ms=30))
        # The reply to sequence 1 arrives first; the session must skip it.
        assert session.act(request(deadline_ms=1000)).sequence == 2


def test_session_reopens_a_broken_stream(fake_router: FakeRouter) -> None:
    fake_router.script.append(abort_with(grpc.StatusCode.INTERNAL, "crashed"))
    with sync_client(fake_router.target) as client, client.session("robot-1") as session:
        with pytest.raises(ServerError) as raised:
            session.act(request())
        assert isinstance(raised.value.__cause__, grpc.RpcError)
        assert session.act(request()).decision_id == "dec-2"
    assert fake_router.streams_opened == 2


def test_session_rejected_key(fake_router: FakeRouter) -> None:
    fake_router.script.append(abort_with(grpc.StatusCode.UNAUTHENTICATED, "bad key"))
    with (sync_client(fake_router.target) as client, client.session("robot-1") as session,
          pytest.raises(Unauthorized)):
        session.act(request())


def test_session_belongs_to_one_robot(fake_router: FakeRouter) -> None:
    with (sync_client(fake_router.target) as client, client.session("robot-1") as session,
          pytest.raises(ValueError, match="robot-1")):
        session.act(request(robot_id="robot-2"))


async def test_async_session(fake_router: FakeRouter) -> None:
    fake_router.script += [delayed(0.15), answer,
                           stream_error("RESOURCE_EXHAUSTED", "shed", retry_after_ms=5)]
    async with async_client(fake_router.target) as client, client.session("robot-1") as session:
        with pytest.raises(DeadlineExceeded):
            await session.act(request(deadline_ms=30))
        assert (await session.act(request(deadline_ms=1000))).sequence == 2
        # sequence 3 is shed and retried as sequence 4
        assert (await session.act(request(deadline_ms=1000))).sequence == 4
    assert fake_router.streams_opened == 1


async def test_async_session_reopens_a_broken_stream(fake_router: FakeRouter) -> None:
    fake_router.script.append(abort_with(grpc.StatusCode.INTERNAL, "crashed"))
    async with async_client(fake_router.target) as client, client.session("robot-1") as session:
        with pytest.raises(ServerError):
            await session.act(request())
        assert (await session.act(request())).sequence == 2
    assert fake_router.streams_opened == 2


def test_closed_session_refuses_to_act(fake_router: FakeRouter) -> None:
    with sync_client(fake_router.target) as client:
        session = client.session("robot-1")
        session.close()
        with pytest.raises(RuntimeError):
            session.act(request())
