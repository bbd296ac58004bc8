"""The fallback chain and hedging, driven by an upstream whose behaviour the test scripts.

The real-Triton versions of these cases are in test_router_e2e.py; these pin down the timing
logic exactly (which attempt gets how much budget, what is cancelled)."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from numpy.typing import NDArray

from router_service.contract import HOLD_ROUTE, Batching, Hedging
from router_service.errors import UpstreamRejected, UpstreamTimeout
from router_service.forwarding import Forwarder, ForwardResult, Query
from router_service.metrics import RouterMetrics
from router_service.route_health import CircuitBreaker, LatencyEstimator, RouteHealth

SPEC, GEN = "specialist_a", "generalist"
QUERY = Query(np.zeros(39, dtype=np.float32), np.ones(3, dtype=np.float32) / 3)


class Harness:
    """A real `Forwarder` whose upstream call is whichever scripted upstream a test passes."""

    def __init__(self, hedge_ms: float | None, threshold: int, prior_ms: float) -> None:
        health = {r: RouteHealth(LatencyEstimator(prior_ms=prior_ms),
                                 CircuitBreaker(threshold, 10.0)) for r in (SPEC, GEN)}
        self.up: ScriptedUpstream | None = None
        hedging = Hedging(enabled=hedge_ms is not None, delay_ms=hedge_ms or 8.0)
        self.fwd = Forwarder(health, RouterMetrics(), self._call, GEN, Batching(), hedging)

    async def _call(self, route: str, obs: NDArray[np.float32],
                    cond: NDArray[np.float32] | None, timeout_s: float) -> NDArray[np.float32]:
        assert self.up is not None
        assert (cond is not None) == (route == GEN)  # only the generalist is conditioned
        return await self.up(route, obs, cond, timeout_s)

    async def forward(self, chain: list[str], deadline: float, up: ScriptedUpstream
                      ) -> ForwardResult:
        self.up = up
        return await self.fwd.forward(chain, deadline, QUERY)


def make_forwarder(hedge_ms: float | None = None, threshold: int = 3,
                   prior_ms: float = 2.0) -> Harness:
    return Harness(hedge_ms, threshold, prior_ms)


class ScriptedUpstream:
    """route -> seconds to answer (None = fail at once)."""

    def __init__(self, delays: dict[str, float | None]) -> None:
        self.delays = delays
        self.calls: list[tuple[str, float]] = []
        self.cancelled: list[str] = []

    async def __call__(self, route: str, obs: NDArray[np.float32],
                       cond: NDArray[np.float32] | None, timeout_s: float
                       ) -> NDArray[np.float32]:
        self.calls.append((route, timeout_s))
        delay = self.delays[route]
        if delay is None:
            raise UpstreamRejected(f"{route} failed")
        try:
            await asyncio.sleep(min(delay, timeout_s))
        except asyncio.CancelledError:
            self.cancelled.append(route)
            raise
        if delay > timeout_s:
            raise UpstreamTimeout(f"{route} timed out")
        return np.full((obs.shape[0], 4), 1.0 if route == SPEC else 2.0, dtype=np.float32)


def deadline_in(ms: float) -> float:
    return time.monotonic() + ms / 1000


async def test_fast_specialist_answers() -> None:
    up = ScriptedUpstream({SPEC: 0.001, GEN: 0.001})
    res = await make_forwarder().forward([SPEC, GEN, HOLD_ROUTE], deadline_in(50), up)
    assert res.route == SPEC and res.fallback is None and res.path == [f"{SPEC}:ok"]


async def test_slow_specialist_leaves_budget_for_generalist() -> None:
    up = ScriptedUpstream({SPEC: 1.0, GEN: 0.002})
    start = time.monotonic()
    fwd = make_forwarder(prior_ms=10.0)
    res = await fwd.forward([SPEC, GEN, HOLD_ROUTE], deadline_in(60), up)
    elapsed_ms = (time.monotonic() - start) * 1000
    assert res.route == GEN and res.fallback == "timeout"
    # The specialist's attempt was cut short by the generalist's reservation: 10 ms predicted,
    # with headroom 10 * 1.2 + 0.5 = 12.5 ms, and 1 ms kept for the reply.
    assert up.calls[0][1] * 1000 <= 60 - 12.5 - 1
    # Not a timing test (shared machine): only that the 1 s specialist was not waited for.
    assert elapsed_ms < 200


async def test_everything_failing_ends_in_hold() -> None:
    up = ScriptedUpstream({SPEC: None, GEN: None})
    res = await make_forwarder().forward([SPEC, GEN, HOLD_ROUTE], deadline_in(30), up)
    assert res.route == HOLD_ROUTE and res.action is None
    assert res.path == [f"{SPEC}:rejected", f"{GEN}:rejected", f"{HOLD_ROUTE}:ok"]


async def test_breaker_opens_and_skips_route() -> None:
    fwd = make_forwarder(threshold=2)
    up = ScriptedUpstream({SPEC: None, GEN: 0.001})
    for _ in range(2):
        await fwd.forward([SPEC, GEN, HOLD_ROUTE], deadline_in(30), up)
    res = await fwd.forward([SPEC, GEN, HOLD_ROUTE], deadline_in(30), up)
    assert res.route == GEN and res.fallback == "circuit_open"
    assert [c[0] for c in up.calls].count(SPEC) == 2


async def test_no_budget_goes_straight_to_hold() -> None:
    up = ScriptedUpstream({SPEC: 0.001, GEN: 0.001})
    res = await make_forwarder().forward([SPEC, GEN, HOLD_ROUTE], deadline_in(0.5), up)
    assert res.route == HOLD_ROUTE and res.fallback == "no_budget" and up.calls == []


async def test_hedge_races_generalist_and_cancels_loser() -> None:
    up = ScriptedUpstream({SPEC: 0.2, GEN: 0.002})
    fwd = make_forwarder(hedge_ms=5.0)
    start = time.monotonic()
    res = await fwd.forward([SPEC, GEN, HOLD_ROUTE], deadline_in(100), up)
    await asyncio.sleep(0.01)  # let the cancellation land (row, then its abandoned call)
    assert res.route == GEN and res.hedged and res.fallback == "hedge"
    assert SPEC in up.cancelled
    assert (time.monotonic() - start) * 1000 < 150  # the 200 ms specialist was not awaited


async def test_hedge_not_sent_when_primary_is_quick() -> None:
    up = ScriptedUpstream({SPEC: 0.001, GEN: 0.001})
    res = await make_forwarder(hedge_ms=20.0).forward([SPEC, GEN, HOLD_ROUTE],
                                                       deadline_in(100), up)
    assert res.route == SPEC and not res.hedged and [c[0] for c in up.calls] == [SPEC]


@pytest.mark.parametrize("primary_delay", [0.2, None])
async def test_hedge_both_fail_then_hold(primary_delay: float | None) -> None:
    up = ScriptedUpstream({SPEC: primary_delay, GEN: None})
    res = await make_forwarder(hedge_ms=2.0).forward([SPEC, GEN, HOLD_ROUTE],
                                                      deadline_in(30), up)
    assert res.route == HOLD_ROUTE
