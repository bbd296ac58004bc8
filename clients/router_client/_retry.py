"""The retry decisions, kept free of I/O so the sync and async clients share them and the
tests can drive them with a fake clock. The two loops at the bottom are the only place
where sync and async control flow is written twice, and they are five lines each."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from .config import RetryPolicy, Timeouts
from .errors import (
    ConnectError,
    DeadlineExceeded,
    Overloaded,
    RouterError,
    ServerError,
    TransportError,
)
from .messages import ActRequest

T = TypeVar("T")
Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one attempt may spend. `budget_s` is what is left of the end-to-end budget
    when the attempt starts; `deadline_explicit` says the caller set a deadline, which
    HTTP then sends (shrunk to `budget_s`) in the body."""

    number: int
    budget_s: float
    deadline_explicit: bool

    @property
    def budget_ms(self) -> float:
        return self.budget_s * 1000.0


class CallBudget:
    """The end-to-end budget of one logical call and the retry decisions within it.

    `idempotent` widens what may be retried: a call the router de-duplicates (feedback)
    may be re-sent even when the first copy may have arrived; `act` may not, because the
    router would make (and log) a second decision the robot never used.
    """

    def __init__(self, policy: RetryPolicy, budget_s: float, *, idempotent: bool,
                 deadline_explicit: bool = False, clock: Clock = time.monotonic,
                 rng: Clock = random.random) -> None:
        self._policy = policy
        self._idempotent = idempotent
        self._deadline_explicit = deadline_explicit
        self._clock = clock
        self._rng = rng
        self._started = clock()
        self._deadline = self._started + budget_s
        self._attempts = 0

    @property
    def attempts(self) -> int:
        return self._attempts

    def remaining_s(self) -> float:
        return self._deadline - self._clock()

    def elapsed_s(self) -> float:
        return self._clock() - self._started

    def next_attempt(self) -> Attempt:
        remaining = self.remaining_s()
        if remaining <= 0:
            spent_ms = self.elapsed_s() * 1000.0
            raise DeadlineExceeded(
                f"budget spent ({spent_ms:.1f} ms) before attempt {self._attempts + 1} was sent",
                request_sent=self._attempts > 0,
            )
        self._attempts += 1
        return Attempt(self._attempts, remaining, self._deadline_explicit)

    def retry_delay(self, error: RouterError) -> float | None:
        """Seconds to wait before trying again, or None when `error` must be raised."""
        if self._attempts >= self._policy.max_attempts or not self._is_retryable(error):
            return None
        delay = self._policy.backoff_for(self._attempts)
        if isinstance(error, Overloaded) and error.retry_after_ms is not None:
            delay = max(delay, error.retry_after_ms / 1000.0)
        delay *= 1.0 + self._policy.jitter * self._rng()
        # Only retry if an attempt sent after the delay still has a useful budget: a retry
        # that cannot finish in time just turns a clear error into a later, vaguer one.
        if self.remaining_s() - delay < self._policy.min_attempt_ms / 1000.0:
            return None
        return delay

    def _is_retryable(self, error: RouterError) -> bool:
        if isinstance(error, DeadlineExceeded):
            return False
        if isinstance(error, Overloaded):
            return self._policy.retry_overloaded
        if isinstance(error, ConnectError) and not error.request_sent:
            return True
        return self._idempotent and isinstance(error, TransportError | ServerError)


def act_budget(request: ActRequest, timeouts: Timeouts, policy: RetryPolicy) -> CallBudget:
    if request.deadline_ms is None:
        return CallBudget(policy, timeouts.act_s, idempotent=False)
    return CallBudget(policy, request.deadline_ms / 1000.0, idempotent=False,
                      deadline_explicit=True)


def feedback_budget(timeouts: Timeouts, policy: RetryPolicy) -> CallBudget:
    return CallBudget(policy, timeouts.feedback_s, idempotent=True)


def call_with_retries(call: Callable[[Attempt], T], budget: CallBudget,
                      sleep: Callable[[float], None] = time.sleep) -> T:
    while True:
        try:
            return call(budget.next_attempt())
        except RouterError as error:
            delay = budget.retry_delay(error)
            if delay is None:
                raise
        sleep(delay)


async def acall_with_retries(call: Callable[[Attempt], Awaitable[T]], budget: CallBudget,
                             sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> T:
    while True:
        try:
            return await call(budget.next_attempt())
        except RouterError as error:
            delay = budget.retry_delay(error)
            if delay is None:
                raise
        await sleep(delay)
