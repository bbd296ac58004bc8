"""Forward one observation along a fallback chain inside one deadline.

The chain comes from the contract (e.g. specialist → generalist → hold). Each attempt gets the
remaining budget minus what the next route is predicted to need, so a slow specialist still
leaves the generalist time to answer; hold needs no time and always answers. With hedging on, a
specialist that has not answered by the hedge delay races the generalist; the first valid
answer wins and the loser is cancelled.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from router_service.contract import HOLD_ROUTE
from router_service.errors import UpstreamError, UpstreamTimeout
from router_service.metrics import RouterMetrics
from router_service.route_health import RouteHealth

# Below this an attempt is pointless: a reservation for the next route is skipped instead.
MIN_ATTEMPT_MS = 1.0
# The next route's reservation: its predicted (p90) latency with headroom, since a fallback that
# arrives just late is as useless as none.
RESERVE_FACTOR, RESERVE_EXTRA_MS = 1.2, 0.5

Infer = Callable[[str, float], Awaitable[NDArray[np.float32]]]  # (route, timeout_s) -> action


@dataclass
class ForwardResult:
    route: str
    action: NDArray[np.float32] | None  # None: hold (the caller fills in the hold action)
    upstream_ms: float
    fallback: str | None = None
    path: list[str] = field(default_factory=list)  # "route:outcome" per attempt
    hedged: bool = False


@dataclass
class Forwarder:
    health: dict[str, RouteHealth]
    metrics: RouterMetrics
    hedge_delay_ms: float | None  # None: hedging off

    async def forward(self, chain: list[str], deadline: float, infer: Infer,
                      reply_margin_ms: float = 1.0) -> ForwardResult:
        """`reply_margin_ms` is kept back from the deadline for writing the reply."""
        deadline -= reply_margin_ms / 1000
        result = ForwardResult(route=HOLD_ROUTE, action=None, upstream_ms=0.0)
        i = 0
        while i < len(chain):
            route = chain[i]
            if route == HOLD_ROUTE:
                break
            nxt = chain[i + 1] if i + 1 < len(chain) else HOLD_ROUTE
            reason = self._skip_reason(route, deadline)
            if reason is not None:
                self._note_failure(result, route, nxt, reason)
                i += 1
                continue
            hedge_with = nxt if self._should_hedge(route, nxt) else None
            timeout_s = self._attempt_timeout_s(route, nxt, deadline, reserve=hedge_with is None)
            try:
                if hedge_with is not None:
                    winner, action = await self._hedged(route, hedge_with, deadline, infer, result)
                else:
                    winner, action = route, await self._call(route, timeout_s, infer, result)
            except UpstreamError as exc:
                self._note_failure(result, route, nxt, exc.reason)
                i += 2 if hedge_with is not None else 1  # a lost hedge already tried `nxt`
                continue
            result.route, result.action = winner, action
            result.path.append(f"{winner}:ok")
            if winner != route:
                self._note_failure(result, route, winner, "hedge")
            return result
        result.route, result.action = HOLD_ROUTE, None
        result.path.append(f"{HOLD_ROUTE}:ok")
        return result

    def _skip_reason(self, route: str, deadline: float) -> str | None:
        health = self.health[route]
        if not health.model_ready:
            return "unhealthy"
        if (deadline - time.monotonic()) * 1000 < MIN_ATTEMPT_MS:
            return "no_budget"
        if not health.breaker.acquire():
            return "circuit_open"
        return None

    def _should_hedge(self, route: str, nxt: str) -> bool:
        return (
            self.hedge_delay_ms is not None
            and nxt != HOLD_ROUTE
            and self.health[nxt].usable()
        )

    def _attempt_timeout_s(self, route: str, nxt: str, deadline: float, reserve: bool) -> float:
        remaining_ms = (deadline - time.monotonic()) * 1000
        if reserve and nxt != HOLD_ROUTE:
            reserved = (self.health[nxt].latency.predicted_ms() * RESERVE_FACTOR
                        + RESERVE_EXTRA_MS)
            if remaining_ms - reserved >= MIN_ATTEMPT_MS:
                remaining_ms -= reserved
        return max(remaining_ms, 0.0) / 1000

    async def _call(self, route: str, timeout_s: float, infer: Infer, res: ForwardResult
                    ) -> NDArray[np.float32]:
        health = self.health[route]
        start = time.perf_counter()
        try:
            action = await infer(route, timeout_s)
        except UpstreamError:
            health.breaker.record_failure()
            self.metrics.circuit_open.labels(route=route).set(int(health.breaker.is_open))
            raise
        except asyncio.CancelledError:
            health.breaker.release()  # a hedge loser says nothing about the route's health
            raise
        finally:
            elapsed = time.perf_counter() - start
            res.upstream_ms += elapsed * 1000
            self.metrics.upstream_duration.labels(route=route).observe(elapsed)
        health.latency.observe(elapsed * 1000)
        health.breaker.record_success()
        self.metrics.circuit_open.labels(route=route).set(0)
        return action

    async def _hedged(
        self, primary: str, backup: str, deadline: float, infer: Infer, res: ForwardResult
    ) -> tuple[str, NDArray[np.float32]]:
        def budget_s() -> float:
            return max(deadline - time.monotonic(), 0.0)

        assert self.hedge_delay_ms is not None
        first = asyncio.ensure_future(self._call(primary, budget_s(), infer, res))
        done, _ = await asyncio.wait({first}, timeout=min(self.hedge_delay_ms / 1000, budget_s()))
        if first in done and first.exception() is None:
            return primary, first.result()
        if first not in done:
            res.hedged = True
            self.metrics.hedges.labels(route=primary).inc()
        racers = {asyncio.ensure_future(self._call(backup, budget_s(), infer, res)): backup}
        if first not in done:
            racers[first] = primary
        pending = set(racers)
        try:
            while pending:
                finished, pending = await asyncio.wait(
                    pending, return_when=asyncio.FIRST_COMPLETED
                )
                for task in finished:
                    if task.exception() is None:
                        return racers[task], task.result()
        finally:
            for task in pending:
                task.cancel()
        raise UpstreamTimeout(f"{primary} and its hedge {backup} both failed")

    def _note_failure(self, res: ForwardResult, route: str, to_route: str, reason: str) -> None:
        res.path.append(f"{route}:{reason}")
        if res.fallback is None:
            res.fallback = reason
        self.metrics.fallbacks.labels(from_route=route, to_route=to_route, reason=reason).inc()
