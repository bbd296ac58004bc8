"""The router's gRPC front end against the real Triton: Act, StreamAct, health, errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from router_client.proto import router_pb2, router_pb2_grpc

from tests.router_fixtures import ROBOT_KEY, RouterFactory
from tests.router_service.test_http_e2e import STATE

pytestmark = [pytest.mark.slow, pytest.mark.triton]
AUTH = (("authorization", f"Bearer {ROBOT_KEY}"),)


@pytest.fixture
def channel(start_router: RouterFactory, triton_faults: Any) -> Iterator[grpc.Channel]:
    router = start_router()
    with grpc.insecure_channel(f"127.0.0.1:{router.grpc_port}") as ch:
        yield ch


def request(state: list[float] = STATE, task: str = "reach-v3", seq: int = 0
            ) -> router_pb2.ActRequest:
    return router_pb2.ActRequest(robot_id="r1", episode_id="e1", task=task, sequence=seq,
                                 observation=router_pb2.Observation(state=state))


def test_act_uses_the_call_deadline_as_budget(channel: grpc.Channel) -> None:
    stub = router_pb2_grpc.PolicyRouterStub(channel)
    reply = stub.Act(request(), timeout=0.2, metadata=AUTH)
    assert reply.route == "specialist_reach_v3" and len(reply.action) == 4
    assert reply.deadline_met and reply.timing_ms.total_ms < 200
    assert reply.task_source == "declared" and reply.decision_id


def test_act_without_key_is_unauthenticated(channel: grpc.Channel) -> None:
    stub = router_pb2_grpc.PolicyRouterStub(channel)
    with pytest.raises(grpc.RpcError) as info:
        stub.Act(request(), timeout=1.0)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(("req", "field"), [
    (request(state=STATE[:5]), "observation.state"),
    (request(task="fly-v3"), "task"),
    (request(state=[*STATE[:3], float("nan"), *STATE[4:]]), "observation.state[3]"),
])
def test_bad_input_is_invalid_argument_naming_field(channel: grpc.Channel, req: Any,
                                                    field: str) -> None:
    stub = router_pb2_grpc.PolicyRouterStub(channel)
    with pytest.raises(grpc.RpcError) as info:
        stub.Act(req, timeout=1.0, metadata=AUTH)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details().startswith(field)
    assert dict(info.value.trailing_metadata())["field"] == field


def test_stream_act_answers_in_order_and_survives_a_bad_message(channel: grpc.Channel) -> None:
    stub = router_pb2_grpc.PolicyRouterStub(channel)
    msgs = [request(seq=1), request(state=STATE[:2], seq=2), request(task="", seq=3)]
    replies = list(stub.StreamAct(iter(msgs), timeout=5.0, metadata=AUTH))
    assert [r.sequence for r in replies] == [1, 2, 3]
    assert replies[0].route and not replies[0].error.code
    assert replies[1].error.code == "INVALID_ARGUMENT"
    assert replies[1].error.field == "observation.state"
    assert replies[2].task_source == "inferred"


def test_health_service(channel: grpc.Channel) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    for service in ("", "robotrouter.v1.PolicyRouter"):
        status = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=1.0).status
        assert status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize("raw", [b"\x0a\xff", b"\x0a\x02\xff\xfe", b"\xff\xff\xff\xff"],
                         ids=["truncated", "invalid-utf8", "garbage"])
def test_malformed_message_is_invalid_argument_not_internal(channel: grpc.Channel,
                                                            raw: bytes) -> None:
    """Bytes that do not parse as an ActRequest are the client's mistake: INVALID_ARGUMENT
    naming `request`, on Act and inside a StreamAct session (which carries on)."""
    act = channel.unary_unary("/robotrouter.v1.PolicyRouter/Act")
    with pytest.raises(grpc.RpcError) as info:
        act(raw, timeout=2.0, metadata=AUTH)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert dict(info.value.trailing_metadata())["field"] == "request"
    stream = channel.stream_stream("/robotrouter.v1.PolicyRouter/StreamAct",
                                   response_deserializer=router_pb2.ActResponse.FromString)
    replies = list(stream(iter([raw, request().SerializeToString()]), timeout=5.0,
                          metadata=AUTH))
    assert replies[0].error.code == "INVALID_ARGUMENT" and replies[0].error.field == "request"
    assert not replies[1].HasField("error") and len(replies[1].action) == 4
