"""The error tree: HTTP status + body, gRPC status codes and third-party exceptions all map
to the same documented classes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc
import httpx
import pytest
from router_client import errors
from router_client._grpc import error_from_rpc
from router_client._http import error_from_httpx
from router_client.errors import (
    ConnectError,
    DeadlineExceeded,
    InvalidRequest,
    Overloaded,
    RequestRejected,
    RouterError,
    ServerError,
    TransportError,
    Unauthorized,
    UnknownTask,
)


def body(code: str, message: str = "msg", **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def test_tree_shape() -> None:
    assert issubclass(ConnectError, TransportError) and issubclass(DeadlineExceeded, TransportError)
    assert issubclass(UnknownTask, InvalidRequest) and issubclass(InvalidRequest, RequestRejected)
    for cls in (Unauthorized, Overloaded):
        assert issubclass(cls, RequestRejected)
    for cls in (TransportError, RequestRejected, ServerError):
        assert issubclass(cls, RouterError)
    assert set(errors.__all__) >= {cls.__name__ for cls in (ConnectError, UnknownTask)}


# --- HTTP -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "payload", "expected"),
    [
        (401, body("unauthorized"), Unauthorized),
        (403, body("forbidden"), Unauthorized),
        (408, body("deadline_expired"), DeadlineExceeded),
        (413, body("payload_too_large", field="body"), InvalidRequest),
        (422, body("invalid_argument", field="observation.state"), InvalidRequest),
        (400, None, InvalidRequest),
        (429, None, Overloaded),
        (503, body("overloaded", retry_after_ms=40), Overloaded),
        (404, "not json at all", RequestRejected),
        (500, body("internal"), ServerError),
        (502, None, ServerError),
    ],
)
def test_http_status_decides_the_class(status: int, payload: Any, expected: type) -> None:
    error = errors.error_from_http(status, payload)
    assert type(error) is expected
    assert error.status == status


def test_http_body_fills_the_attributes() -> None:
    invalid = errors.error_from_http(
        422, body("invalid_argument", "observation.state has 3 values", field="observation.state"))
    assert isinstance(invalid, InvalidRequest)
    assert (invalid.code, invalid.field, invalid.message) == (
        "invalid_argument", "observation.state", "observation.state has 3 values")
    assert str(invalid) == "observation.state has 3 values"


def test_http_unknown_task_lists_known_tasks() -> None:
    error = errors.error_from_http(
        422, body("unknown_task", "unknown task 'fly'", field="task",
                  known_tasks=["reach-v3", "push-v3"]))
    assert isinstance(error, UnknownTask)
    assert error.known_tasks == ("reach-v3", "push-v3") and error.field == "task"


def test_http_invalid_task_type_is_not_an_unknown_task() -> None:
    error = errors.error_from_http(422, body("invalid_argument", field="task"))
    assert type(error) is InvalidRequest


def test_http_overloaded_prefers_body_hint_then_retry_after_header() -> None:
    from_body = errors.error_from_http(503, body("overloaded", retry_after_ms=40),
                                       {"retry-after": "1"})
    assert isinstance(from_body, Overloaded) and from_body.retry_after_ms == 40
    from_header = errors.error_from_http(503, None, {"retry-after": "2"})
    assert isinstance(from_header, Overloaded) and from_header.retry_after_ms == 2000
    # An HTTP-date is ignored rather than trusted against a robot's clock.
    dated = errors.error_from_http(503, None, {"retry-after": "Wed, 21 Oct 2026 07:28:00 GMT"})
    assert isinstance(dated, Overloaded) and dated.retry_after_ms is None


def test_http_408_means_the_request_was_sent() -> None:
    error = errors.error_from_http(408, body("deadline_expired"))
    assert isinstance(error, DeadlineExceeded) and error.request_sent


# --- gRPC status names ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("UNAUTHENTICATED", Unauthorized),
        ("PERMISSION_DENIED", Unauthorized),
        ("DEADLINE_EXCEEDED", DeadlineExceeded),
        ("RESOURCE_EXHAUSTED", Overloaded),
        ("UNAVAILABLE", ConnectError),
        ("CANCELLED", TransportError),
        ("INVALID_ARGUMENT", InvalidRequest),
        ("OUT_OF_RANGE", InvalidRequest),
        ("INTERNAL", ServerError),
        ("UNKNOWN", ServerError),
        ("UNIMPLEMENTED", ServerError),
    ],
)
def test_grpc_status_name_decides_the_class(name: str, expected: type) -> None:
    error = errors.error_from_status_name(name, "details")
    assert type(error) is expected and error.code == name


def test_grpc_unavailable_with_a_retry_hint_is_shedding() -> None:
    error = errors.error_from_status_name("UNAVAILABLE", "shed", retry_after_ms=25)
    assert isinstance(error, Overloaded) and error.retry_after_ms == 25


def test_grpc_zero_retry_hint_means_none() -> None:
    error = errors.error_from_status_name("RESOURCE_EXHAUSTED", "shed", retry_after_ms=0)
    assert isinstance(error, Overloaded) and error.retry_after_ms is None


def test_grpc_unknown_task_reads_known_tasks_from_the_status_text() -> None:
    # The router's message format: "<field>: unknown task '<t>'; known tasks: a, b".
    error = errors.error_from_status_name(
        "INVALID_ARGUMENT", "task: unknown task 'fly'; known tasks: reach-v3, push-v3",
        field="task")
    assert isinstance(error, UnknownTask) and error.known_tasks == ("reach-v3", "push-v3")


# --- third-party exceptions where they enter ------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "expected", "sent"),
    [
        (httpx.ConnectError("refused"), ConnectError, False),
        (httpx.ConnectTimeout("slow syn"), ConnectError, False),
        (httpx.PoolTimeout("no connection"), DeadlineExceeded, False),
        (httpx.ReadTimeout("late"), DeadlineExceeded, True),
        (httpx.WriteTimeout("late"), DeadlineExceeded, True),
        (httpx.ReadError("reset"), ConnectError, True),
        (httpx.RemoteProtocolError("closed"), ConnectError, True),
        (httpx.UnsupportedProtocol("ftp://"), TransportError, False),
        (httpx.DecodingError("gzip"), ServerError, None),
    ],
)
def test_httpx_exceptions(exc: httpx.HTTPError, expected: type, sent: bool | None) -> None:
    error = error_from_httpx(exc)
    assert type(error) is expected
    if sent is not None:
        assert isinstance(error, TransportError) and error.request_sent is sent


@dataclass
class FakeRpcError:
    status: grpc.StatusCode
    text: str
    trailing: tuple[tuple[str, str], ...] = ()

    def code(self) -> grpc.StatusCode:
        return self.status

    def details(self) -> str:
        return self.text

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        return self.trailing


def test_rpc_error_never_connected_is_not_sent() -> None:
    refused = error_from_rpc(FakeRpcError(
        grpc.StatusCode.UNAVAILABLE,
        "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:1: "
        "Failed to connect to remote host: Connection refused"))
    assert isinstance(refused, ConnectError) and not refused.request_sent
    dns = error_from_rpc(FakeRpcError(grpc.StatusCode.UNAVAILABLE,
                                      "errors resolving nowhere.invalid:50051"))
    assert isinstance(dns, ConnectError) and not dns.request_sent


def test_rpc_error_connection_lost_mid_call_may_have_been_sent() -> None:
    lost = error_from_rpc(FakeRpcError(grpc.StatusCode.UNAVAILABLE, "Socket closed"))
    assert isinstance(lost, ConnectError) and lost.request_sent


def test_rpc_error_reads_the_routers_trailing_metadata() -> None:
    shed = error_from_rpc(FakeRpcError(grpc.StatusCode.RESOURCE_EXHAUSTED, "shed",
                                       (("field", ""), ("retry-after-ms", "35"))))
    assert isinstance(shed, Overloaded) and shed.retry_after_ms == 35
    invalid = error_from_rpc(FakeRpcError(
        grpc.StatusCode.INVALID_ARGUMENT, "observation.state: has 3 values",
        (("field", "observation.state"), ("retry-after-ms", "0"))))
    assert isinstance(invalid, InvalidRequest) and invalid.field == "observation.state"
    assert not isinstance(invalid, UnknownTask)
