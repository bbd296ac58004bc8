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

    def __init__(self, hedge_ms: float | None, threshold: int, prior_ms: float,
                 hedging: Hedging | None = None) -> None:
        health = {r: RouteHealth(LatencyEstimator(prior_ms=prior_ms),
                                 CircuitBreaker(threshold, 10.0)) for r in (SPEC, GEN)}
        self.up: ScriptedUpstream | None = None
        hedging = hedging or Hedging(enabled=hedge_ms is not None, delay_ms=hedge_ms or 8.0)
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
                   prior_ms: float = 2.0, hedging: Hedging | None = None) -> Harness:
    return Harness(hedge_ms, threshold, prior_ms, hedging)


class ScriptedUpstream:
    """route -> seconds to answer (None = fail at once)."""

    def __init__(self, delays: dict[str, float | None]) -> None:
        self.delays = delays
        self.calls: list[tuple[str, float]] = []
        self.started: list[float] = []  # monotonic, call by call
        self.cancelled: list[str] = []
        self.spec_delays: list[float] = []  # if set: the specialist's delay, call by call

    async def __call__(self, route: str, obs: NDArray[np.float32],
                       cond: NDArray[np.float32] | None, timeout_s: float
                       ) -> NDArray[np.float32]:
        self.calls.append((route, timeout_s))
        self.started.append(time.monotonic())
        delay = self.delays[route]
        if route == SPEC and self.spec_delays:
            delay = self.spec_delays.pop(0)
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
    # The specialist's share was 3x its predicted latency (10 ms; 10 ms plus half the slack,
    # (59 - 10 - 12.5) / 2, is less), short of what the generalist's reservation (10 * 1.2 +
    # 0.5 = 12.5 ms) and the reply's 1 ms leave: the generalist started then, with the rest,
    # ~29 ms, far more than its p90, on a host that may be slow.
    share_ms = (up.started[1] - up.started[0]) * 1000
    assert share_ms >= 30.0 - 2 and up.calls[1][1] * 1000 >= 59 - share_ms - 5
    # Not a timing test (shared machine): only that the 1 s specialist was not waited for.
    assert elapsed_ms < 200
    await asyncio.sleep(0.01)  # let the cancellation land (row, then its abandoned call)
    assert up.cancelled == [SPEC]  # the loser is cancelled once the generalist answers


async def test_a_primary_past_its_share_still_wins_if_it_answers_first() -> None:
    """A stall of the whole host makes the specialist late; the generalist then races it, and
    the specialist's answer, coming back first, is the one used (not thrown away at its share,
    with the generalist, as slow, ending in hold). Share: 14 ms (4 ms p90 + 10); the specialist
    answers at 18 ms, the generalist started at 14 ms would at 24 ms."""
    up = ScriptedUpstream({SPEC: 0.018, GEN: 0.010})
    res = await make_forwarder(prior_ms=4.0).forward([SPEC, GEN, HOLD_ROUTE], deadline_in(30),
                                                     up)
    assert res.route == SPEC and res.fallback is None
    assert res.path == [f"{SPEC}:timeout", f"{SPEC}:ok"] and res.calls == 2
    await asyncio.sleep(0.01)
    assert [c[0] for c in up.calls] == [SPEC, GEN] and up.cancelled == [GEN]


async def test_a_tight_budget_leaves_the_primary_all_but_the_reservation() -> None:
    """20 ms and 4 ms predictions: the cap (3 x 4 = 12, or 4 + 10 = 14 ms) is above what the
    reservation leaves (20 - 1 - 5.3 = 13.7 ms), so the primary gets that: a tight budget does
    not fall back any sooner than its reservation makes it. Its call runs on to the deadline."""
    up = ScriptedUpstream({SPEC: 1.0, GEN: 0.001})
    fwd = make_forwarder(prior_ms=4.0)
    res = await fwd.forward([SPEC, GEN, HOLD_ROUTE], deadline_in(20), up)
    assert res.route == GEN
    assert (up.started[1] - up.started[0]) * 1000 >= 13.7 - 2
    assert 19 - 2 <= up.calls[0][1] * 1000 <= 19


async def test_an_ample_budget_splits_its_slack_with_the_fallback() -> None:
    """200 ms and 10 ms predictions: the primary may take its p90 and half the slack, 10 + (199
    - 10 - 12.5) / 2 = 98.25 ms, before the generalist races it; a slow but working one (80 ms)
    answers alone."""
    up = ScriptedUpstream({SPEC: 0.08, GEN: 0.001})
    fwd = make_forwarder(prior_ms=10.0)
    res = await fwd.forward([SPEC, GEN, HOLD_ROUTE], deadline_in(200), up)
    assert res.route == SPEC and res.fallback is None and [c[0] for c in up.calls] == [SPEC]
    up = ScriptedUpstream({SPEC: 1.0, GEN: 0.001})
    res = await fwd.forward([SPEC, GEN, HOLD_ROUTE], deadline_in(200), up)
    assert res.route == GEN and (up.started[1] - up.started[0]) * 1000 >= 98.25 - 2


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


async def test_hedges_stay_within_the_extra_call_budget() -> None:
    """Every request is late enough to hedge; only max_extra_share of them may be (plus the
    one call the budget starts with); the rest wait for their own route."""
    up = ScriptedUpstream({SPEC: 0.006, GEN: 0.001})
    fwd = make_forwarder(hedging=Hedging(enabled=True, delay_ms=1.0, max_extra_share=0.05))
    results = [await fwd.forward([SPEC, GEN, HOLD_ROUTE], deadline_in(60), up)
               for _ in range(60)]
    hedged = sum(r.hedged for r in results)
    assert 1 <= hedged <= 1 + 0.05 * 60
    assert sum(r.route == SPEC for r in results) >= 60 - hedged


async def test_fallbacks_spend_the_hedge_budget() -> None:
    """A failing specialist falls back on every request; those extra calls use up the budget,
    so a later late specialist is not hedged as well."""
    up = ScriptedUpstream({SPEC: None, GEN: 0.001})
    fwd = make_forwarder(hedging=Hedging(enabled=True, delay_ms=1.0, max_extra_share=0.05),
                         threshold=1000)
    for _ in range(20):
        assert (await fwd.forward([SPEC, GEN, HOLD_ROUTE], deadline_in(60), up)).route == GEN
    up.delays[SPEC] = 0.006
    res = await fwd.forward([SPEC, GEN, HOLD_ROUTE], deadline_in(60), up)
    assert res.route == SPEC and not res.hedged


async def test_adaptive_hedges_only_a_route_that_straggles() -> None:
    """Adaptive: a route answering in steady time (20-39 ms) is never hedged; once it straggles
    (every 10th call 300 ms) those calls are, and its steady calls still are not, though a
    twentieth of them pass its p95 (the hedge waits for 2x its p90). Steady calls are tens of
    ms so that a loaded machine's scheduling delay (CI once saw two 5-10 ms calls pass 2x their
    p90) does not read as straggling."""
    steady_ms = [20.0 + (i * 7 % 20) for i in range(200)]  # 20-39 ms, spread evenly
    up = ScriptedUpstream({SPEC: 0.02, GEN: 0.001})
    up.spec_delays = [ms / 1000 for ms in steady_ms[:120]]
    fwd = make_forwarder(prior_ms=30.0, hedging=Hedging(enabled=True, adaptive=True,
                                                        max_extra_share=0.5))
    steady = [await fwd.forward([SPEC, GEN, HOLD_ROUTE], deadline_in(1000), up)
              for _ in range(120)]
    assert not any(r.hedged for r in steady)
    up.spec_delays = [0.3 if i % 10 == 0 else steady_ms[i] / 1000 for i in range(60)]
    straggling = [await fwd.forward([SPEC, GEN, HOLD_ROUTE], deadline_in(1000), up)
                  for _ in range(60)]
    won = {i for i, r in enumerate(straggling) if r.hedged and r.route == GEN}
    # The stragglers at 0 and 10 bring its share to 2 in ~120 calls (over 1%); the rest are
    # hedged, and no steady call is. On a loaded host a steady call the scheduler held up can
    # count as a straggler too, so the 0th or 10th may already be hedged: only stragglers are.
    assert {20, 30, 40, 50} <= won <= {0, 10, 20, 30, 40, 50}
    assert not any(r.hedged for i, r in enumerate(straggling) if i % 10)


async def test_late_primary_without_budget_falls_back_in_its_reserved_time() -> None:
    """No call to spare when the primary is late: not hedged, and not given the whole budget
    either: cut at its reserved share like any attempt, so the generalist still answers."""
    up = ScriptedUpstream({SPEC: 1.0, GEN: 0.002})
    fwd = make_forwarder(prior_ms=10.0, hedging=Hedging(enabled=True, delay_ms=2.0,
                                                        max_extra_share=0.0))
    res = await fwd.forward([SPEC, GEN, HOLD_ROUTE], deadline_in(60), up)
    assert res.route == GEN and not res.hedged and res.fallback == "timeout"
    assert res.path == [f"{SPEC}:timeout", f"{GEN}:ok"]
    over = fwd.fwd.metrics.hedges_over_budget.labels(route=SPEC)._value.get()
    assert over == 1
