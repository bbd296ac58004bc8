"""Test doubles for the client SDK's unit tests: canned router replies and a programmable
in-process gRPC router. The real router is not involved (end-to-end tests against it
live elsewhere). A module of its own, not conftest, so tests can import it by a name no
other test folder uses."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
from router_client.proto import router_pb2, router_pb2_grpc

ROBOT_KEY = "test-robot-key"
STATE = [0.01 * i for i in range(39)]


def act_reply_json(**overrides: Any) -> dict[str, Any]:
    """A /v1/act body as docs/interfaces.md specifies it."""
    reply: dict[str, Any] = {
        "action": [0.1, -0.2, 0.3, 1.0],
        "route": "specialist_reach_v3",
        "policy_version": "specialist_reach_v3-7",
        "task": "reach-v3",
        "task_source": "declared",
        "task_confidence": 1.0,
        "fallback": None,
        "deadline_met": True,
        "timing_ms": {"scoring": 0.2, "upstream": 2.5, "total": 3.1},
        "decision_id": "dec-1",
        "reason": "best_score",
    }
    reply.update(overrides)
    return reply


def act_reply_message(sequence: int = 0, **overrides: Any) -> router_pb2.ActResponse:
    fields: dict[str, Any] = {
        "action": [0.1, -0.2, 0.3, 1.0],
        "route": "specialist_reach_v3",
        "policy_version": "specialist_reach_v3-7",
        "task": "reach-v3",
        "task_source": "declared",
        "task_confidence": 1.0,
        "deadline_met": True,
        "timing_ms": router_pb2.Timing(scoring_ms=0.2, upstream_ms=2.5, total_ms=3.1),
        "decision_id": f"dec-{sequence}",
        "reason": "best_score",
        "sequence": sequence,
    }
    fields.update(overrides)
    return router_pb2.ActResponse(**fields)


# --- in-process gRPC router -------------------------------------------------------------------

# A behaviour answers one request: it returns the reply (or None to answer nothing on a
# stream), or aborts through the context.
Behaviour = Callable[[router_pb2.ActRequest, grpc.ServicerContext], router_pb2.ActResponse | None]


def answer(request: router_pb2.ActRequest, context: grpc.ServicerContext) -> router_pb2.ActResponse:
    return act_reply_message(request.sequence, decision_id=f"dec-{request.sequence}")


def abort_with(code: grpc.StatusCode, details: str, **trailing: str) -> Behaviour:
    def behaviour(request: router_pb2.ActRequest,
                  context: grpc.ServicerContext) -> router_pb2.ActResponse:
        context.set_trailing_metadata(tuple(trailing.items()))
        context.abort(code, details)
        raise AssertionError("unreachable")

    return behaviour


def delayed(seconds: float, then: Behaviour = answer) -> Behaviour:
    def behaviour(request: router_pb2.ActRequest,
                  context: grpc.ServicerContext) -> router_pb2.ActResponse | None:
        time.sleep(seconds)
        return then(request, context)

    return behaviour


def stream_error(code: str, message: str, **fields: Any) -> Behaviour:
    def behaviour(request: router_pb2.ActRequest,
                  context: grpc.ServicerContext) -> router_pb2.ActResponse:
        return router_pb2.ActResponse(
            sequence=request.sequence,
            error=router_pb2.Error(code=code, message=message, **fields),
        )

    return behaviour


@dataclass
class Seen:
    request: router_pb2.ActRequest
    metadata: dict[str, str]
    time_remaining: float | None


@dataclass
class FakeRouter:
    """Plays `script` in order (then answers normally) and records what it saw."""

    port: int
    script: list[Behaviour] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    streams_opened: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def next_behaviour(self, request: router_pb2.ActRequest,
                       context: grpc.ServicerContext) -> Behaviour:
        with self.lock:
            metadata = {key: str(value) for key, value in context.invocation_metadata()}
            self.seen.append(Seen(request, metadata, context.time_remaining()))
            return self.script.pop(0) if self.script else answer


class RouterServicer(router_pb2_grpc.PolicyRouterServicer):
    def __init__(self, router: FakeRouter) -> None:
        self.router = router

    def Act(self, request: router_pb2.ActRequest,
            context: grpc.ServicerContext) -> router_pb2.ActResponse | None:
        return self.router.next_behaviour(request, context)(request, context)

    def StreamAct(self, requests: Iterator[router_pb2.ActRequest],
                  context: grpc.ServicerContext) -> Iterator[router_pb2.ActResponse]:
        with self.router.lock:
            self.router.streams_opened += 1
        for request in requests:
            reply = self.router.next_behaviour(request, context)(request, context)
            if reply is not None:
                yield reply
