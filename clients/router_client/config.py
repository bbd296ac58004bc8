"""How long the client waits and when it tries again."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["RetryPolicy", "Timeouts"]


def _check_positive(**values: float) -> None:
    for name, value in values.items():
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive finite number, got {value}")


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Time budgets, in seconds unless the name says otherwise.

    act_s: the end-to-end budget of an `act` whose request carries no `deadline_ms`
        (retries included). Over gRPC it becomes the call deadline, hence the router's
        budget too; over HTTP the router then applies its own default.
    feedback_s: the end-to-end budget of one `feedback` call, retries included.
    connect_s: the most one HTTP connection attempt may take; kept short because a robot
        would rather fail fast and retry than spend its whole budget on a SYN.
    deadline_slack_ms: HTTP only: how much longer than `deadline_ms` the client waits, so
        a reply the router sends right at its deadline (with `deadline_met=False`)
        still arrives instead of being cut off by our own timer.
    """

    act_s: float = 1.0
    feedback_s: float = 5.0
    connect_s: float = 0.5
    deadline_slack_ms: float = 20.0

    def __post_init__(self) -> None:
        _check_positive(act_s=self.act_s, feedback_s=self.feedback_s, connect_s=self.connect_s)
        if not (math.isfinite(self.deadline_slack_ms) and self.deadline_slack_ms >= 0):
            raise ValueError("deadline_slack_ms must be >= 0")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When a failed call is sent again. What is retried depends on the call, not on this
    object: `act` only on a connect failure that provably did not send the request, or on
    `Overloaded`; `feedback` (idempotent per episode and decision) also on lost replies
    and server errors. Nothing is retried after `DeadlineExceeded` or another rejection.

    max_attempts: attempts in all, the first included (1 disables retries).
    backoff_s, backoff_multiplier, max_backoff_s: exponential backoff between attempts.
    jitter: up to this fraction is added at random to each delay, so robots shed together
        do not come back together.
    min_attempt_ms: a retry is only sent if at least this much budget is left after the
        delay; an attempt with less could not get an answer in time anyway.
    retry_overloaded: whether `Overloaded` is retried at all (after `retry_after_ms`).
    """

    max_attempts: int = 3
    backoff_s: float = 0.005
    backoff_multiplier: float = 2.0
    max_backoff_s: float = 0.25
    jitter: float = 0.1
    min_attempt_ms: float = 5.0
    retry_overloaded: bool = True

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        _check_positive(backoff_s=self.backoff_s, max_backoff_s=self.max_backoff_s)
        if self.backoff_multiplier < 1 or not 0 <= self.jitter <= 1 or self.min_attempt_ms < 0:
            raise ValueError("need backoff_multiplier >= 1, 0 <= jitter <= 1, min_attempt_ms >= 0")

    @classmethod
    def disabled(cls) -> RetryPolicy:
        return cls(max_attempts=1)

    def backoff_for(self, failed_attempts: int) -> float:
        """Delay before the next attempt after `failed_attempts` failures, before jitter."""
        delay = self.backoff_s * self.backoff_multiplier ** max(failed_attempts - 1, 0)
        return min(delay, self.max_backoff_s)
