"""Every error the router raises, in one tree.

    RouterError
    ├── ClientError              the request is at fault: a 4xx / gRPC INVALID_ARGUMENT family
    │   ├── InvalidRequest       a field is malformed (names the field)
    │   ├── UnknownTask          `task` is not in the contract (lists the known ones)
    │   ├── DeadlineExpired      no budget left before any work could start
    │   ├── PayloadTooLarge      body over the configured limit
    │   ├── Unauthorized         missing or wrong API key
    │   ├── Forbidden            a robot key on an admin endpoint, or for a robot (or a
    │   │                        decision) its key does not cover
    │   ├── RateLimited          the key is over its request rate (429 + retry hint)
    │   ├── ClientGone           the client hung up before its request was read (499)
    │   └── ContractError        the deployment contract is invalid (names the field)
    ├── Overloaded               shed at once instead of queueing late work (503 + retry hint)
    ├── UpstreamError            Triton did not give a usable answer (never reaches a client:
    │   ├── UpstreamTimeout      the engine falls back along the contract's order)
    │   ├── UpstreamUnavailable
    │   └── UpstreamRejected     Triton answered with an error (e.g. non-finite action)

Third-party exceptions are converted where they enter (`raise UpstreamTimeout(...) from exc`).
"""

from __future__ import annotations


class RouterError(Exception):
    """Base of every error raised by the router."""

    code = "internal"
    retry_after_ms: float | None = None  # set by errors that tell the client when to retry

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class ClientError(RouterError):
    http_status = 400
    grpc_code = "INVALID_ARGUMENT"


class InvalidRequest(ClientError):
    code = "invalid_argument"
    http_status = 422


class UnknownTask(ClientError):
    code = "unknown_task"
    http_status = 422

    def __init__(self, task: str, known: list[str]) -> None:
        super().__init__(f"unknown task {task!r}; known tasks: {', '.join(known)}", field="task")
        self.known = known


class DeadlineExpired(ClientError):
    code = "deadline_expired"
    http_status = 408
    grpc_code = "DEADLINE_EXCEEDED"


class PayloadTooLarge(ClientError):
    code = "payload_too_large"
    http_status = 413


class Unauthorized(ClientError):
    code = "unauthorized"
    http_status = 401
    grpc_code = "UNAUTHENTICATED"


class Forbidden(ClientError):
    code = "forbidden"
    http_status = 403
    grpc_code = "PERMISSION_DENIED"


class RateLimited(ClientError):
    code = "rate_limited"
    http_status = 429
    grpc_code = "RESOURCE_EXHAUSTED"

    def __init__(self, message: str, *, retry_after_ms: float, key_id: str) -> None:
        super().__init__(message)
        self.retry_after_ms = retry_after_ms
        self.key_id = key_id


class ClientGone(ClientError):
    code = "client_disconnected"
    http_status = 499  # nginx's "client closed request": nobody reads it, the metric counts it


class Overloaded(RouterError):
    code = "overloaded"
    http_status = 503
    grpc_code = "RESOURCE_EXHAUSTED"

    def __init__(self, message: str, *, retry_after_ms: float, reason: str) -> None:
        super().__init__(message)
        self.retry_after_ms = retry_after_ms
        self.reason = reason


class UpstreamError(RouterError):
    code = "upstream_error"
    reason = "upstream_error"


class UpstreamTimeout(UpstreamError):
    code = "upstream_timeout"
    reason = "timeout"


class UpstreamUnavailable(UpstreamError):
    code = "upstream_unavailable"
    reason = "unavailable"


class UpstreamRejected(UpstreamError):
    code = "upstream_rejected"
    reason = "rejected"


class ContractError(ClientError):
    """Raised at start-up (the process refuses to serve) and on reload (the admin gets a 422)."""

    code = "invalid_contract"
    http_status = 422
