"""The decision the report ends with, computed from the run's matrix and the contract:
the smallest policy set that meets every task's success target within the latency budget, and
whether the router earns its place over the generalist alone."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from evaluation.stats import WILSON_Z, PairedComparison, newcombe_difference, wilson_interval
from evaluation.tables import Cell

# Which arm measures which policy on a task (the oracle arms of the run).
GENERALIST_ARM, SPECIALIST_ARM, ROUTER_ARM = "generalist", "specialist", "router"


# A point estimate at or above the target is not evidence of meeting it: a policy whose true
# rate is 75% scores 18/20 = 90% or better in about one run of eleven. A policy meets a target
# only when the whole 95% interval clears it, so "meets" is a claim that holds at the
# interval's confidence, and a run too small to show it says so instead of passing.
# A p99 within budget means at most 1% of ticks over it. The robot abandons a call at the
# deadline, so the replied round trips alone are always under it: the misses must count.
MAX_MISS_SHARE = 0.01
DECISION_RULE = (
    "A policy meets a task's success target only when the lower bound of the two-sided 95% "
    f"Wilson score interval (z = {WILSON_Z:.2f}) of its measured success rate is at least the "
    "target (not the point estimate; it is a one-sided 97.5% lower confidence bound), and its "
    "p99 round trip is within the latency budget, counting every control tick without a usable "
    f"action by the deadline as over it (so at most {MAX_MISS_SHARE:.0%} of ticks may miss). "
    "With n episodes and no failure that lower bound is n / (n + z²): a target of 90% needs "
    "at least 35 of 35.")


@dataclass(frozen=True)
class ContractTargets:
    tasks: tuple[str, ...]
    success_target: dict[str, float]
    budget_ms: float  # p99 of the robot-measured round trip must stay within this
    generalist: str
    specialist_for: dict[str, str]  # task -> its specialist route
    ops_cost: dict[str, float]


@dataclass(frozen=True)
class Comparison:
    task: str
    router_rate: float
    generalist_rate: float
    diff: float
    lo: float
    hi: float
    # Paired by configuration: Newcombe's paired interval and the exact McNemar p. Unpaired
    # (None): the independent-samples interval, when the arms' configurations did not match.
    p_value: float | None = None

    @property
    def paired(self) -> bool:
        return self.p_value is not None

    @property
    def verdict(self) -> str:
        return "better" if self.lo > 0 else "worse" if self.hi < 0 else "no significant difference"


@dataclass(frozen=True)
class Decision:
    policy_set: tuple[str, ...]
    assignment: dict[str, str]  # task -> policy in the set that serves it
    uncovered: tuple[str, ...]
    latency_considered: bool  # False: no set met the budget, chosen on success alone
    comparisons: tuple[Comparison, ...]
    generalist_misses: tuple[str, ...]  # tasks where the generalist alone misses the contract
    router_meets_there: tuple[str, ...]
    router_earns_place: bool
    missing_arms: tuple[str, ...]
    lines: tuple[str, ...]
    rule: str = DECISION_RULE  # printed by the report next to the decision


def lower_bound(c: Cell) -> float:
    """The Wilson lower bound of the cell's success rate, from its counts (not the rounded
    ci95_lo column, so a bound exactly at a target is not lost to rounding)."""
    return wilson_interval(c.successes, c.episodes)[0]


def meets_success(c: Cell | None, target: float) -> bool:
    if c is None or c.episodes == 0:
        return False
    return lower_bound(c) >= target


def meets(c: Cell | None, target: float, budget_ms: float, latency: bool) -> bool:
    """The decision rule (DECISION_RULE): success by the lower confidence bound, then latency."""
    if c is None or not meets_success(c, target):
        return False
    return not latency or (c.p99_latency_ms <= budget_ms
                           and c.deadline_miss_rate <= MAX_MISS_SHARE)


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def _pct1(x: float) -> str:
    # One decimal: a bound of 89.96% must not print as "90% < target 90%".
    return f"{100 * x:.1f}%"


def _smallest_set(ct: ContractTargets, cells: dict[tuple[str, str], Cell], latency: bool
                  ) -> tuple[tuple[str, ...], dict[str, str], tuple[str, ...]]:
    """Each specialist serves one task and there is one generalist, so the optimum is one of
    two sets: the generalist plus a specialist for each task it misses, or specialists only.
    Chosen by fewest uncovered tasks, then fewest policies, then lowest ops cost."""
    gen_ok = {t for t in ct.tasks if meets(cells.get((t, GENERALIST_ARM)),
                                           ct.success_target[t], ct.budget_ms, latency)}
    spec_ok = {t for t in ct.tasks if t in ct.specialist_for and meets(
        cells.get((t, SPECIALIST_ARM)), ct.success_target[t], ct.budget_ms, latency)}
    options = []
    with_gen = {t: ct.generalist for t in ct.tasks if t in gen_ok}
    with_gen |= {t: ct.specialist_for[t] for t in ct.tasks if t not in gen_ok and t in spec_ok}
    specs_only = {t: ct.specialist_for[t] for t in ct.tasks if t in spec_ok}
    for assignment in (with_gen, specs_only):
        policies = tuple(dict.fromkeys(assignment[t] for t in ct.tasks if t in assignment))
        if with_gen is assignment and gen_ok:
            policies = (ct.generalist, *[p for p in policies if p != ct.generalist])
        uncovered = tuple(t for t in ct.tasks if t not in assignment)
        cost = sum(ct.ops_cost.get(p, 0.0) for p in policies)
        options.append(((len(uncovered), len(policies), cost), policies, assignment, uncovered))
    _key, policies, assignment, uncovered = min(options, key=lambda o: o[0])
    return policies, dict(assignment), uncovered


def decide(cells_list: Sequence[Cell], ct: ContractTargets,
           paired: Mapping[str, PairedComparison] | None = None) -> Decision:
    """`paired`: task -> router arm against generalist arm on the same configurations
    (stats.paired_comparison); tasks without one are compared unpaired."""
    paired = paired or {}
    cells = {(c.task, c.arm): c for c in cells_list}
    arms = {c.arm for c in cells_list}
    missing = tuple(a for a in (GENERALIST_ARM, SPECIALIST_ARM, ROUTER_ARM) if a not in arms)
    chosen, assignment, uncovered = _smallest_set(ct, cells, latency=True)
    latency_considered = True
    if uncovered:
        alt = _smallest_set(ct, cells, latency=False)
        if len(alt[2]) < len(uncovered):
            chosen, assignment, uncovered = alt
            latency_considered = False
    comparisons = []
    for t in ct.tasks:
        r, g = cells.get((t, ROUTER_ARM)), cells.get((t, GENERALIST_ARM))
        if r and g and t in paired:
            pc = paired[t]
            comparisons.append(Comparison(t, r.success_rate, g.success_rate, pc.diff, pc.lo,
                                          pc.hi, pc.p_value))
        elif r and g:
            diff, lo, hi = newcombe_difference(r.successes, r.episodes, g.successes, g.episodes)
            comparisons.append(Comparison(t, r.success_rate, g.success_rate, diff, lo, hi))
    gen_miss = tuple(t for t in ct.tasks if not meets(
        cells.get((t, GENERALIST_ARM)), ct.success_target[t], ct.budget_ms, True))
    meets_there = [t for t in gen_miss if meets(
        cells.get((t, ROUTER_ARM)), ct.success_target[t], ct.budget_ms, True)]
    # Credit only where routing changed the policy: if the router served the task from the
    # generalist too, a difference is the same policy measured twice (noise, load drift).
    router_there = tuple(t for t in meets_there if cells[t, ROUTER_ARM].main_route != ct.generalist)
    same_policy = tuple(t for t in meets_there if t not in router_there)
    worse = [c for c in comparisons if c.verdict == "worse"]
    better = [c for c in comparisons if c.verdict == "better"]
    earns = bool(router_there or better) and not worse and ROUTER_ARM in arms
    lines = _lines(ct, cells, chosen, assignment, uncovered, latency_considered, comparisons,
                   gen_miss, router_there, earns, better, worse, missing)
    if same_policy:
        lines.insert(-1, f"- On {', '.join(same_policy)} the router arm meets the contract and "
                         "the generalist arm does not, but the router served it from the "
                         "generalist as well: the same policy measured twice, not credited to "
                         "routing.")
    return Decision(chosen, assignment, uncovered, latency_considered, tuple(comparisons),
                    gen_miss, router_there, earns, missing, tuple(lines))


def _miss_reason(task: str, c: Cell | None, ct: ContractTargets) -> str:
    if c is None or c.episodes == 0:
        return f"{task} (not measured)"
    why = []
    if not meets_success(c, ct.success_target[task]):
        why.append(f"success {_pct(c.success_rate)}, 95% lower bound {_pct1(lower_bound(c))} < "
                   f"target {_pct(ct.success_target[task])}")
    if c.p99_latency_ms > ct.budget_ms:
        why.append(f"p99 {c.p99_latency_ms:.1f} ms > {ct.budget_ms:g} ms")
    if c.deadline_miss_rate > MAX_MISS_SHARE:
        why.append(f"{_pct1(c.deadline_miss_rate)} of ticks without an action by the "
                   f"{ct.budget_ms:g} ms deadline > {MAX_MISS_SHARE:.0%}")
    return f"{task} ({', '.join(why)})"


def _lines(ct: ContractTargets, cells: dict[tuple[str, str], Cell], chosen: tuple[str, ...],
           assignment: dict[str, str], uncovered: tuple[str, ...], latency_considered: bool,
           comparisons: list[Comparison], gen_miss: tuple[str, ...],
           router_there: tuple[str, ...], earns: bool, better: list[Comparison],
           worse: list[Comparison], missing: tuple[str, ...]) -> list[str]:
    out = []
    if missing:
        out.append(f"- Arms missing from this run: {', '.join(missing)}; the decision below "
                   "uses only what was measured.")
    budget = (f"p99 round trip ≤ {ct.budget_ms:g} ms, at most {MAX_MISS_SHARE:.0%} of ticks "
              "without an action by the deadline")
    if chosen and not uncovered:
        how = "" if latency_considered else (
            f" on success alone: no set meets the latency budget ({budget})")
        out.append(f"- **Smallest policy set that meets the contract{how}: "
                   f"{{{', '.join(chosen)}}}** ({len(chosen)} polic"
                   f"{'y' if len(chosen) == 1 else 'ies'}).")
        for task, policy in assignment.items():
            arm = GENERALIST_ARM if policy == ct.generalist else SPECIALIST_ARM
            c = cells[task, arm]
            out.append(f"  - {task}: {policy}, {_pct(c.success_rate)} "
                       f"[{_pct(c.ci95_lo)}, {_pct(c.ci95_hi)}], lower bound "
                       f"{_pct1(lower_bound(c))} ≥ target {_pct(ct.success_target[task])}, "
                       f"p99 {c.p99_latency_ms:.1f} ms")
    else:
        out.append(f"- **No policy set meets every success target** ({budget} "
                   f"{'applied' if latency_considered else 'ignored'}); uncovered: "
                   f"{', '.join(uncovered) or '-'}"
                   + (f"; best partial set {{{', '.join(chosen)}}}." if chosen else "."))
    if len(chosen) > 1:
        routed = [t for t in ct.tasks if meets(cells.get((t, ROUTER_ARM)),
                                               ct.success_target[t], ct.budget_ms, True)]
        out.append(f"- More than one policy means requests must be dispatched by task: the "
                   f"router arm (deployed contract) meets the contract on {len(routed)} of "
                   f"{len(ct.tasks)} tasks{': ' + ', '.join(routed) if routed else ''}.")
    if gen_miss:
        out.append("- The generalist alone misses the contract on: "
                   + "; ".join(_miss_reason(t, cells.get((t, GENERALIST_ARM)), ct)
                               for t in gen_miss) + ".")
    else:
        out.append("- The generalist alone meets every success target within the latency "
                   "budget: by the contract, no router is needed.")
    for cmp in comparisons:
        out.append(f"  - router vs generalist on {cmp.task}: {_pct(cmp.router_rate)} vs "
                   f"{_pct(cmp.generalist_rate)}, difference {100 * cmp.diff:+.0f} points "
                   f"[{100 * cmp.lo:+.0f}, {100 * cmp.hi:+.0f}] "
                   + (f"(paired by configuration, exact McNemar p = {cmp.p_value:.3g})"
                      if cmp.p_value is not None else "(unpaired)")
                   + f" → {cmp.verdict}")
    if ROUTER_ARM in missing or GENERALIST_ARM in missing:
        out.append("- **Whether the router earns its place cannot be decided: the router or "
                   "generalist arm was not run.**")
    elif earns:
        why = []
        if router_there:
            why.append("meets the contract where the generalist does not "
                       f"({', '.join(router_there)})")
        if better:
            why.append(f"is significantly better on {', '.join(c.task for c in better)}")
        out.append(f"- **The router earns its place**: it {' and '.join(why)}, and is "
                   "significantly worse nowhere.")
    elif not better and not router_there:
        out.append("- **The router does not beat the generalist anywhere in this run**: on no "
                   "task is it significantly better, and nowhere does routing to a specialist "
                   "meet a target the generalist misses. It does not earn its place.")
    else:
        out.append(f"- **The router does not earn its place**: it is significantly worse on "
                   f"{', '.join(c.task for c in worse)}.")
    return out
