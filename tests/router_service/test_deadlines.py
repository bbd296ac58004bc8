"""The request budget: when its clock started, and whether a reply left in time."""

from __future__ import annotations

import time

import pytest

from router_service.deadlines import Budget, reply_margin_ms, request_budget
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
