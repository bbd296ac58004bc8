"""Route scoring: pure functions of the contract, the task estimate and live route state.

score = calibrated P(success | task, policy) − λ·predicted latency (ms) − μ·ops cost
Ties (within ε) and low task confidence go to the generalist: it is the route that is never
wrong about which task it is doing.
"""

from __future__ import annotations

from dataclasses import dataclass

from router_service.contract import HOLD_ROUTE, Contract, PolicySpec
from router_service.errors import InvalidRequest


@dataclass(frozen=True)
class Candidate:
    route: str
    success: float
    predicted_ms: float
    ops_cost: float
    score: float
    fits_budget: bool
    usable: bool


@dataclass(frozen=True)
class Decision:
    route: str
    reason: str
    candidates: tuple[Candidate, ...]


def calibrated_success(contract: Contract, task: str, policy: str, inferred: bool = False
                       ) -> float:
    row = contract.calibration_row(task, policy, inferred)
    return row.rate if row is not None else contract.spec.calibration.prior_success


def score_candidates(
    contract: Contract,
    task: str,
    budget_ms: float,
    predicted_ms: dict[str, float],
    usable: dict[str, bool],
    inferred: bool = False,
) -> tuple[Candidate, ...]:
    objective = contract.spec.objective
    out = []
    for policy in contract.spec.policies:
        if task not in policy.tasks:
            continue
        success = calibrated_success(contract, task, policy.name, inferred)
        latency = predicted_ms.get(policy.name, policy.expected_latency_ms)
        score = (
            success
            - objective.latency_weight_per_ms * latency
            - objective.ops_cost_weight * policy.ops_cost
        )
        out.append(
            Candidate(
                route=policy.name,
                success=success,
                predicted_ms=latency,
                ops_cost=policy.ops_cost,
                score=score,
                fits_budget=latency <= budget_ms,
                usable=usable.get(policy.name, True),
            )
        )
    return tuple(out)


def requested(candidates: tuple[Candidate, ...], route: str | None) -> Decision | None:
    """The route a client asked for by name, while it is usable; else None and the request is
    scored (a route whose circuit is open is not worth the wait: its fallback would answer).
    Its latency is not second-guessed: the client named it knowing what it costs."""
    if route is None:
        return None
    chosen = next((c for c in candidates if c.route == route), None)
    if chosen is None:
        raise InvalidRequest(f"route {route!r} does not serve this request's task",
                             field="route")
    return Decision(route, "requested", candidates) if chosen.usable else None


def decide(
    contract: Contract,
    candidates: tuple[Candidate, ...],
    task_confidence: float,
    sticky_route: str | None,
) -> Decision:
    generalist: PolicySpec = contract.generalist
    eligible = [c for c in candidates if c.usable and c.fits_budget]
    if not eligible:
        # Nothing fits: the generalist still gets a try if it is usable (a prediction is not a
        # certainty); otherwise the engine's fallback chain ends at hold.
        gen = next((c for c in candidates if c.route == generalist.name and c.usable), None)
        if gen is not None:
            return Decision(gen.route, "no_route_fits_budget", candidates)
        return Decision(HOLD_ROUTE, "no_usable_route", candidates)
    if sticky_route is not None and any(c.route == sticky_route for c in eligible):
        return Decision(sticky_route, "sticky", candidates)
    gen_candidate = next((c for c in eligible if c.route == generalist.name), None)
    if task_confidence < contract.spec.routing.min_task_confidence and gen_candidate:
        return Decision(gen_candidate.route, "low_task_confidence", candidates)
    best = max(eligible, key=lambda c: c.score)
    if len(eligible) == 1:
        return Decision(best.route, "only_candidate", candidates)
    if (
        gen_candidate is not None
        and best.route != gen_candidate.route
        and best.score - gen_candidate.score <= contract.spec.objective.tie_epsilon
    ):
        return Decision(gen_candidate.route, "tie_to_generalist", candidates)
    return Decision(best.route, "best_score", candidates)
