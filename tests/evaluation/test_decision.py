"""The decision on constructed matrices: smallest policy set, and the router's verdict. Cells
have N = 40 episodes: the fewest at which a clean sweep's 95% Wilson lower bound (40/43.84 =
0.912) clears the 90% target, since the decision rule reads the lower bound."""

from __future__ import annotations

import pytest
from eval_testkit import SPECIALIST, TASKS

from evaluation.decision import DECISION_RULE, ContractTargets, decide, lower_bound, meets
from evaluation.stats import paired_comparison, wilson_interval
from evaluation.tables import Cell

TARGETS = ContractTargets(
    tasks=TASKS, success_target={"reach-v3": 0.9, "pick-place-v3": 0.8,
                                 "peg-insert-side-v3": 0.7},
    budget_ms=20.0, generalist="generalist", specialist_for=dict(SPECIALIST),
    ops_cost={"generalist": 0.0, **{r: 0.02 for r in SPECIALIST.values()}},
)


N = 40


def cell(task: str, arm: str, wins: int, n: int = N, p99: float = 12.0,
         route: str | None = None) -> Cell:
    lo, hi = wilson_interval(wins, n)
    return Cell(task=task, arm=arm, episodes=n, successes=wins, success_rate=wins / n,
                ci95_lo=lo, ci95_hi=hi, p50_latency_ms=p99 / 2, p99_latency_ms=p99,
                deadline_miss_rate=0.0, fallback_rate=0.0, router_p99_ms=p99 / 2,
                shed_or_error_rate=0.0, wrong_task_rate=0.0,
                main_route=route or ("generalist" if arm == "generalist" else SPECIALIST[task]),
                main_route_share=1.0, steps=100 * n, eval_errors=0)


def matrix(gen: dict[str, int], spec: dict[str, int], router: dict[str, int],
           gen_p99: float = 12.0) -> list[Cell]:
    return ([cell(t, "generalist", gen[t], p99=gen_p99) for t in TASKS]
            + [cell(t, "specialist", spec[t]) for t in TASKS]
            + [cell(t, "router", router[t]) for t in TASKS])


ALL = dict.fromkeys(TASKS, N)


def test_generalist_meeting_everything_is_the_smallest_set() -> None:
    d = decide(matrix(ALL, ALL, ALL), TARGETS)
    assert d.policy_set == ("generalist",)
    assert not d.uncovered and not d.generalist_misses
    assert not d.router_earns_place
    assert any("does not beat the generalist anywhere" in line for line in d.lines)


def test_specialist_added_only_where_the_generalist_misses() -> None:
    gen = {**ALL, "peg-insert-side-v3": 20}  # 50% < 70%
    router = {**ALL, "peg-insert-side-v3": 39}
    d = decide(matrix(gen, ALL, router), TARGETS)
    assert d.policy_set == ("generalist", SPECIALIST["peg-insert-side-v3"])
    assert d.assignment["peg-insert-side-v3"] == SPECIALIST["peg-insert-side-v3"]
    assert d.generalist_misses == ("peg-insert-side-v3",)
    assert d.router_meets_there == ("peg-insert-side-v3",)
    assert d.router_earns_place
    verdicts = {c.task: c.verdict for c in d.comparisons}
    assert verdicts["peg-insert-side-v3"] == "better"
    assert any("The router earns its place" in line for line in d.lines)


def test_router_significantly_worse_somewhere_does_not_earn_its_place() -> None:
    gen = {**ALL, "peg-insert-side-v3": 20}
    router = {"reach-v3": 16, "pick-place-v3": N, "peg-insert-side-v3": 39}
    d = decide(matrix(gen, ALL, router), TARGETS)
    assert not d.router_earns_place
    assert any("significantly worse on reach-v3" in line for line in d.lines)


def test_specialists_only_when_the_generalist_meets_nothing() -> None:
    d = decide(matrix(dict.fromkeys(TASKS, 0), ALL, ALL), TARGETS)
    assert set(d.policy_set) == set(SPECIALIST.values())
    assert "generalist" not in d.policy_set


def test_latency_budget_excludes_a_slow_generalist() -> None:
    d = decide(matrix(ALL, ALL, ALL, gen_p99=35.0), TARGETS)
    assert "generalist" not in d.policy_set  # specialists at p99 12 ms meet everything
    assert d.latency_considered
    assert set(d.generalist_misses) == set(TASKS)


def test_nothing_meets_the_budget_falls_back_to_success_alone_and_says_so() -> None:
    cells = [cell(t, a, N, p99=40.0) for a in ("generalist", "specialist", "router")
             for t in TASKS]
    d = decide(cells, TARGETS)
    assert d.policy_set == ("generalist",) and not d.latency_considered
    assert any("no set meets the latency budget" in line for line in d.lines)


def test_uncoverable_task_is_reported() -> None:
    spec = {**ALL, "pick-place-v3": 0}
    gen = {**ALL, "pick-place-v3": 0}
    d = decide(matrix(gen, spec, ALL), TARGETS)
    assert d.uncovered == ("pick-place-v3",)
    assert any("No policy set meets every success target" in line for line in d.lines)


def test_missing_arms_are_named() -> None:
    cells = [cell(t, "generalist", N) for t in TASKS]
    d = decide(cells, TARGETS)
    assert d.missing_arms == ("specialist", "router")
    assert any("cannot be decided" in line for line in d.lines)


def test_router_on_the_generalist_route_gets_no_credit() -> None:
    # The generalist arm misses peg's latency budget, the router arm does not, but the router
    # served peg from the generalist too: the same policy measured twice.
    cells = matrix(ALL, ALL, ALL)
    cells = [c if not (c.arm == "generalist" and c.task == "peg-insert-side-v3")
             else cell(c.task, "generalist", N, p99=27.0) for c in cells]
    cells = [c if not (c.arm == "router" and c.task == "peg-insert-side-v3")
             else cell(c.task, "router", N, p99=18.0, route="generalist") for c in cells]
    d = decide(cells, TARGETS)
    assert d.generalist_misses == ("peg-insert-side-v3",)
    assert d.router_meets_there == ()
    assert not d.router_earns_place
    assert any("same policy measured twice" in line for line in d.lines)
    assert d.lines[-1].startswith("- **The router does not beat the generalist anywhere")


@pytest.mark.parametrize(("wins", "n", "met"), [
    (35, 35, True),  # lower bound 35 / (35 + 1.96²) = 0.9011
    (34, 34, False),  # 34 / 37.84 = 0.8985
    (19, 20, False),  # 95% point estimate, lower bound 0.7639
    (49, 50, False),  # 98%, lower bound 0.8950: even 49 of 50 does not show 90%
    (50, 50, True),  # 0.9287
])
def test_meets_reads_the_wilson_lower_bound(wins: int, n: int, met: bool) -> None:
    c = cell("reach-v3", "generalist", wins, n=n)
    assert meets(c, 0.9, 20.0, latency=True) is met
    assert c.success_rate >= 0.9  # every case passes the old point-estimate rule


def test_lower_bound_textbook_values() -> None:
    # Newcombe (1998) table I: 0/10 -> [0, 0.2775], 81/263 -> [0.2553, 0.3662].
    assert lower_bound(cell("reach-v3", "generalist", 81, n=263)) == pytest.approx(0.2553,
                                                                                   abs=1e-4)
    assert lower_bound(cell("reach-v3", "generalist", 10, n=10)) == pytest.approx(0.7225,
                                                                                  abs=1e-4)


def test_point_estimate_at_target_is_a_miss_and_the_reason_says_why() -> None:
    # 19/20 = 95% beats the 90% target as a point estimate; its lower bound (76.4%) does not.
    cells = matrix(ALL, ALL, ALL)
    cells = [cell(c.task, c.arm, 19, n=20) if c.arm == "generalist" and c.task == "reach-v3"
             else c for c in cells]
    d = decide(cells, TARGETS)
    assert d.generalist_misses == ("reach-v3",)
    assert d.assignment["reach-v3"] == SPECIALIST["reach-v3"]
    assert any("95% lower bound 76.4% < target 90%" in line for line in d.lines)


def test_decision_carries_its_rule() -> None:
    d = decide(matrix(ALL, ALL, ALL), TARGETS)
    assert d.rule == DECISION_RULE
    assert "lower bound" in d.rule and "not the point estimate" in d.rule
    assert any("lower bound 91.2% ≥ target 90%" in line for line in d.lines)


def test_paired_comparison_is_used_when_given() -> None:
    # 20 configurations of peg: both arms solve 12, only the router 5 more, neither 3. The
    # independent-samples interval (17/20 vs 12/20: [-3, +48] points) cannot tell them apart;
    # paired by configuration the 5 discordant pairs all favour the router ([+3, +45]).
    router = [(i, i < 17) for i in range(20)]
    generalist = [(i, i < 12) for i in range(20)]
    pc = paired_comparison(router, generalist)
    cells = matrix(ALL, ALL, ALL)
    cells = [cell(c.task, c.arm, 17 if c.arm == "router" else 12, n=20)
             if c.task == "peg-insert-side-v3" and c.arm in ("router", "generalist") else c
             for c in cells]
    unpaired = {c.task: c for c in decide(cells, TARGETS).comparisons}["peg-insert-side-v3"]
    assert unpaired.verdict == "no significant difference" and not unpaired.paired
    d = decide(cells, TARGETS, {"peg-insert-side-v3": pc})
    found = {c.task: c for c in d.comparisons}["peg-insert-side-v3"]
    assert found.paired and found.p_value == pytest.approx(0.0625)
    assert found.verdict == "better" and found.lo == pytest.approx(0.0292, abs=1e-4)
    assert any("paired by configuration, exact McNemar p = 0.0625" in line for line in d.lines)
    assert any("reach-v3" in line and "(unpaired)" in line for line in d.lines)


def test_missed_deadlines_count_against_the_latency_budget() -> None:
    """A robot abandons a call at the deadline, so replied round trips alone stay under it:
    a cell whose replies look fast but that missed 5% of its ticks does not meet the budget."""
    fast_but_missing = cell("reach-v3", "generalist", 50, n=50, p99=12.0)
    missing = Cell(**{**fast_but_missing.__dict__, "deadline_miss_rate": 0.05})
    assert meets(fast_but_missing, 0.8, 20.0, latency=True)
    assert not meets(missing, 0.8, 20.0, latency=True)
    assert meets(missing, 0.8, 20.0, latency=False)  # on success alone it still qualifies
    assert "counting every control tick without a usable action" in DECISION_RULE
