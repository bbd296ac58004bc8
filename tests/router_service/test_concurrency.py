"""The adaptive concurrency limit, on a scripted clock: cut on running out of time under load,
never cut at light load, grows back with answers in time."""

from __future__ import annotations

from router_service.concurrency import AdaptiveLimit, ran_out_of_time


def test_out_of_time_is_a_timeout_or_no_budget_on_any_attempt() -> None:
    assert ran_out_of_time(["specialist_a:timeout", "generalist:ok"])
    assert ran_out_of_time(["specialist_a:no_budget", "hold:ok"])
    assert not ran_out_of_time(["specialist_a:ok"])
    assert not ran_out_of_time(["specialist_a:circuit_open", "generalist:unhealthy", "hold:ok"])
    assert not ran_out_of_time(["specialist_a:hedge", "generalist:ok"])


def test_a_timeout_under_load_cuts_to_what_was_in_flight() -> None:
    limit = AdaptiveLimit(max_limit=64, late_burst=0)
    assert limit.admits(63) and not limit.admits(64)
    limit.observe(late=True, inflight=20, answered=False, now=1.0)
    assert limit.limit == 18.0  # 0.9 x the 20 in flight, not 0.9 x 64
    assert limit.admits(17) and not limit.admits(18)


def test_one_burst_of_timeouts_is_one_cut() -> None:
    limit = AdaptiveLimit(max_limit=64, cooldown_s=0.05, late_burst=0)
    for i in range(10):
        limit.observe(late=True, inflight=20, answered=False, now=1.0 + i * 0.001)
    assert limit.cuts == 1 and limit.limit == 18.0
    limit.observe(late=True, inflight=18, answered=False, now=1.06)
    assert limit.cuts == 2 and limit.limit == 16.2


def test_a_stall_is_not_cut_but_lateness_that_goes_on_is() -> None:
    """A stall: the 8 requests in flight late within 15 ms, then on time again; no cut, so the
    backlog it left is served. Overload: late answers keep coming; cut once more than
    `late_burst` have come within `window_s`."""
    limit = AdaptiveLimit(max_limit=64, late_burst=16, window_s=0.5)
    for i in range(8):
        limit.observe(late=True, inflight=8, answered=False, now=1.0 + i * 0.002)
    for i in range(50):
        limit.observe(late=False, inflight=2, answered=True, now=1.02 + i * 0.0025)
    for i in range(10):  # a later stall, out of the window: not the 17th late request
        limit.observe(late=True, inflight=10, answered=False, now=1.6 + i * 0.002)
    assert limit.cuts == 0 and limit.limit == 64.0
    for i in range(30):
        limit.observe(late=True, inflight=20, answered=False, now=2.0 + i * 0.002)
    assert limit.cuts == 1 and limit.limit == 18.0  # the 17th: 0.9 x the 20 in flight


def test_light_load_is_never_cut_so_a_slow_route_still_holds() -> None:
    limit = AdaptiveLimit(max_limit=64, min_limit=4)
    for i in range(100):
        limit.observe(late=True, inflight=4, answered=False, now=float(i))
    assert limit.limit == 64.0 and limit.cuts == 0


def test_never_below_the_floor_and_grows_back_with_answers() -> None:
    limit = AdaptiveLimit(max_limit=64, min_limit=4, late_burst=0)
    for i in range(50):
        limit.observe(late=True, inflight=64, answered=False, now=float(i))
    assert limit.limit == 4.0 and limit.admits(3) and not limit.admits(4)
    for _ in range(100):
        limit.observe(late=False, inflight=2, answered=True)
    assert 12.0 < limit.limit < 17.0  # sqrt(4² + 2 x 100) = 14.7: additive, not a reset
    limit.observe(late=False, inflight=2, answered=False)  # hold grows nothing
    before = limit.limit
    limit.observe(late=False, inflight=2, answered=False)
    assert limit.limit == before
    for _ in range(10_000):
        limit.observe(late=False, inflight=2, answered=True)
    assert limit.limit == 64.0


def test_disabled_admits_everything_and_reports_nothing() -> None:
    seen: list[float] = []
    limit = AdaptiveLimit(max_limit=8, enabled=False, report=seen.append)
    limit.observe(late=True, inflight=64, answered=False, now=1.0)
    assert limit.admits(1000) and limit.limit == 8.0 and limit.cuts == 0 and seen == []


def test_every_observation_reports_the_limit() -> None:
    seen: list[float] = []
    limit = AdaptiveLimit(max_limit=64, report=seen.append, late_burst=0)
    limit.observe(late=True, inflight=20, answered=False, now=1.0)
    limit.observe(late=False, inflight=2, answered=True)
    assert seen == [18, 18]
