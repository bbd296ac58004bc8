"""The gRPC transport's own floor: a `grpc.aio` server of the router's `PolicyRouter` service
whose `Act` answers at once with a fixed action, on uvloop like the router. No engine, no
Triton: whatever it costs per request is what any Python gRPC front end pays before doing any
work, next to which the router's gRPC numbers are read (`python -m loadtest.bench`).

    python -m loadtest.grpc_floor --port 50061 --action-dim 4
"""

from __future__ import annotations

import argparse

import grpc
import uvloop
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from router_client.proto import router_pb2, router_pb2_grpc

ROUTE = "grpc-floor"


class FixedAnswer(router_pb2_grpc.PolicyRouterServicer):  # type: ignore[misc,unused-ignore]
    def __init__(self, action_dim: int) -> None:
        self.action = [0.0] * action_dim

    async def Act(self, request: router_pb2.ActRequest, context: grpc.aio.ServicerContext
                  ) -> router_pb2.ActResponse:
        return router_pb2.ActResponse(
            action=self.action, route=ROUTE, task=request.task, task_source="declared",
            deadline_met=True, sequence=request.sequence)


async def serve(host: str, port: int, action_dim: int) -> None:
    server = grpc.aio.server()
    router_pb2_grpc.add_PolicyRouterServicer_to_server(  # type: ignore[no-untyped-call,unused-ignore]
        FixedAnswer(action_dim), server)
    checks = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checks, server)
    await checks.set("", health_pb2.HealthCheckResponse.SERVING)
    server.add_insecure_port(f"{host}:{port}")
    await server.start()
    await server.wait_for_termination()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=50061)
    p.add_argument("--action-dim", type=int, default=4)
    args = p.parse_args(argv)
    uvloop.run(serve(args.host, args.port, args.action_dim))


if __name__ == "__main__":
    main()
