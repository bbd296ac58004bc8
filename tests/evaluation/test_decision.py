"""The decision on constructed matrices: smallest policy set, and the router's verdict."""

from __future__ import annotations

from eval_testkit import SPECIALIST, TASKS

from evaluation.decision import ContractTargets, decide
from evaluation.stats import wilson_interval
from evaluation.tables import Cell

TARGETS = ContractTargets(
    tasks=TASKS, success_target={"reach-v3": 0.9, "pick-place-v3": 0.8,
                                 "peg-insert-side-v3": 0.7},
    budget_ms=20.0, generalist="generalist", specialist_for=dict(SPECIALIST),
    ops_cost={"generalist": 0.0, **{r: 0.02 for r in SPECIALIST.values()}},
)


def cell(task: str, arm: str, wins: int, n: int = 20, p99: float = 12.0,
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


ALL = dict.fromkeys(TASKS, 20)


def test_generalist_meeting_everything_is_the_smallest_set() -> None:
    d = decide(matrix(ALL, ALL, ALL), TARGETS)
    assert d.policy_set == ("generalist",)
    assert not d.uncovered and not d.generalist_misses
    assert not d.router_earns_place
    assert any("does not beat the generalist anywhere" in line for line in d.lines)


def test_specialist_added_only_where_the_generalist_misses() -> None:
    gen = {**ALL, "peg-insert-side-v3": 10}  # 50% < 70%
    router = {**ALL, "peg-insert-side-v3": 19}
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
    gen = {**ALL, "peg-insert-side-v3": 10}
    router = {"reach-v3": 8, "pick-place-v3": 20, "peg-insert-side-v3": 19}
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
    cells = [cell(t, a, 20, p99=40.0) for a in ("generalist", "specialist", "router")
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
    cells = [cell(t, "generalist", 20) for t in TASKS]
    d = decide(cells, TARGETS)
    assert d.missing_arms == ("specialist", "router")
    assert any("cannot be decided" in line for line in d.lines)


def test_router_on_the_generalist_route_gets_no_credit() -> None:
    # The generalist arm misses peg's latency budget, the router arm does not, but the router
    # served peg from the generalist too: the same policy measured twice.
    cells = matrix(ALL, ALL, ALL)
    cells = [c if not (c.arm == "generalist" and c.task == "peg-insert-side-v3")
             else cell(c.task, "generalist", 20, p99=27.0) for c in cells]
    cells = [c if not (c.arm == "router" and c.task == "peg-insert-side-v3")
             else cell(c.task, "router", 20, p99=18.0, route="generalist") for c in cells]
    d = decide(cells, TARGETS)
    assert d.generalist_misses == ("peg-insert-side-v3",)
    assert d.router_meets_there == ()
    assert not d.router_earns_place
    assert any("same policy measured twice" in line for line in d.lines)
    assert d.lines[-1].startswith("- **The router does not beat the generalist anywhere")
