"""Live per-route state the scorer reads: predicted latency and whether the route is usable.

Kept per replica on purpose: latency and failures are what *this* replica sees of Triton, and
sharing them through Redis would add a round trip to every request for little gain.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np


@dataclass
class LatencyEstimator:
    """Predicts a route's upstream latency as a high quantile of its recent samples.

    A quantile, not a mean: the budget check must hold for most requests, and a mean hides the
    tail that makes a robot miss its control tick.
    """

    prior_ms: float
    quantile: float = 0.9
    tail_quantile: float = 0.95  # where an adaptive hedge fires (forwarding.py)
    window: int = 256
    recompute_every: int = 16
    _samples: deque[float] = field(default_factory=deque, init=False)
    _cached_ms: float | None = field(default=None, init=False)
    _cached_tail_ms: float = field(default=0.0, init=False)
    _since_recompute: int = field(default=0, init=False)

    def observe(self, latency_ms: float) -> None:
        self._samples.append(latency_ms)
        if len(self._samples) > self.window:
            self._samples.popleft()
        self._since_recompute += 1
        if self._since_recompute >= self.recompute_every or self._cached_ms is None:
            self._since_recompute = 0
            q = np.quantile(np.fromiter(self._samples, float), (self.quantile, self.tail_quantile))
            self._cached_ms, self._cached_tail_ms = float(q[0]), float(q[1])

    def measured(self) -> bool:
        """Enough samples to trust the quantile (until then the contract's prior holds)."""
        return self._cached_ms is not None and len(self._samples) >= 8

    def predicted_ms(self) -> float:
        if not self.measured() or self._cached_ms is None:
            return self.prior_ms
        return self._cached_ms

    def tail_ms(self) -> float:
        """The `tail_quantile` of recent samples (the prior until measured)."""
        return self._cached_tail_ms if self.measured() else self.prior_ms


@dataclass
class CircuitBreaker:
    """Closed → open after `threshold` consecutive failures; half-open after `open_s`, where one
    request probes the route; a success closes it, a failure opens it again.

    `available` only looks (the scorer asks it for every candidate); `acquire` takes the probe
    slot and is called right before a real call, so scoring never uses up a probe. A probe that
    never reports back (cancelled) frees its slot after another `open_s`.
    """

    threshold: int
    open_s: float
    _failures: int = field(default=0, init=False)
    _opened_at: float | None = field(default=None, init=False)
    _probe_started: float | None = field(default=None, init=False)

    def _probe_free(self, now: float) -> bool:
        assert self._opened_at is not None
        if now - self._opened_at < self.open_s:
            return False
        return self._probe_started is None or now - self._probe_started >= self.open_s

    def available(self, now: float | None = None) -> bool:
        if self._opened_at is None:
            return True
        return self._probe_free(time.monotonic() if now is None else now)

    def acquire(self, now: float | None = None) -> bool:
        if self._opened_at is None:
            return True
        now = time.monotonic() if now is None else now
        if self._probe_free(now):
            self._probe_started = now
            return True
        return False

    @property
    def is_open(self) -> bool:
        return self._opened_at is not None

    def record_success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._probe_started = None

    def record_failure(self, now: float | None = None) -> None:
        self._failures += 1
        if self._probe_started is not None or self._failures >= self.threshold:
            self._opened_at = time.monotonic() if now is None else now
            self._probe_started = None

    def release(self) -> None:
        """A call that ended with no verdict (cancelled): let the next request probe."""
        self._probe_started = None


@dataclass
class RouteHealth:
    latency: LatencyEstimator
    breaker: CircuitBreaker
    model_ready: bool = True  # from the background readiness poll of Triton

    def usable(self) -> bool:
        return self.model_ready and self.breaker.available()
