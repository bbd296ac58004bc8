"""The client SDK against the real router and the real Triton: what a robot controller sees."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from router_client import (
    ActRequest,
    AsyncRouterClient,
    Feedback,
    InvalidRequest,
    RouterClient,
    RouterPolicy,
    Unauthorized,
    UnknownTask,
)

from tests.router_fixtures import ROBOT_KEY, RouterFactory

pytestmark = [pytest.mark.slow, pytest.mark.triton]
STATE = np.random.default_rng(1).normal(0, 0.3, 39).astype(np.float32)


@pytest.fixture
def router(start_router: RouterFactory, triton_faults: Any) -> Any:
    return start_router()


def grpc_target(router: Any) -> str:
    return f"127.0.0.1:{router.grpc_port}"


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_sync_client_act_and_feedback(router: Any, transport: Any) -> None:
    with RouterClient(router.url, api_key=ROBOT_KEY, transport=transport,
                      grpc_target=grpc_target(router)) as client:
        reply = client.act(ActRequest("r1", "e1", STATE, task="reach-v3", deadline_ms=100))
        assert reply.route == "specialist_reach_v3" and reply.deadline_met
        assert reply.action_array().shape == (4,)
        client.feedback(Feedback("r1", "e1", success=True, decision_id=reply.decision_id))
        with pytest.raises(UnknownTask) as info:
            client.act(ActRequest("r1", "e1", STATE, task="fly-v3", deadline_ms=100))
        assert "reach-v3" in info.value.known_tasks
        with pytest.raises(InvalidRequest) as bad:
            client.act(ActRequest("r1", "e1", STATE[:5], task="reach-v3", deadline_ms=100))
        assert bad.value.field == "observation.state"


@pytest.mark.parametrize("transport", ["http", "grpc"])
async def test_async_client(router: Any, transport: Any) -> None:
    client = AsyncRouterClient(router.url, api_key=ROBOT_KEY, transport=transport,
                               grpc_target=grpc_target(router))
    try:
        reply = await client.act(ActRequest("r2", "e2", STATE, deadline_ms=100))
        assert reply.task_source == "inferred"
    finally:
        await client.aclose()


def test_wrong_key_is_unauthorized(router: Any) -> None:
    with RouterClient(router.url, api_key="nope") as client, pytest.raises(Unauthorized):
        client.act(ActRequest("r1", "e1", STATE, task="reach-v3", deadline_ms=100))


def test_stream_session_and_policy_interface(router: Any) -> None:
    with RouterClient(router.url, api_key=ROBOT_KEY, transport="grpc",
                      grpc_target=grpc_target(router)) as client:
        with client.session("r3") as session:
            replies = [session.act(ActRequest("r3", "e3", STATE, task="reach-v3",
                                              deadline_ms=100)) for _ in range(3)]
        assert [r.route for r in replies] == ["specialist_reach_v3"] * 3
        policy = RouterPolicy(client, robot_id="r4", task="reach-v3", deadline_ms=100)
        out = policy.infer({"state": STATE})
        assert np.asarray(out["actions"]).shape == (4,)
        policy.reset()
