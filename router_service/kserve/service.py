"""What both transports share: a decoded inference request becomes an `ActInput` for
`ActEngine.serve` (the one admission path), the reply's decision becomes response
parameters, and a `RouterError` becomes a KServe status (gRPC code / HTTP status) whose
message starts with the field it is about."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from router_service.deadlines import MAX_BUDGET_MS
from router_service.engine import ActEngine, ActInput, ActReply
from router_service.errors import ClientError, InvalidRequest, Overloaded, RouterError, UnknownTask
from router_service.keys import RobotKey
from router_service.kserve.models import INPUT, ModelView
from router_service.kserve.params import CallParams, robot_for
from router_service.kserve.tensors import Observation

T = TypeVar("T")
ReplyParams = dict[str, str | bool | float]
# Fields the engine names as in `/v1/act`'s body, renamed to where a KServe client put them.
_PARAMETER_FIELDS = frozenset({"robot_id", "episode_id", "task", "deadline_ms",
                               "deadline_unix_ms"})
_STATE_FIELD = "observation.state"


@dataclass(frozen=True, slots=True)
class KServeError:
    http_status: int
    grpc_code: str  # a grpc.StatusCode name
    message: str  # starts with `field` when there is one
    field: str | None
    retry_after_ms: float | None


def _kserve_field(field: str | None) -> str | None:
    if field in _PARAMETER_FIELDS:
        return f"parameters.{field}"
    if field is not None and field.startswith(_STATE_FIELD):
        return INPUT + field[len(_STATE_FIELD):]
    return field


def kserve_error(exc: RouterError) -> KServeError:
    field = _kserve_field(exc.field)
    message = exc.message
    if field is not None and not message.startswith(field):
        message = f"{field}: {message}"
    if isinstance(exc, InvalidRequest | UnknownTask):
        status, code = 400, exc.grpc_code  # KServe's "bad request", not the router's 422
    elif isinstance(exc, ClientError | Overloaded):
        status, code = exc.http_status, exc.grpc_code
    else:
        status, code = 500, "INTERNAL"
    return KServeError(status, code, message, field, exc.retry_after_ms)


def act_input(view: ModelView, obs: Observation, params: CallParams, key: RobotKey,
              received_at: float, queued_s: float, call_deadline_ms: float | None = None,
              header_unix_ms: float | None = None) -> ActInput:
    """`call_deadline_ms`: the transport's own deadline (gRPC's), from arrival."""
    deadline_ms = params.deadline_ms
    if call_deadline_ms is not None:
        call_deadline_ms = min(call_deadline_ms, MAX_BUDGET_MS)  # a long timeout: no hurry
        deadline_ms = call_deadline_ms if deadline_ms is None else min(deadline_ms,
                                                                       call_deadline_ms)
    unix_ms = params.deadline_unix_ms
    if header_unix_ms is not None:
        unix_ms = header_unix_ms if unix_ms is None else min(unix_ms, header_unix_ms)
    return ActInput(
        robot_id=robot_for(params, key), episode_id=params.episode_id,
        task=view.task_for(params.task), state=obs.state, deadline_ms=deadline_ms,
        deadline_unix_ms=unix_ms, received_at=received_at, key=key, queued_s=queued_s,
        route=None if view.kind == "route" else view.name,
    )


async def serve(engine: ActEngine, prepare: Callable[[], tuple[ActInput, T]]
                ) -> tuple[ActReply, T]:
    """Decode (`prepare`: the act input and what the reply needs of the request), then act.
    A request refused while decoding is counted as the engine counts the requests it refuses
    itself (`router_requests_total{route="none"}`)."""
    try:
        request, extra = prepare()
    except RouterError as exc:
        engine.count_refusal(exc)
        raise
    return await engine.serve(request), extra


def reply_parameters(reply: ActReply) -> ReplyParams:
    """The decision, as request-level response parameters (strings, bools and doubles)."""
    timing = reply.timing_ms
    return {
        "route": reply.route, "task": reply.task, "task_source": reply.task_source,
        "task_confidence": reply.task_confidence, "fallback": reply.fallback or "",
        "deadline_met": reply.deadline_met, "decision_id": reply.decision_id,
        "policy_version": reply.policy_version, "reason": reply.reason,
        "queued_ms": timing["queued"], "upstream_ms": timing["upstream"],
        "total_ms": timing["total"],
    }
