"""Forward one observation along a fallback chain inside one deadline.

The forwarder owns the upstream call: each route has a `RouteBatcher` in front of Triton, so
rows of several robots for the same route share one Triton request. The chain comes from the
contract (e.g. specialist → generalist → hold). Each attempt has a share of the remaining
budget: what the next route is predicted to need is kept back, so a slow specialist still
leaves the generalist time to answer. Past its share an attempt is not abandoned: the next
route races it and the first valid answer wins (when the whole host stalls, the specialist's
call is usually the first to come back). Hold needs no time and always answers. With hedging
on, a specialist that has not answered by the hedge delay is raced the same way, earlier.
Hedges spend a budget shared with fallbacks, and adaptive ones go only to routes that straggle
(router_service/hedging.py).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from router_service.batching import (
    STRAGGLER_FACTOR,
    BatchCall,
    BatchObserver,
    RouteBatcher,
    RowResult,
)
from router_service.contract import HOLD_ROUTE, Batching, Hedging
from router_service.errors import UpstreamError, UpstreamTimeout
from router_service.hedging import ExtraCallBudget, StragglerShare
from router_service.metrics import RouterMetrics
from router_service.route_health import RouteHealth

# Below this an attempt is pointless: a reservation for the next route is skipped instead.
MIN_ATTEMPT_MS = 1.0
# The next route's reservation: its predicted (p90) latency with headroom, since a fallback that
# arrives just late is as useless as none.
RESERVE_FACTOR, RESERVE_EXTRA_MS = 1.2, 0.5
# An attempt before a fallback gets what the fallback's reservation leaves, but at most the
# larger of 3x its own p90 (or p90 + 10 ms: a busy host's jitter is absolute) and its p90 plus
# half the slack past both predictions. With the reservation alone, an 80 ms budget left the
# generalist 12.5 ms behind a 300 ms specialist, too late on a loaded host (CI: hold). A 20 ms
# budget (p90s 3-5 ms) stays as it was, to within 1 ms; an ample one keeps a slow primary.
ATTEMPT_CAP_FACTOR, ATTEMPT_CAP_EXTRA_MS, FALLBACK_SLACK_SHARE = 3.0, 10.0, 0.5
# An adaptive hedge fires once the primary is a straggler by the batcher's own rule
# (STRAGGLER_FACTOR x the route's predicted p90), or past the route's p95 if that is later, and
# at least HEDGE_MIN_MS. At the p95 alone, 302 of 320 hedges in the straggler A/B fired on calls
# that then answered first, and the budget was gone when the stragglers came.
HEDGE_MIN_MS = 1.0
# A timeout counts against a route's circuit only if the attempt had this many times the
# route's predicted latency: a request that arrived with little budget left says nothing about
# the route's health, and counting it would open every circuit whenever robots run late.
BREAKER_TIMEOUT_FACTOR = 2.0


@dataclass(frozen=True, slots=True)
class Query:
    """One robot's row: its observation, and the task vector a generalist is conditioned on."""

    state: NDArray[np.float32]
    task_vector: NDArray[np.float32]


@dataclass
class ForwardResult:
    route: str
    action: NDArray[np.float32] | None  # None: hold (the caller fills in the hold action)
    upstream_ms: float = 0.0
    fallback: str | None = None
    path: list[str] = field(default_factory=list)  # "route:outcome" per attempt
    hedged: bool = False
    batch_size: int = 0
    calls: int = 0  # upstream calls made (a fallback's or a hedge's included)


@dataclass(eq=False)  # identity: `racer in racing.values()` asks for this very attempt
class _Racer:
    """One attempt of a forward: its route, the route after it, its share of the budget (past
    it the next route is started beside it; the call itself runs on to the deadline) and, once
    it is over without an answer, how long it had for the circuit breaker's verdict."""

    route: str
    nxt: str
    start: float
    share_s: float
    budget_s: float
    past_share: bool = False
    # For the verdict: how long it had when it ran out of time; None: no verdict (it lost a
    # race), unless `failed` (an error, which always counts).
    verdict_s: float | None = None
    failed: bool = False


def _left_s(deadline: float) -> float:
    return max(deadline - time.monotonic(), 0.0)


class Forwarder:
    def __init__(self, health: dict[str, RouteHealth], metrics: RouterMetrics, call: BatchCall,
                 generalist: str, batching: Batching, hedging: Hedging) -> None:
        self.health = health
        self.metrics = metrics
        self.generalist = generalist
        self.hedging = hedging
        max_batch = batching.max_batch if batching.enabled else 1
        self.batchers = {
            route: RouteBatcher(route, call, max_batch, batching.max_wait_ms / 1000,
                                BatchObserver(metrics.batch_size.labels(route=route).observe,
                                              metrics.batch_wait.labels(route=route).observe),
                                health[route].latency.predicted_ms)
            for route in health
        }
        # Label children resolved once: `.labels()` is a dict lookup under a lock per call.
        self._upstream_hist = {r: metrics.upstream_duration.labels(route=r) for r in health}
        self._circuit = {r: metrics.circuit_open.labels(route=r) for r in health}
        self._hedge_budget = ExtraCallBudget(hedging.max_extra_share, hedging.max_extra_burst)
        self._stragglers = {r: StragglerShare() for r in health}
        self._no_budget = {r: metrics.hedges_over_budget.labels(route=r) for r in health}

    async def forward(self, chain: list[str], deadline: float, query: Query,
                      reply_margin_ms: float = 1.0) -> ForwardResult:
        """`reply_margin_ms` is kept back from the deadline for writing the reply."""
        deadline -= reply_margin_ms / 1000
        res = ForwardResult(route=HOLD_ROUTE, action=None)
        self._hedge_budget.earn()
        routes = chain[:chain.index(HOLD_ROUTE)] if HOLD_ROUTE in chain else chain
        racing: dict[asyncio.Future[RowResult], _Racer] = {}
        try:
            for i, route in enumerate(routes):
                nxt = routes[i + 1] if i + 1 < len(routes) else HOLD_ROUTE
                reason = self._skip_reason(route, deadline)
                if reason is not None:
                    self._note_failure(res, route, nxt, reason)
                    continue
                if res.calls:
                    self._hedge_budget.spend()  # a fallback or a hedge is an extra call
                res.calls += 1
                racer = _Racer(route, nxt, time.monotonic(),
                               self._attempt_timeout_s(route, nxt, deadline), _left_s(deadline))
                racing[self._start(racer, query)] = racer
                if nxt == HOLD_ROUTE or not self.health[nxt].usable():
                    continue  # nothing to race it with: it has the whole budget
                won = await self._race_until_share(racing, racer, res)
                if won is not None:
                    return self._answered(res, routes, racing, *won)
            won = await self._first(racing, _left_s(deadline), res)
            if won is not None:
                return self._answered(res, routes, racing, *won)
            for racer in racing.values():  # out of time: hold
                if not racer.past_share:
                    racer.verdict_s = racer.budget_s
                    self._note_failure(res, racer.route, racer.nxt, "timeout")
        finally:
            for fut, racer in racing.items():
                self._ended(racer, res, None)
                fut.cancel()
        res.route, res.action = HOLD_ROUTE, None
        res.path.append(f"{HOLD_ROUTE}:ok")
        return res

    def _start(self, racer: _Racer, query: Query) -> asyncio.Future[RowResult]:
        """The attempt's row, in its route's batch. Every call may run to the deadline: the
        share only says when the next route starts racing it (a call slowed by a stall of the
        whole host still counts), and bounds the row's wait in its batch: its slack is the
        share less the route's predicted latency. No task per attempt: the race waits on the
        row's own future."""
        route = racer.route
        slack_s = racer.share_s - self.health[route].latency.predicted_ms() / 1000
        conditioning = query.task_vector if route == self.generalist else None
        return self.batchers[route].submit(query.state, conditioning, racer.budget_s, slack_s)

    def _ended(self, racer: _Racer, res: ForwardResult, row: RowResult | None) -> None:
        """Book an attempt that is over: its time upstream, and what it says of its route."""
        route, health = racer.route, self.health[racer.route]
        elapsed = time.monotonic() - racer.start
        res.upstream_ms += elapsed * 1000
        self._upstream_hist[route].observe(elapsed)
        if row is None:
            if racer.failed or racer.verdict_s is not None:
                self._verdict(route, None if racer.failed else racer.verdict_s, elapsed)
            else:
                health.breaker.release()  # lost a race: nothing said about the route's health
            return
        self._observe_straggler(route, elapsed * 1000)
        health.latency.observe(row.call_ms)
        health.breaker.record_success()
        self._circuit[route].set(0)

    async def _race_until_share(self, racing: dict[asyncio.Future[RowResult], _Racer],
                                racer: _Racer, res: ForwardResult) -> tuple[str, RowResult] | None:
        """Wait for an answer until `racer`'s share of the budget is spent (or, hedging, until
        its hedge delay if the budget has a call to spare); past it, the next route races."""
        route = racer.route
        if self._should_hedge(route, racer.nxt):
            won = await self._first(racing, min(self.hedge_delay_ms(route) / 1000,
                                                racer.share_s), res)
            if won is not None or racer not in racing.values():
                return won
            if self._hedge_budget.can_hedge():
                res.hedged = True
                self.metrics.hedges.labels(route=route).inc()
                return None
            self._no_budget[route].inc()
        won = await self._first(racing, racer.start + racer.share_s - time.monotonic(), res)
        if won is None and racer in racing.values():
            racer.past_share = True  # still out: a fallback, though the call keeps running
            racer.verdict_s = racer.share_s
            self._note_failure(res, route, racer.nxt, "timeout")
        return won

    async def _first(self, racing: dict[asyncio.Future[RowResult], _Racer], wait_s: float,
                     res: ForwardResult) -> tuple[str, RowResult] | None:
        """The first answer of any racing call within `wait_s`; failures leave the race."""
        end = time.monotonic() + wait_s
        while racing:
            done, _ = await asyncio.wait(racing, timeout=max(end - time.monotonic(), 0.0),
                                         return_when=asyncio.FIRST_COMPLETED)
            if not done:
                return None
            for fut in done:
                racer = racing.pop(fut)
                exc = fut.exception()
                if exc is None:
                    self._ended(racer, res, fut.result())
                    return racer.route, fut.result()
                if not isinstance(exc, UpstreamError):
                    raise exc  # a bug, not a route's failure
                if isinstance(exc, UpstreamTimeout):  # the upstream client's own timeout
                    racer.verdict_s = racer.budget_s
                else:
                    racer.failed = True
                self._ended(racer, res, None)
                if not racer.past_share:  # past it, its fallback is already counted
                    self._note_failure(res, racer.route, racer.nxt, exc.reason)
        return None

    def _answered(self, res: ForwardResult, routes: list[str],
                  racing: dict[asyncio.Future[RowResult], _Racer], route: str, row: RowResult
                  ) -> ForwardResult:
        primary = routes[0]
        if route == primary:
            res.fallback = None  # the chosen route answered, though it outlasted its share
        elif res.hedged and res.fallback is None:
            self._note_failure(res, primary, route, "hedge")
        if route != primary and any(r.route == primary for r in racing.values()):
            self._stragglers[primary].observe(True)  # out longer than the winner's whole call
        res.route, res.action, res.batch_size = route, row.action, row.batch_size
        res.path.append(f"{route}:ok")
        return res

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
        """Whether to race `nxt` if `route` is late (the budget is asked when it is)."""
        if not (self.hedging.enabled and nxt != HOLD_ROUTE and self.health[nxt].usable()):
            return False
        return not self.hedging.adaptive or self._stragglers[route].straggles()

    def hedge_delay_ms(self, route: str) -> float:
        if not self.hedging.adaptive:
            return self.hedging.delay_ms
        latency = self.health[route].latency
        return max(HEDGE_MIN_MS, latency.tail_ms(), STRAGGLER_FACTOR * latency.predicted_ms())

    def _attempt_timeout_s(self, route: str, nxt: str, deadline: float) -> float:
        """`route`'s share of the remaining budget: all of it before hold, else what `nxt`'s
        reservation leaves, up to the cap (ATTEMPT_CAP_FACTOR, FALLBACK_SLACK_SHARE)."""
        remaining_ms = (deadline - time.monotonic()) * 1000
        if nxt != HOLD_ROUTE:
            reserved = (self.health[nxt].latency.predicted_ms() * RESERVE_FACTOR
                        + RESERVE_EXTRA_MS)
            if remaining_ms - reserved >= MIN_ATTEMPT_MS:
                own_ms = self.health[route].latency.predicted_ms()
                slack_ms = remaining_ms - own_ms - reserved
                cap_ms = max(ATTEMPT_CAP_FACTOR * own_ms, own_ms + ATTEMPT_CAP_EXTRA_MS,
                             own_ms + slack_ms * (1 - FALLBACK_SLACK_SHARE))
                remaining_ms = min(remaining_ms - reserved, cap_ms)
        return max(remaining_ms, 0.0) / 1000

    def _observe_straggler(self, route: str, elapsed_ms: float) -> None:
        latency = self.health[route].latency
        if latency.measured():  # against a prior, a route's first calls would all look late
            self._stragglers[route].observe(elapsed_ms > STRAGGLER_FACTOR * latency.predicted_ms())

    def _verdict(self, route: str, timed_out_after_s: float | None, elapsed_s: float) -> None:
        """A failed attempt: an error always counts against the route; a timeout only when the
        route had ample time (BREAKER_TIMEOUT_FACTOR x its predicted latency)."""
        self._observe_straggler(route, elapsed_s * 1000)
        health = self.health[route]
        ample = BREAKER_TIMEOUT_FACTOR * health.latency.predicted_ms() / 1000
        if timed_out_after_s is not None and timed_out_after_s < ample:
            health.breaker.release()  # no verdict, and a probe slot it held is free again
            return
        health.breaker.record_failure()
        self._circuit[route].set(int(health.breaker.is_open))

    def _note_failure(self, res: ForwardResult, route: str, to_route: str, reason: str) -> None:
        res.path.append(f"{route}:{reason}")
        if res.fallback is None:
            res.fallback = reason
        self.metrics.fallbacks.labels(from_route=route, to_route=to_route, reason=reason).inc()

    async def warm_up(self, route: str, state_dim: int, tasks: int) -> None:
        """Calls at every batch size the batcher may send (powers of two), before the route
        takes traffic: a cold python-backend model, and each new batch shape, answers its first
        request tens of ms late, which would be some robot's missed deadline."""
        batcher = self.batchers[route]
        size = 1
        while size <= batcher.max_batch:
            state = np.zeros((size, state_dim), dtype=np.float32)
            conditioning = (np.full((size, tasks), 1 / tasks, dtype=np.float32)
                            if route == self.generalist else None)
            await batcher.call(route, state, conditioning, 10.0)
            size *= 2

    async def close(self) -> None:
        for batcher in self.batchers.values():
            await batcher.close()
