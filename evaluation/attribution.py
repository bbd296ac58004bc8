"""Failure attribution: every failed episode gets exactly one label and the evidence that decided
it. Pure functions of the episode record and what the arm was served under.

Two methods. `evaluation.counterfactual` (preferred, used whenever the run has a clean
reference arm) compares a failed episode with the same configuration under the reference arm.
`attribute` here (the fallback when there is no reference arm) reads symptoms from the episode
alone; its rules are checked in order and the first that matches wins (RULES). report.md prints
which method it used."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from evaluation.arms import Perturbation
from evaluation.contracts import TableRow
from evaluation.records import NO_REPLY, EpisodeResult

Method = Literal["counterfactual", "rules"]

# A share of steps this large is not an accident of one tick: it shapes the whole episode.
ROUTER_ERROR_MIN_SHARE = 0.10
DEADLINE_MIN_SHARE = 0.10

EVALUATION_ERROR = "evaluation_error"
ROUTER_ERROR = "router_error"
DEADLINE_MISS = "deadline_miss"
STALE_CALIBRATION = "stale_calibration"
CONTROLLER_MISMATCH = "controller_mismatch"
MODEL_ERROR = "model_error"
LABELS = (EVALUATION_ERROR, ROUTER_ERROR, DEADLINE_MISS, CONTROLLER_MISMATCH,
          STALE_CALIBRATION, MODEL_ERROR)

RULES: tuple[tuple[str, str], ...] = (
    (EVALUATION_ERROR, "the episode itself was invalid: the simulator or the runner raised, or "
                       "not a single control step was taken."),
    (ROUTER_ERROR, f"at least {ROUTER_ERROR_MIN_SHARE:.0%} of the steps were acted on for a task "
                   "other than the true one (wrong task), or served by a route whose policy does "
                   "not serve the true task (wrong route)."),
    (DEADLINE_MISS, f"at least {DEADLINE_MIN_SHARE:.0%} of the steps had no usable action within "
                    "the control deadline (late reply, shed or failed request: the robot held), "
                    "or were served by a fallback route or hold."),
    (CONTROLLER_MISMATCH, "the arm perturbed what the controller sends or applies (observation "
                          "noise, stale observations, action delay). Checked before stale "
                          "calibration because the router's stale flag is computed from outcomes: "
                          "failures a perturbation causes make the router flag the table too."),
    (STALE_CALIBRATION, "the calibration table the router routed by rates the episode's "
                        "(task, main route) outside the 95% interval of the reference table "
                        "(the build's offline table), or the router answered this episode's "
                        "feedback with calibration_stale = true."),
    (MODEL_ERROR, "none of the above: right task, right route, on time, still failed."),
)


@dataclass(frozen=True)
class AttributionContext:
    route_tasks: dict[str, tuple[str, ...]]  # the arm's contract: route -> tasks it serves
    perturbation: Perturbation = field(default_factory=Perturbation)
    arm_table: dict[tuple[str, str], TableRow] = field(default_factory=dict)
    reference_table: dict[tuple[str, str], TableRow] = field(default_factory=dict)
    # "router": the router chooses the route; "generalist"/"specialist": the arm's contract
    # fixes the policy, so a route different from the reference's is a different policy.
    family: str = "router"


@dataclass(frozen=True)
class Attribution:
    label: str
    summary: str
    evidence: dict[str, Any]
    subcategory: str | None = None  # model errors only (MODEL_SUBCATEGORIES)
    method: Method = "rules"


def _share(count: int, total: int) -> float:
    return round(count / total, 4) if total else 0.0


def step_evidence(ep: EpisodeResult, ctx: AttributionContext) -> dict[str, Any]:
    steps = len(ep.routes)
    wrong_route = sum(1 for r in ep.routes
                      if r not in (NO_REPLY, "hold") and ep.task not in ctx.route_tasks.get(r, ()))
    wrong_tasks = {t for t in ep.resolved_tasks if t not in (NO_REPLY, ep.task)}
    return {
        "steps": steps,
        "main_route": ep.main_route(),
        "wrong_task_share": _share(ep.wrong_task_steps(), steps),
        "wrong_tasks": sorted(wrong_tasks),
        "wrong_route_share": _share(wrong_route, steps),
        "late_share": _share(sum(ep.late), steps),
        "fallback_share": _share(sum(ep.fallback), steps),
        "statuses": ep.statuses,
        "fallback_reasons": ep.fallback_reasons,
    }


def _calibration_evidence(ep: EpisodeResult, ctx: AttributionContext, route: str
                          ) -> dict[str, Any] | None:
    used = ctx.arm_table.get((ep.task, route))
    ref = ctx.reference_table.get((ep.task, route))
    if used is not None and ref is not None and not ref.ci95[0] <= used.rate <= ref.ci95[1]:
        return {"table_rate": used.rate, "reference_rate": ref.rate,
                "reference_ci95": list(ref.ci95), "pair": [ep.task, route]}
    if ep.feedback.get("calibration_stale") is True:
        return {"feedback_calibration_stale": True, "feedback_route": ep.feedback.get("route")}
    return None


def attribute(ep: EpisodeResult, ctx: AttributionContext) -> Attribution | None:
    """The one label of a failed episode (None for a success)."""
    if ep.success:
        return None
    if ep.eval_error is not None or ep.steps == 0:
        return Attribution(EVALUATION_ERROR, ep.eval_error or "no control step was taken",
                           {"eval_error": ep.eval_error, "steps": ep.steps})
    ev = step_evidence(ep, ctx)
    if ev["wrong_task_share"] >= ROUTER_ERROR_MIN_SHARE:
        return Attribution(ROUTER_ERROR, f"{ev['wrong_task_share']:.0%} of steps acted on "
                           f"{', '.join(ev['wrong_tasks'])} instead of {ep.task}", ev)
    if ev["wrong_route_share"] >= ROUTER_ERROR_MIN_SHARE:
        return Attribution(ROUTER_ERROR, f"{ev['wrong_route_share']:.0%} of steps served by a "
                           f"route that does not serve {ep.task}", ev)
    if ev["late_share"] >= DEADLINE_MIN_SHARE or ev["fallback_share"] >= DEADLINE_MIN_SHARE:
        return Attribution(DEADLINE_MISS, f"{ev['late_share']:.0%} of steps without a usable "
                           f"action in time, {ev['fallback_share']:.0%} served by fallback/hold",
                           ev)
    if ctx.perturbation.controller_side:
        return Attribution(CONTROLLER_MISMATCH, ctx.perturbation.describe(),
                           {**ev, "perturbation": ctx.perturbation.describe()})
    calibration = _calibration_evidence(ep, ctx, ev["main_route"])
    if calibration is not None:
        if "table_rate" in calibration:
            summary = (f"router's table rates {ep.task} on {ev['main_route']} at "
                       f"{calibration['table_rate']:.2f}, reference interval "
                       f"{calibration['reference_ci95']}")
        else:
            summary = "router flagged calibration_stale on this episode's feedback"
        return Attribution(STALE_CALIBRATION, summary, {**ev, **calibration})
    return Attribution(MODEL_ERROR, f"right task, {ev['main_route']} on time, still failed", ev)

