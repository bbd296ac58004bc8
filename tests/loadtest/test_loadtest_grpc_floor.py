"""The gRPC transport floor answers the router's own `Act` at once, over a real grpc.aio
channel, so the benchmark's load generator drives it like the router."""

from __future__ import annotations

import asyncio
import contextlib

import grpc
from router_client.proto import router_pb2, router_pb2_grpc

from deploy.local.process import free_port
from loadtest.grpc_floor import ROUTE, serve


async def test_act_is_answered_at_once_with_the_fixed_action() -> None:
    port = free_port()
    server = asyncio.ensure_future(serve("127.0.0.1", port, action_dim=4))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await asyncio.wait_for(channel.channel_ready(), 10)
            stub = router_pb2_grpc.PolicyRouterStub(channel)  # type: ignore[no-untyped-call]
            reply = await stub.Act(router_pb2.ActRequest(
                robot_id="r1", episode_id="e1", task="reach-v3", sequence=7), timeout=5)
    finally:
        server.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await server
    assert list(reply.action) == [0.0] * 4
    assert (reply.route, reply.task, reply.sequence, reply.deadline_met) == (
        ROUTE, "reach-v3", 7, True)
