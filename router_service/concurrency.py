"""The router's concurrency limit, adapted to what the stack behind it answers in time.

Under overload every admitted request competes for the same cores: Triton answers each one
later, attempts time out or find no budget left, and the robot gets the hold action. That is the
router's overload dressed up as a slow route. This limit (AIMD, as TCP's congestion window)
tracks how many requests may be in flight and still be answered:
- a request not answered in time (late, or held for lack of time) while more than `min_limit`
  requests were in flight cuts the limit to `backoff` x the requests then in flight (at most
  once per `cooldown_s`, so one burst of timeouts is one cut), once more than `late_burst` of
  them came within `window_s`: a stall of the
  whole host (the router or Triton descheduled, a GC pause) makes the few requests then in
  flight late at once and is over when they are, and cutting on it shed the backlog it left,
  requests that were still on time (bench, 8 robots at 400/s: stalls of 5-7 late requests, 10
  of 4,800 requests shed after them);
- every request a model answered in time raises it by 1/limit (about one per round trip).

A request beyond the limit is shed at once (503 / RESOURCE_EXHAUSTED with a retry hint), before
it queues. Hold stays what it is for: routes that are down, or slow at any load. With
`min_limit` or fewer in flight nothing is cut, so a slow route at light load still falls back
and holds.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

# Fallback reasons (forwarding.py) that say the answer came too late, not that a route failed.
OVERLOAD_REASONS = frozenset({"timeout", "no_budget"})


def ran_out_of_time(path: Sequence[str]) -> bool:
    """Whether any attempt of a forward (its `route:outcome` path) timed out or had no budget."""
    return any(step.rpartition(":")[2] in OVERLOAD_REASONS for step in path)


def _ignore(limit: float) -> None:
    return None


@dataclass
class AdaptiveLimit:
    """`enabled=False` admits everything and never adapts (ROUTER_ADAPTIVE_LIMIT=false);
    `report` receives the limit after each observation (the gauge)."""

    max_limit: int
    enabled: bool = True
    report: Callable[[float], None] = _ignore
    min_limit: int = 4
    backoff: float = 0.9
    cooldown_s: float = 0.05
    late_burst: int = 16
    window_s: float = 0.5
    limit: float = field(init=False)
    cuts: int = field(default=0, init=False)
    _last_cut: float = field(default=-math.inf, init=False)
    _lates: deque[float] = field(init=False)  # when the latest late_burst + 1 late ones came

    def __post_init__(self) -> None:
        self.limit = float(self.max_limit)
        self._lates = deque(maxlen=self.late_burst + 1)

    def admits(self, inflight: int) -> bool:
        return not self.enabled or inflight < max(self.min_limit, int(self.limit))

    def observe(self, late: bool, inflight: int, answered: bool,
                now: float | None = None) -> None:
        """One forwarded request: `late` if it was not answered in time, `answered` if a model
        (not hold) answered it; `inflight` counts the requests in flight, this one included."""
        if not self.enabled:
            return
        if late:
            now = time.monotonic() if now is None else now
            self._lates.append(now)
            if len(self._lates) > self.late_burst and now - self._lates[0] <= self.window_s:
                self._cut(inflight, now)
        elif answered and self.limit < self.max_limit:
            self.limit = min(float(self.max_limit), self.limit + 1.0 / self.limit)
        self.report(int(self.limit))

    def _cut(self, inflight: int, now: float) -> None:
        if inflight <= self.min_limit or now - self._last_cut < self.cooldown_s:
            return
        self._last_cut = now
        self.cuts += 1
        self.limit = max(float(self.min_limit), min(self.limit, inflight) * self.backoff)
