"""Per-key request-rate limits: a token bucket per key id, refilled continuously.

A bucket holds at most `burst` tokens and gains `rate_per_s` a second; a request takes one, and
when none is there the caller learns how long until one is. The clock is injected (tests step
it by hand). Buckets live in each router process: with `ROUTER_WORKERS=N` a key's robots that
spread their connections over the workers can reach N times the rate.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from router_service.keys import RobotKey

Clock = Callable[[], float]


@dataclass(slots=True)
class TokenBucket:
    rate_per_s: float
    burst: float
    tokens: float
    updated: float  # clock time of `tokens`

    @classmethod
    def full(cls, rate_per_s: float, burst: float, now: float) -> TokenBucket:
        return cls(rate_per_s, burst, burst, now)

    def take(self, now: float) -> float:
        """0.0 when a token was taken; else the seconds until one will be there."""
        tokens = min(self.burst, self.tokens + max(0.0, now - self.updated) * self.rate_per_s)
        self.updated = now
        if tokens >= 1.0:
            self.tokens = tokens - 1.0
            return 0.0
        self.tokens = tokens  # a refused request takes nothing: waiting is enough to recover
        return (1.0 - tokens) / self.rate_per_s


class RateLimiter:
    """The buckets of every key that has a rate; a key without one is never limited."""

    def __init__(self, keys: Iterable[RobotKey], clock: Clock = time.monotonic) -> None:
        self._clock = clock
        now = clock()
        self._buckets = {k.key_id: TokenBucket.full(k.rate_per_s, k.burst, now)
                         for k in keys if k.rate_per_s is not None}

    def wait_s(self, key: RobotKey) -> float:
        """0.0 when the key may go on now; else how long it should wait."""
        bucket = self._buckets.get(key.key_id)
        return 0.0 if bucket is None else bucket.take(self._clock())
