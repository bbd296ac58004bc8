"""The request budget: when its clock started, and whether a reply left in time."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest

from router_service.deadlines import (
    Budget,
    grpc_call_budget_ms,
    grpc_wire_slack_ms,
    reply_margin_ms,
    request_budget,
)
from router_service.errors import DeadlineExpired, InvalidRequest, Overloaded


def test_met_keeps_back_the_reply_margin_and_the_loops_lag() -> None:
    budget = Budget(arrival=100.0, deadline=100.020, queued_ms=0.0)
    assert budget.reply_margin_ms == pytest.approx(2.0)  # 10% of 20 ms
    assert budget.met(100.017)  # 3 ms to spare: more than the 2 ms margin
    assert not budget.met(100.0185)  # 1.5 ms to spare
    # A loop running 2 ms late delivers late too: 3 ms to spare is no longer enough.
    assert not budget.met(100.017, delivery_lag_ms=2.0)
    assert budget.met(100.015, delivery_lag_ms=2.0)


def test_margin_is_bounded() -> None:
    assert reply_margin_ms(5.0) == 1.0 and reply_margin_ms(1000.0) == 5.0


def test_clock_starts_when_the_request_arrived() -> None:
    now = time.monotonic()
    budget = request_budget(now, 0.004, 20.0, None, 50.0)
    assert budget.queued_ms == pytest.approx(4.0)
    assert budget.total_ms == pytest.approx(20.0)
    assert budget.remaining_ms() < 16.5  # 4 ms already spent waiting


def test_bad_and_expired_deadlines() -> None:
    now = time.monotonic()
    with pytest.raises(InvalidRequest):
        request_budget(now, 0.0, float("nan"), None, 50.0)
    with pytest.raises(DeadlineExpired):
        request_budget(now, 0.0, 0.0, None, 50.0)
    with pytest.raises(Overloaded):  # had budget on arrival, lost it waiting in the router
        request_budget(now, 0.030, 20.0, None, 50.0)
    with pytest.raises(InvalidRequest):  # an absolute deadline far in the past: clock skew
        request_budget(now, 0.0, None, time.time() * 1000 - 60_000, 50.0)


def test_grpc_wire_slack_follows_the_timeout_encoding() -> None:
    assert grpc_wire_slack_ms(20.0) == grpc_wire_slack_ms(999.0) == 1.0  # whole milliseconds
    assert grpc_wire_slack_ms(2_000.0) == 11.0  # then three significant figures
    assert grpc_wire_slack_ms(30_000.0) == 101.0
    assert grpc_call_budget_ms(0.080, waited_s=0.002) == pytest.approx(80.0 - 1.0 + 2.0)
    assert grpc_call_budget_ms(-0.001, waited_s=0.0) < 0  # expired stays expired


@pytest.fixture()
def deadline_echo() -> Iterator[tuple[grpc.Channel, list[float]]]:
    """A real gRPC server whose handler notes how far its deadline, as the router computes it,
    lies past the one the client set (the client sends its own in metadata; same host clock)."""
    overshoot_ms: list[float] = []

    def handler(_: bytes, context: grpc.ServicerContext) -> bytes:
        client_deadline = float(dict(context.invocation_metadata())["x-deadline"])
        remaining = context.time_remaining()
        assert remaining is not None
        router_deadline = time.monotonic() + grpc_call_budget_ms(remaining, 0.0) / 1000
        overshoot_ms.append((router_deadline - client_deadline) * 1000)
        return b""

    server = grpc.server(futures.ThreadPoolExecutor(1))
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
        "probe.Deadline", {"Echo": grpc.unary_unary_rpc_method_handler(handler)})])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield channel, overshoot_ms
    server.stop(None)


@pytest.mark.parametrize("timeout_s", [0.08, 2.0])
def test_grpc_budget_does_not_outlast_the_callers_deadline(
        deadline_echo: tuple[grpc.Channel, list[float]], timeout_s: float) -> None:
    """Without the slack the server sees, at the median, ~0.5 ms (below 1 s) or ~9.5 ms (at 2 s)
    more than the client gave: replies called on time would reach it late. The client's
    deadline is taken just before the call starts, so the time until gRPC takes its own (a few
    µs, more on a busy host) counts against the router here: the median is the robust check."""
    channel, overshoot_ms = deadline_echo
    call = channel.unary_unary("/probe.Deadline/Echo")
    for _ in range(200):
        deadline = time.monotonic() + timeout_s
        call(b"", timeout=timeout_s, metadata=(("x-deadline", repr(deadline)),))
    assert statistics.median(overshoot_ms) <= 0.0
    assert statistics.median(overshoot_ms) >= -grpc_wire_slack_ms(timeout_s * 1000)
