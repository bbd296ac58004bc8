"""What hedging may spend, and where it pays.

A hedge is an extra upstream call. Two pieces keep it worth its cost:

- `ExtraCallBudget`, a token bucket: every forwarded request earns `share` of a call, every
  extra call (a fallback attempt or a hedge) spends one; a hedge is only sent while a whole
  call is saved up. Fallbacks are never refused (they are how a request still gets an answer)
  but they spend too, so hedges get what is left of the share: extra calls stay within
  `share` of requests over any long run, plus a burst.
- `StragglerShare`, per route: the share of its recent calls that straggled (took longer than
  `STRAGGLER_FACTOR` x the route's predicted latency, or lost a hedge race). An adaptive hedge
  is sent only on a route that straggles: on a route whose tail is just load, a hedge at its
  p90 would spend a tenth of its calls for nothing, since a second call on the same busy
  CPUs is as late as the first. Spending the budget where the stragglers are is what lets a
  small budget fire early enough to matter.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

# A route hedges (adaptive) once at least this share of its recent calls straggled.
MIN_STRAGGLER_SHARE = 0.01
MIN_CALLS = 100  # fewer: one late call (a scheduler hiccup) would read as a straggling route
STRAGGLER_WINDOW = 512  # calls


@dataclass
class ExtraCallBudget:
    share: float  # extra calls allowed per request
    burst: float = 50.0  # most calls that can be saved up (and most debt fallbacks can run up)
    _tokens: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        self._tokens = min(self.burst, 1.0) if self.share > 0 else 0.0

    def earn(self) -> None:
        """One request forwarded."""
        self._tokens = min(self.burst, self._tokens + self.share)

    def can_hedge(self) -> bool:
        return self._tokens >= 1.0

    def spend(self) -> None:
        """One extra call made (a hedge, or a fallback attempt)."""
        self._tokens = max(-self.burst, self._tokens - 1.0)


@dataclass
class StragglerShare:
    window: int = STRAGGLER_WINDOW
    _calls: deque[bool] = field(default_factory=deque, init=False)
    _straggled: int = field(default=0, init=False)

    def observe(self, straggled: bool) -> None:
        self._calls.append(straggled)
        self._straggled += straggled
        if len(self._calls) > self.window:
            self._straggled -= self._calls.popleft()

    def share(self) -> float:
        return self._straggled / len(self._calls) if self._calls else 0.0

    def straggles(self) -> bool:
        return len(self._calls) >= MIN_CALLS and self.share() >= MIN_STRAGGLER_SHARE
