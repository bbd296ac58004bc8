"""Counterfactual failure attribution: a failed episode against the same configuration under
the reference arm (oracle route, no perturbation, fresh calibration, on time). The label names
the one recorded factor in which the two runs differ; a failure that also happens under the
reference is the model's; anything else (no usable reference, no difference, several) is
`unattributed`, never guessed. COUNTERFACTUAL_RULES is what report.md prints."""

from __future__ import annotations

from typing import Any

from evaluation.attribution import (
    CONTROLLER_MISMATCH,
    DEADLINE_MIN_SHARE,
    DEADLINE_MISS,
    EVALUATION_ERROR,
    MODEL_ERROR,
    ROUTER_ERROR,
    ROUTER_ERROR_MIN_SHARE,
    STALE_CALIBRATION,
    Attribution,
    AttributionContext,
    step_evidence,
)
from evaluation.records import NO_REPLY, EpisodeResult

UNATTRIBUTED = "unattributed"
COUNTERFACTUAL_LABELS = (EVALUATION_ERROR, MODEL_ERROR, ROUTER_ERROR, CONTROLLER_MISMATCH,
                         DEADLINE_MISS, STALE_CALIBRATION, UNATTRIBUTED)
# The seed's model-error categories. Only those the episode record can show are ever assigned:
# perception, state and planning would need the observations and the plan (in the MCAP trace,
# not in episodes.jsonl), so they are listed for the label set but never guessed. The seed's
# "evaluation" category is the top-level evaluation_error label: an invalid episode is no
# evidence about the model and is not counted as a model error.
CONTROL, UNSPECIFIED = "control", "unspecified"
MODEL_SUBCATEGORIES = ("perception", "state", "planning", CONTROL, UNSPECIFIED)
# A tanh policy pinned at its position bounds for most of an episode is driving bang-bang; an
# expert saturates briefly at the start of a reach, so only a majority of steps counts.
CONTROL_SATURATION_MIN_SHARE = 0.5

COUNTERFACTUAL_RULES: tuple[tuple[str, str], ...] = (
    (EVALUATION_ERROR, "the failed episode itself was invalid (the simulator or the runner "
                       "raised, or no control step was taken): not compared, never a model "
                       "error."),
    (UNATTRIBUTED, "no usable reference: the reference arm has no episode of this "
                   "configuration, or that episode was invalid or had late actions on at least "
                   f"{DEADLINE_MIN_SHARE:.0%} of its steps; also when the episode differs from a "
                   "successful reference in no recorded factor, or in more than one (one "
                   "reference cannot separate them). Never guessed."),
    (MODEL_ERROR, "the same configuration also fails under the reference arm (oracle route, "
                  "no perturbation, fresh calibration, on time), or the arm's contract fixes "
                  "another policy and that is the only difference. Sub-category `control` when "
                  f"at least {CONTROL_SATURATION_MIN_SHARE:.0%} of the applied actions had a "
                  "position component at its bound, else `unspecified`."),
    (ROUTER_ERROR, "the reference succeeded; the only difference is the route the router chose "
                   "(main route on non-fallback steps differs from the reference's, or "
                   f"at least {ROUTER_ERROR_MIN_SHARE:.0%} of steps acted on the wrong task)."),
    (CONTROLLER_MISMATCH, "the reference succeeded; the only difference is the arm's "
                          "controller-side perturbation (observation noise or delay, action "
                          "delay). When the perturbed arm also chose another route than the "
                          "reference, the unperturbed `router` arm's episode of the "
                          "configuration (same route, on time) separates the two: it succeeded "
                          "-> controller_mismatch; it failed too -> router_error."),
    (DEADLINE_MISS, "the reference succeeded; the only difference is late actions: at least "
                    f"{DEADLINE_MIN_SHARE:.0%} of steps without a usable action in time or "
                    "served by a fallback/hold."),
    (STALE_CALIBRATION, "the reference succeeded; the arm routed by a table that rates this "
                        "task outside the reference table's 95% intervals (or a deliberately "
                        "stale one) and chose another route than the reference; nothing else "
                        "differs. The table acts only through the route, so a stale table with "
                        "the reference's route is no difference."),
)


def _primary_route(ep: EpisodeResult) -> str:
    """The route the router chose, on steps it was not forced off it: fallback and hold steps
    are the deadline factor's evidence, not the routing decision's."""
    counts: dict[str, int] = {}
    for route, fell_back in zip(ep.routes, ep.fallback, strict=True):
        if route not in (NO_REPLY, "hold") and not fell_back:
            counts[route] = counts.get(route, 0) + 1
    return max(counts, key=lambda r: counts[r]) if counts else NO_REPLY


def _late(ev: dict[str, Any]) -> bool:
    return bool(ev["late_share"] >= DEADLINE_MIN_SHARE
                or ev["fallback_share"] >= DEADLINE_MIN_SHARE)


def _table_stale(task: str, ctx: AttributionContext) -> bool:
    if ctx.perturbation.stale_calibration:
        return True
    return any(not ref.ci95[0] <= used.rate <= ref.ci95[1]
               for (t, policy), used in ctx.arm_table.items()
               if t == task and (ref := ctx.reference_table.get((t, policy))) is not None)


def _invalid(ep: EpisodeResult) -> bool:
    return ep.eval_error is not None or ep.steps == 0


def model_subcategory(ep: EpisodeResult) -> str:
    if ep.saturated and sum(ep.saturated) / len(ep.saturated) >= CONTROL_SATURATION_MIN_SHARE:
        return CONTROL
    return UNSPECIFIED


def factors(ep: EpisodeResult, ctx: AttributionContext, reference: EpisodeResult) -> list[str]:
    """The recorded ways the episode's run differs from the reference episode's run."""
    ev = step_evidence(ep, ctx)
    out = []
    route = _primary_route(ep)  # NO_REPLY: no routing decision was observed, none to compare
    if (route != NO_REPLY and route != _primary_route(reference)) or (
            ev["wrong_task_share"] >= ROUTER_ERROR_MIN_SHARE):
        if ctx.family != "router":
            out.append("policy")  # fixed by the arm's contract, not chosen
        elif _table_stale(ep.task, ctx):
            out.append(STALE_CALIBRATION)  # the table is what the route choice read
        else:
            out.append(ROUTER_ERROR)
    if ctx.perturbation.controller_side:
        out.append(CONTROLLER_MISMATCH)
    if _late(ev):
        out.append(DEADLINE_MISS)
    return out


def _split_by_unperturbed(ep: EpisodeResult, ctx: AttributionContext,
                          unperturbed: EpisodeResult | None) -> str | None:
    """Route × perturbation is the one confound a run can take apart, one factor at a time:
    the unperturbed router arm ran the same configuration under the same contract. With the
    same route and on time, its outcome says whether the perturbation was needed."""
    if unperturbed is None or _invalid(unperturbed):
        return None
    if (unperturbed.task, unperturbed.config_index) != (ep.task, ep.config_index):
        raise ValueError(f"{unperturbed.episode_id} is not the configuration of {ep.episode_id}")
    ev = step_evidence(unperturbed, ctx)
    if (_late(ev) or ev["wrong_task_share"] >= ROUTER_ERROR_MIN_SHARE
            or _primary_route(unperturbed) != _primary_route(ep)):
        return None
    return CONTROLLER_MISMATCH if unperturbed.success else ROUTER_ERROR


def counterfactual(ep: EpisodeResult, ctx: AttributionContext, reference: EpisodeResult | None,
                   ref_ctx: AttributionContext | None = None,
                   unperturbed: EpisodeResult | None = None) -> Attribution | None:
    """The one label of a failed episode from the same configuration under the reference arm
    (None for a success). `reference` is that arm's episode of (ep.task, ep.config_index);
    `unperturbed` the unperturbed router arm's, used only to split route × perturbation."""
    if ep.success:
        return None
    ev = step_evidence(ep, ctx)

    def out(label: str, summary: str, sub: str | None = None, **extra: Any) -> Attribution:
        return Attribution(label, summary, {**ev, **extra}, sub, "counterfactual")

    if _invalid(ep):
        return out(EVALUATION_ERROR, ep.eval_error or "no control step was taken",
                   eval_error=ep.eval_error)
    if reference is None:
        return out(UNATTRIBUTED, "no reference episode of this configuration", reference=None)
    if (reference.task, reference.config_index) != (ep.task, ep.config_index):
        raise ValueError(f"{reference.episode_id} is not the configuration of {ep.episode_id}")
    ref: dict[str, Any] = {
        "reference_episode": reference.episode_id, "reference_success": reference.success,
        "reference_route": _primary_route(reference), "route": _primary_route(ep)}
    if _invalid(reference) or _late(step_evidence(reference, ref_ctx or ctx)):
        return out(UNATTRIBUTED, f"reference {reference.episode_id} is not clean (invalid or "
                   "late actions)", **ref)
    if not reference.success:
        sub = model_subcategory(ep)
        return out(MODEL_ERROR, f"fails under the reference arm too ({reference.episode_id})",
                   sub, **ref)
    found = factors(ep, ctx, reference)
    ref["factors"] = found
    if not found:
        return out(UNATTRIBUTED, f"the reference {reference.episode_id} succeeded and no "
                   "recorded factor differs (nondeterminism or an unrecorded cause)", **ref)
    split = (_split_by_unperturbed(ep, ctx, unperturbed)
             if sorted(found) == sorted((ROUTER_ERROR, CONTROLLER_MISMATCH)) else None)
    if split is not None and unperturbed is not None:
        ref["unperturbed_episode"] = unperturbed.episode_id
        outcome = "succeeded" if unperturbed.success else "failed too"
        return out(split, f"{ctx.perturbation.describe()}; on {ref['route']} without it "
                   f"({unperturbed.episode_id}) the configuration {outcome}; "
                   f"{ref['reference_route']} succeeded ({reference.episode_id})", **ref)
    if len(found) > 1:
        return out(UNATTRIBUTED, f"confounded: differs from the successful reference by "
                   f"{' and '.join(found)}", **ref)
    factor = found[0]
    if factor == "policy":
        return out(MODEL_ERROR, f"{ref['route']} fails where {ref['reference_route']} succeeds "
                   f"({reference.episode_id}); nothing else differs", model_subcategory(ep),
                   **ref)
    wrong = (f"acted on {', '.join(ev['wrong_tasks'])} on {ev['wrong_task_share']:.0%} of "
             "steps" if ev["wrong_task_share"] >= ROUTER_ERROR_MIN_SHARE
             else f"routed to {ref['route']}")
    summaries = {
        ROUTER_ERROR: f"{wrong}; {ref['reference_route']} on {ep.task} succeeded",
        STALE_CALIBRATION: f"stale table led to {ref['route']}; {ref['reference_route']} "
                           "succeeded",
        CONTROLLER_MISMATCH: f"{ctx.perturbation.describe()}; unperturbed reference succeeded",
        DEADLINE_MISS: f"{ev['late_share']:.0%} of steps late, {ev['fallback_share']:.0%} "
                       "fallback/hold; on-time reference succeeded",
    }
    return out(factor, f"{summaries[factor]} ({reference.episode_id})", **ref)
