"""What is retried, what is not, and that retries stay inside the deadline, decided on a
fake clock (the same decisions drive every transport; test_client_http and
test_client_grpc check them end to end)."""

from __future__ import annotations

import pytest
from router_client import (
    ConnectError,
    DeadlineExceeded,
    InvalidRequest,
    Overloaded,
    RetryPolicy,
    RouterError,
    ServerError,
    TransportError,
)
from router_client._retry import CallBudget

NO_JITTER = RetryPolicy(jitter=0.0, backoff_s=0.005, min_attempt_ms=5.0)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def budget(seconds: float, *, idempotent: bool = False,
           policy: RetryPolicy = NO_JITTER) -> tuple[CallBudget, FakeClock]:
    clock = FakeClock()
    return CallBudget(policy, seconds, idempotent=idempotent, clock=clock), clock


# --- decisions ------------------------------------------------------------------------------


def test_act_retries_a_connect_failure_that_never_sent() -> None:
    call, _ = budget(0.1)
    call.next_attempt()
    assert call.retry_delay(ConnectError("refused", request_sent=False)) == pytest.approx(0.005)


@pytest.mark.parametrize(
    "error",
    [
        ConnectError("reset after send", request_sent=True),
        TransportError("cancelled", request_sent=True),
        DeadlineExceeded("late", request_sent=True),
        DeadlineExceeded("pool", request_sent=False),
        InvalidRequest("bad", field="observation.state"),
        ServerError("boom"),
    ],
)
def test_act_does_not_retry_what_may_have_run_or_cannot_succeed(error: RouterError) -> None:
    call, _ = budget(1.0)
    call.next_attempt()
    assert call.retry_delay(error) is None


def test_overloaded_waits_at_least_retry_after() -> None:
    call, _ = budget(0.2)
    call.next_attempt()
    assert call.retry_delay(Overloaded("shed", retry_after_ms=40)) == pytest.approx(0.040)


def test_overloaded_is_not_retried_when_the_wait_does_not_fit_the_deadline() -> None:
    call, clock = budget(0.05)
    call.next_attempt()
    clock.now += 0.010  # 40 ms left; 40 ms wait + 5 ms minimum attempt does not fit
    assert call.retry_delay(Overloaded("shed", retry_after_ms=40)) is None
    assert call.retry_delay(Overloaded("shed", retry_after_ms=30)) == pytest.approx(0.030)


def test_retry_overloaded_can_be_switched_off() -> None:
    call, _ = budget(1.0, policy=RetryPolicy(retry_overloaded=False))
    call.next_attempt()
    assert call.retry_delay(Overloaded("shed", retry_after_ms=1)) is None


def test_max_attempts_counts_the_first_attempt() -> None:
    call, _ = budget(10.0, policy=RetryPolicy(max_attempts=2, jitter=0.0))
    refused = ConnectError("refused", request_sent=False)
    call.next_attempt()
    assert call.retry_delay(refused) is not None
    call.next_attempt()
    assert call.retry_delay(refused) is None


def test_backoff_grows_and_is_capped() -> None:
    policy = RetryPolicy(backoff_s=0.01, backoff_multiplier=3.0, max_backoff_s=0.05)
    assert [policy.backoff_for(n) for n in (1, 2, 3)] == pytest.approx([0.01, 0.03, 0.05])


def test_jitter_only_lengthens_the_delay() -> None:
    clock = FakeClock()
    call = CallBudget(RetryPolicy(jitter=0.5), 1.0, idempotent=False, clock=clock,
                      rng=lambda: 1.0)
    call.next_attempt()
    assert call.retry_delay(Overloaded("shed", retry_after_ms=20)) == pytest.approx(0.030)


def test_feedback_also_retries_lost_replies_and_server_errors() -> None:
    for error in (ConnectError("reset", request_sent=True), ServerError("boom"),
                  TransportError("cancelled", request_sent=True)):
        call, _ = budget(5.0, idempotent=True)
        call.next_attempt()
        assert call.retry_delay(error) is not None, error
    call, _ = budget(5.0, idempotent=True)
    call.next_attempt()
    assert call.retry_delay(InvalidRequest("bad")) is None
    assert call.retry_delay(DeadlineExceeded("late", request_sent=True)) is None


def test_no_attempt_starts_after_the_budget_is_spent() -> None:
    call, clock = budget(0.01)
    call.next_attempt()
    clock.now += 0.02
    with pytest.raises(DeadlineExceeded):
        call.next_attempt()
