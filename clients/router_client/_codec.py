"""Request building and reply parsing for both wire formats, with no I/O: the four
transports (HTTP/gRPC × sync/async) only move bytes and call these."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ._retry import Attempt
from .errors import RouterError, ServerError, error_from_http, error_from_status_name
from .messages import ActRequest, ActResponse, Feedback, Timing
from .proto import router_pb2

# --- HTTP / JSON ----------------------------------------------------------------------------


def act_json(request: ActRequest, attempt: Attempt) -> dict[str, Any]:
    body: dict[str, Any] = {
        "robot_id": request.robot_id,
        "episode_id": request.episode_id,
        "observation": {"state": list(request.state)},
    }
    if request.task is not None:
        body["task"] = request.task
    if attempt.deadline_explicit:
        # The budget left now, not the one the caller asked for: after a retry the router
        # must plan for the time that is really left.
        body["deadline_ms"] = round(attempt.budget_ms, 3)
    return body


def feedback_json(feedback: Feedback) -> dict[str, Any]:
    body: dict[str, Any] = {
        "robot_id": feedback.robot_id,
        "episode_id": feedback.episode_id,
        "success": feedback.success,
    }
    if feedback.decision_id is not None:
        body["decision_id"] = feedback.decision_id
    if feedback.true_task is not None:
        body["true_task"] = feedback.true_task
    return body


def reply_wait_s(attempt: Attempt, slack_ms: float, *, deadline_sent: bool) -> float:
    """How long to wait for a reply. When the message carries `deadline_ms` the router
    answers by then (possibly with `deadline_met=False`); the slack covers the trip back
    so such an honest late answer is not cut off by our own timer."""
    return attempt.budget_s + (slack_ms / 1000.0 if deadline_sent else 0.0)


def _optional_str(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def parse_act_json(payload: Any) -> ActResponse:
    try:
        timing = payload["timing_ms"]
        confidence = payload.get("task_confidence")
        return ActResponse(
            action=tuple(float(x) for x in payload["action"]),
            route=str(payload["route"]),
            policy_version=str(payload.get("policy_version") or ""),
            task=_optional_str(payload.get("task")),
            task_source=str(payload.get("task_source") or ""),
            task_confidence=None if confidence is None else float(confidence),
            fallback=_optional_str(payload.get("fallback")),
            deadline_met=bool(payload["deadline_met"]),
            timing_ms=Timing(
                scoring_ms=float(timing.get("scoring") or 0.0),
                upstream_ms=float(timing.get("upstream") or 0.0),
                total_ms=float(timing.get("total") or 0.0),
            ),
            decision_id=str(payload["decision_id"]),
            reason=str(payload.get("reason") or ""),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ServerError(f"router sent a malformed act reply: {exc!r}") from exc


def decode_json(content: bytes) -> Any:
    try:
        return json.loads(content)
    except ValueError:
        return None


def http_error(status: int, content: bytes, headers: Mapping[str, str]) -> RouterError:
    error = error_from_http(status, decode_json(content), headers)
    if status >= 500 and error.message.startswith("router answered"):
        # A proxy's HTML page says more than our generic message; keep a little of it.
        snippet = content[:200].decode("utf-8", "replace").strip()
        if snippet:
            error.message = f"{error.message}: {snippet}"
            error.args = (error.message,)
    return error


# --- gRPC / protobuf ------------------------------------------------------------------------


def act_message(request: ActRequest, *, deadline_ms: float = 0.0,
                sequence: int = 0) -> router_pb2.ActRequest:
    """`deadline_ms` stays 0 on unary calls (the gRPC deadline is the budget there) and
    is set on stream messages, which have no per-message deadline of their own."""
    return router_pb2.ActRequest(
        robot_id=request.robot_id,
        episode_id=request.episode_id,
        task=request.task or "",
        observation=router_pb2.Observation(state=request.state),
        deadline_ms=deadline_ms,
        sequence=sequence,
    )


def parse_act_message(message: router_pb2.ActResponse) -> ActResponse:
    timing = message.timing_ms
    return ActResponse(
        action=tuple(message.action),
        route=message.route,
        policy_version=message.policy_version,
        task=message.task or None,
        task_source=message.task_source,
        task_confidence=message.task_confidence,
        fallback=message.fallback or None,
        deadline_met=message.deadline_met,
        timing_ms=Timing(timing.scoring_ms, timing.upstream_ms, timing.total_ms),
        decision_id=message.decision_id,
        reason=message.reason,
        sequence=message.sequence,
    )


def stream_reply_error(message: router_pb2.ActResponse) -> RouterError | None:
    """The error carried inside one StreamAct reply (the stream itself goes on)."""
    if not message.HasField("error"):
        return None
    error = message.error
    return error_from_status_name(
        error.code or "UNKNOWN",
        error.message,
        field=error.field or None,
        retry_after_ms=error.retry_after_ms or None,
    )
