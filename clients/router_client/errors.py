"""Every error the router client raises, and the mapping from the router's wire errors.

The tree (catch as narrowly as the controller can act on it)::

    RouterError                      anything this package raises about a call
    ├── TransportError               no answer from the router (.request_sent)
    │   ├── ConnectError             could not reach it; act retries this when not sent
    │   └── DeadlineExceeded         the budget ran out (client timeout, HTTP 408,
    │                                gRPC DEADLINE_EXCEEDED); never retried
    ├── RequestRejected              the router answered and refused (.status, .code)
    │   ├── InvalidRequest           .field: dotted path of the bad field (400/413/422)
    │   │   └── UnknownTask          .known_tasks: what the router would have accepted
    │   ├── Unauthorized             bad or missing key (401/403)
    │   └── Overloaded               shed; .retry_after_ms says when to come back (503)
    └── ServerError                  the router failed (5xx, INTERNAL, unreadable reply)

Programmer errors (a malformed ActRequest, closed client) are ValueError/RuntimeError,
not RouterError: a controller's `except RouterError` should only see the network and
the router, never its own bugs.

This module imports neither httpx nor grpc: the transports convert their own exceptions
where they enter (`raise ... from exc`) and call `error_from_http` / `error_from_status_name`
here, so both wire protocols share one mapping.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "ConnectError",
    "DeadlineExceeded",
    "InvalidRequest",
    "Overloaded",
    "RequestRejected",
    "RouterError",
    "ServerError",
    "TransportError",
    "Unauthorized",
    "UnknownTask",
    "error_from_http",
    "error_from_status_name",
]


class RouterError(Exception):
    """Base of every error about a router call.

    `code` is the router's machine-readable error code (HTTP body `error.code`, or the
    gRPC status name); `status` the HTTP status, when the error came over HTTP.
    """

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status


class TransportError(RouterError):
    """No usable answer arrived. `request_sent` is False only when the request provably
    never left this process (so the router cannot have acted on it)."""

    def __init__(self, message: str, *, request_sent: bool, code: str | None = None,
                 status: int | None = None):
        super().__init__(message, code=code, status=status)
        self.request_sent = request_sent


class ConnectError(TransportError):
    """The router could not be reached (refused, DNS, TLS, connection lost)."""


class DeadlineExceeded(TransportError):
    """The request's budget ran out before an answer. Retrying cannot help: the budget
    is end-to-end, so a second attempt would start already late."""


class RequestRejected(RouterError):
    """The router answered and refused this request; sending it again unchanged will not
    help (except for `Overloaded`)."""


class InvalidRequest(RequestRejected):
    """The request failed validation; `field` is the dotted path of the offending field
    (e.g. "observation.state") when the router named one."""

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None,
                 status: int | None = None):
        super().__init__(message, code=code, status=status)
        self.field = field


class UnknownTask(InvalidRequest):
    """The declared task is not served; `known_tasks` lists those that are (empty when
    the router did not say)."""

    def __init__(self, message: str, *, known_tasks: Sequence[str] = (), code: str | None = None,
                 status: int | None = None):
        super().__init__(message, field="task", code=code, status=status)
        self.known_tasks: tuple[str, ...] = tuple(known_tasks)


class Unauthorized(RequestRejected):
    """The API key is missing, wrong, or lacks the right for this call."""


class Overloaded(RequestRejected):
    """The router shed the request. `retry_after_ms` is its hint for when to come back
    (None when it gave none)."""

    def __init__(self, message: str, *, retry_after_ms: float | None = None,
                 code: str | None = None, status: int | None = None):
        super().__init__(message, code=code, status=status)
        self.retry_after_ms = retry_after_ms


class ServerError(RouterError):
    """The router (or something in front of it) failed, or answered something unreadable."""


# --- mapping from the wire ------------------------------------------------------------------

_UNKNOWN_TASK_CODES = frozenset({"unknown_task", "UNKNOWN_TASK"})
_KNOWN_TASKS_MARKER = "known tasks:"


def _positive_ms(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def _retry_after_header_ms(headers: Mapping[str, str]) -> float | None:
    # Retry-After is delta-seconds per RFC 9110; an HTTP-date form is ignored on purpose
    # (a robot cannot trust its wall clock to agree with the router's).
    value = headers.get("retry-after") or headers.get("Retry-After")
    seconds = _positive_ms(value)
    return None if seconds is None else seconds * 1000.0


def _known_tasks_in_message(message: str) -> tuple[str, ...]:
    # gRPC has no structured place for the list, so the router writes it into the status
    # text ("... known tasks: a, b"); best effort, an empty tuple when absent.
    _, marker, tail = message.rpartition(_KNOWN_TASKS_MARKER)
    return tuple(t.strip() for t in tail.split(",") if t.strip()) if marker else ()


def _known_tasks(error: Mapping[str, Any]) -> tuple[str, ...]:
    tasks = error.get("known_tasks")
    if isinstance(tasks, list | tuple):
        return tuple(str(task) for task in tasks)
    return ()


def error_from_http(status: int, body: Any,
                    headers: Mapping[str, str] | None = None) -> RouterError:
    """Map a non-2xx HTTP answer of the router to its exception.

    `body` is the decoded JSON (or None / anything else when it was not the router's
    `{"error": {"code", "message", "field"?, "retry_after_ms"?}}`, e.g. from a proxy). The
    HTTP status decides the class; the body refines it and fills the attributes.
    """
    headers = headers or {}
    error: Mapping[str, Any] = {}
    if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping):
        error = body["error"]
    code = str(error["code"]) if error.get("code") is not None else None
    message = str(error.get("message") or f"router answered HTTP {status}")
    field = str(error["field"]) if error.get("field") else None

    if status in (401, 403):
        return Unauthorized(message, code=code, status=status)
    if status == 408:
        return DeadlineExceeded(message, request_sent=True, code=code, status=status)
    if status in (429, 503):
        retry_after = _positive_ms(error.get("retry_after_ms"))
        if retry_after is None:
            retry_after = _retry_after_header_ms(headers)
        return Overloaded(message, retry_after_ms=retry_after, code=code, status=status)
    if status in (400, 413, 422):
        if code in _UNKNOWN_TASK_CODES or "known_tasks" in error:
            return UnknownTask(message, known_tasks=_known_tasks(error), code=code, status=status)
        return InvalidRequest(message, field=field, code=code, status=status)
    if 400 <= status < 500:
        return RequestRejected(message, code=code, status=status)
    return ServerError(message, code=code, status=status)


def error_from_status_name(
    name: str,
    message: str,
    *,
    field: str | None = None,
    retry_after_ms: float | None = None,
    known_tasks: Sequence[str] = (),
    request_sent: bool = True,
) -> RouterError:
    """Map a gRPC status (by name, e.g. "RESOURCE_EXHAUSTED", as in grpc.StatusCode.name and
    the proto's `Error.code`) to its exception. `request_sent` only matters for
    UNAVAILABLE, where the transport knows whether the call ever left."""
    message = message or name
    retry_after = _positive_ms(retry_after_ms)
    if name in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
        return Unauthorized(message, code=name)
    if name == "DEADLINE_EXCEEDED":
        return DeadlineExceeded(message, request_sent=True, code=name)
    if name == "RESOURCE_EXHAUSTED" or (name == "UNAVAILABLE" and retry_after is not None):
        # A router that sheds with UNAVAILABLE says so by sending a retry hint; without
        # one, UNAVAILABLE is the channel's own "could not connect".
        return Overloaded(message, retry_after_ms=retry_after, code=name)
    if name == "UNAVAILABLE":
        return ConnectError(message, request_sent=request_sent, code=name)
    if name == "CANCELLED":
        return TransportError(message, request_sent=True, code=name)
    if name in ("INVALID_ARGUMENT", "OUT_OF_RANGE", "FAILED_PRECONDITION", "NOT_FOUND"):
        if known_tasks or (field == "task" and name in ("INVALID_ARGUMENT", "NOT_FOUND")):
            known = tuple(known_tasks) or _known_tasks_in_message(message)
            return UnknownTask(message, known_tasks=known, code=name)
        return InvalidRequest(message, field=field or None, code=name)
    return ServerError(message, code=name)
