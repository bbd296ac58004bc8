"""What an authenticated key may do, decided in one place for every transport: ask at most at
its rate, only for the robots it covers, and give feedback only on decisions made for them.

`ActEngine.serve` (act over HTTP, WebSocket and gRPC) and feedback call `KeyAccess.authorize`
before any work. Its cost is a dict lookup, a few float operations and a set lookup.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from router_service.errors import Forbidden, RateLimited
from router_service.keys import RobotKey
from router_service.metrics import RouterMetrics
from router_service.rate_limit import Clock, RateLimiter


class KeyAccess:
    def __init__(self, keys: Iterable[RobotKey], metrics: RouterMetrics,
                 clock: Clock | None = None) -> None:
        self.limiter = RateLimiter(keys) if clock is None else RateLimiter(keys, clock)
        self._metrics = metrics

    def authorize(self, key: RobotKey, robot_id: str) -> None:
        """Over its rate: 429 with a retry hint (checked first: a key that floods the router
        is slowed down whatever it asks for). A robot it does not cover: 403 naming robot_id."""
        wait_s = self.limiter.wait_s(key)
        if wait_s:
            self._metrics.rate_limited.labels(key_id=key.key_id).inc()
            retry_ms = float(math.ceil(wait_s * 1000))
            raise RateLimited(f"key {key.key_id} is over its rate ({key.rate_per_s:g}/s, burst "
                              f"{key.burst:g}); retry in {retry_ms:.0f} ms",
                              retry_after_ms=retry_ms, key_id=key.key_id)
        if not key.covers(robot_id):
            raise Forbidden(f"key {key.key_id} does not cover robot_id {robot_id!r}",
                            field="robot_id")

    @staticmethod
    def check_decision(key: RobotKey, robot_id: str, key_id: str | None) -> None:
        """Feedback on a decision: it was asked for by this key, or for a robot this key
        covers (two keys may cover one robot while a key is rotated); else 403 naming
        decision_id. The message names neither the other robot nor the other key."""
        if key_id == key.key_id or key.covers(robot_id):
            return
        raise Forbidden(f"decision_id names a decision for a robot key {key.key_id} does not "
                        "cover", field="decision_id")
