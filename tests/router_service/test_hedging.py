"""The hedge budget and the straggler share (router_service/hedging.py)."""

from __future__ import annotations

from router_service.contract import Hedging
from router_service.hedging import MIN_STRAGGLER_SHARE, ExtraCallBudget, StragglerShare


def test_budget_allows_its_share_of_requests_over_a_long_run() -> None:
    budget = ExtraCallBudget(share=0.05, burst=10.0)
    hedges = 0
    for _ in range(10_000):
        budget.earn()
        if budget.can_hedge():
            budget.spend()
            hedges += 1
    assert 495 <= hedges <= 501  # 5% of 10,000, plus the one call it starts with


def test_fallbacks_run_the_budget_into_bounded_debt() -> None:
    budget = ExtraCallBudget(share=0.05, burst=10.0)
    for _ in range(1_000):
        budget.spend()  # a fallback storm: never refused
    assert not budget.can_hedge()
    for _ in range(219):  # 10 of debt + 1 call = 220 requests at 5%
        budget.earn()
    assert not budget.can_hedge()
    budget.earn()
    assert budget.can_hedge()


def test_zero_share_never_hedges() -> None:
    budget = ExtraCallBudget(share=0.0)
    budget.earn()
    assert not budget.can_hedge()


def test_straggler_share_over_its_window() -> None:
    share = StragglerShare(window=100)
    assert share.share() == 0.0 and not share.straggles()
    share.observe(True)
    assert share.share() == 1.0 and not share.straggles()  # one call is no evidence yet
    for i in range(99):
        share.observe(i % 50 == 0)  # 3 in 100
    assert share.share() == 0.03 and share.straggles()
    for _ in range(100):
        share.observe(False)  # the stragglers leave the window
    assert share.share() == 0.0 and not share.straggles()
    assert MIN_STRAGGLER_SHARE > 0


def test_savings_cover_a_run_of_stragglers() -> None:
    """A stalled route is late for every call of its stall: the calls saved up in quiet time
    must cover the run. 400 requests at 5% save 20; a cap of 10 would hedge only half of a run
    of 20 (the straggler A/B's runs went unhedged that way)."""
    def hedged_in_a_run(burst: float) -> int:
        budget = ExtraCallBudget(share=0.05, burst=burst)
        for _ in range(400):
            budget.earn()
        hedged = 0
        for _ in range(20):  # 20 late calls in a row, each a request of its own
            budget.earn()
            if budget.can_hedge():
                budget.spend()
                hedged += 1
        return hedged

    assert hedged_in_a_run(Hedging().max_extra_burst) == 20
    assert hedged_in_a_run(10.0) <= 11  # its 10, and what it earns during the run
