"""report.md: every number is read from the run's tables; nothing is typed in by hand."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from evaluation.attribution import LABELS, MODEL_ERROR, RULES
from evaluation.counterfactual import (
    COUNTERFACTUAL_LABELS,
    COUNTERFACTUAL_RULES,
    MODEL_SUBCATEGORIES,
)
from evaluation.records import EpisodeResult
from evaluation.report_overhead import overhead_section
from evaluation.stats import newcombe_difference, paired_comparison
from evaluation.tables import Cell, outcomes

if TYPE_CHECKING:
    from evaluation.report import Failure, Report


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return out


def _display(path: object) -> str:
    """Paths inside the working directory (the repository) shown relative to it."""
    p = Path(str(path))
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p)


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def _cell_row(c: Cell) -> list[object]:
    return [c.task, c.arm, c.episodes, c.successes, _pct(c.success_rate),
            f"[{_pct(c.ci95_lo)}, {_pct(c.ci95_hi)}]", f"{c.p50_latency_ms:.1f}",
            f"{c.p99_latency_ms:.1f}", f"{100 * c.deadline_miss_rate:.1f}%",
            f"{100 * c.fallback_rate:.1f}%", f"{c.main_route} ({_pct(c.main_route_share)})"]


CELL_HEADER = ("task", "arm", "episodes", "successes", "success", "95% CI", "p50 ms", "p99 ms",
               "deadline miss", "fallback", "main route (share of steps)")


def _setup(r: Report) -> list[str]:
    m = r.meta
    arm_time = ", ".join(f"{a.name} {a.wall_s:.0f}s" for a in m.arms)
    stack = ("own: tritonserver (python backend, CPU, fault-injectable repository generated "
             "into run/), " + ("redis-server, " if m.redis else "no redis (router's embedded "
                               "store), ") + "one router process per arm for the whole run "
             "(each on its own Redis database)"
             if m.stack == "own" else f"running router at {m.stack} (contract reload per arm "
             "block; router state is shared by the arms)")
    return [
        f"- Command: `{m.command}`", f"- Started {m.started}, finished {m.finished}; "
        f"setup {m.setup_s:.0f} s, total {m.total_s:.0f} s ({arm_time})",
        f"- Report written {datetime.now().astimezone().isoformat(timespec='seconds')} from "
        "this folder's episodes.jsonl and run.json (`python -m evaluation report FOLDER` "
        "writes it again)",
        f"- Machine: {m.cpu_count} CPUs shared with other work; load average (1/5/15 min) "
        f"{m.load_start} at the start, {m.load_end} at the end",
        f"- Stack: {stack}", f"- Transport: {m.transport}; robots at once: {m.robots}; "
        f"control rate {m.control_hz:g} Hz; deadline {m.deadline_ms:g} ms per step "
        f"(a reply not in hand by then is discarded and the hold action applied)",
        f"- Order: each arm's episodes in {m.rounds} blocks, arms interleaved and rotated "
        "block by block, so drifting background load is spread over all arms",
        f"- Episodes per cell: {m.episodes_per_cell} (the same configurations for every arm); "
        f"step limit {m.max_steps}; success = `info['success']` at any step",
        f"- {_configs(r)}",
        f"- Deployed contract: `{_display(m.base_contract)}` (version "
        f"{m.base_contract_version}); reference calibration table "
        f"`{_display(m.reference_table)}`",
        "- Models: " + ", ".join(f"{k} `{v}`" for k, v in m.model_versions.items()),
    ]


def _configs(r: Report) -> str:
    m = r.meta
    if m.config_seed is None:
        return ("Configurations: seed not recorded in run.json (a run from before it was kept); "
                "disjointness from the calibration table's configurations was not checked")
    n_eval = sum(len(v) for v in m.config_ids.values())
    n_cal = sum(len(v) for v in m.calibration_config_ids.values())
    return (f"Configurations: MT1 seed {m.config_seed} for this evaluation, seed "
            f"{m.calibration_config_seed} for the calibration table the router routes by; "
            f"{n_eval} evaluation configurations checked against all {n_cal} of the "
            "calibration seed's before the run: none shared (identities in run.json)")


def _arms(r: Report) -> list[str]:
    rows = [[a.name, a.description, a.contract_version, f"`{a.contract}`"] for a in r.meta.arms]
    return _table(("arm", "how it is served", "contract version", "contract"), rows)


def _confusion(r: Report, episodes: Sequence[EpisodeResult],
               rows: Sequence[dict[str, object]]) -> list[str]:
    out = []
    for arm in [a for a in r.meta.arms if not a.declare_task]:
        ok = {str(x["true_task"]): x for x in rows
              if x["arm"] == arm.name and x["true_task"] == x["routed_task"]}
        n_eps = Counter(e.task for e in episodes if e.arm == arm.name)
        table = [[t, _pct(float(str(ok[t]["share"]))) if t in ok else "0%",
                  f"{ok[t]['episodes_majority'] if t in ok else 0}/{n_eps[t]}"]
                 for t in r.meta.tasks]
        out.append(f"Arm `{arm.name}`: share of steps the router acted on the true task, and "
                   "episodes whose majority task was right (full matrix: confusion.csv).")
        out += ["", *_table(("true task", "steps on the right task", "episodes right"), table)]
        misroutes = arm.metrics.get("router_misroutes_total", [])
        total = sum(s.value for s in misroutes)
        detail = ", ".join(f"{s.labels.get('true_task')}→{s.labels.get('routed_task')}: "
                           f"{s.value:.0f}" for s in misroutes if s.value) or "none"
        out += ["", f"Router metric `router_misroutes_total` (from feedback, last decision of "
                f"each episode) at the arm's end: {total:.0f} ({detail})."]
    return out or ["No arm hid the task in this run."]


def _shares(counts: Counter[str], total: int) -> str:
    return ", ".join(f"{k} {100 * v / total:.1f}%" for k, v in counts.most_common()) or "-"


def _behaviour(r: Report, episodes: Sequence[EpisodeResult]) -> list[str]:
    """Why the router did what it did, per arm: decision reasons, fallbacks, replies."""
    rows = []
    for arm in r.meta.arms:
        eps = [e for e in episodes if e.arm == arm.name]
        reasons: Counter[str] = Counter()
        fallbacks: Counter[str] = Counter()
        statuses: Counter[str] = Counter()
        for e in eps:
            reasons.update(e.decision_reasons)
            fallbacks.update(e.fallback_reasons)
            statuses.update(e.statuses)
        total = sum(statuses.values()) or 1
        rows.append([arm.name, _shares(reasons, total), _shares(fallbacks, total),
                     _shares(statuses, total),
                     f"{sum(e.router_misses for e in eps) / total:.1%}"])
    out = _table(("arm", "decision reasons (share of steps)", "fallback reasons",
                  "reply status", "router-side deadline miss"), rows)
    stuck = [f"{a.name}: {s.labels.get('route')}" for a in r.meta.arms
             for s in a.metrics.get("router_circuit_open", []) if s.value == 1]
    out += ["", "Circuit breakers open at the arm's end (`router_circuit_open` = 1): "
            + (", ".join(stuck) if stuck else "none") + "."]
    return out


def _difference(episodes: Sequence[EpisodeResult], arm: str, base: str, task: str,
                c: Cell, b: Cell) -> list[object]:
    """Paired by configuration when both arms ran the same ones (they do in a whole run):
    exact McNemar p and Newcombe's paired interval. Else, e.g. an interrupted run, the
    independent-samples interval, marked as such."""
    try:
        pc = paired_comparison(outcomes(episodes, arm, task), outcomes(episodes, base, task))
    except ValueError:
        d, lo, hi = newcombe_difference(c.successes, c.episodes, b.successes, b.episodes)
        return [f"{100 * d:+.0f} [{100 * lo:+.0f}, {100 * hi:+.0f}] (unpaired)", "-"]
    return [f"{100 * pc.diff:+.0f} [{100 * pc.lo:+.0f}, {100 * pc.hi:+.0f}]",
            f"{pc.only_a}/{pc.only_b}, p = {pc.p_value:.3g}"]


def _perturbations(r: Report, episodes: Sequence[EpisodeResult]) -> list[str]:
    by = {(c.task, c.arm): c for c in r.cells}
    rows = []
    for arm in r.meta.arms:
        if arm.name == "router" or arm.family != "router":
            continue
        for t in r.meta.tasks:
            base, c = by.get((t, "router")), by.get((t, arm.name))
            if base and c:
                rows.append([arm.name, t, _pct(c.success_rate), _pct(base.success_rate),
                             *_difference(episodes, arm.name, "router", t, c, base),
                             f"{100 * c.deadline_miss_rate:.1f}%",
                             f"{100 * c.fallback_rate:.1f}%"])
    if not rows:
        return ["No perturbed router arm together with the `router` arm in this run."]
    return ["Paired by configuration (every arm runs the same ones): the difference's 95% "
            "interval is Newcombe's paired score interval (1998, method 10); discordant pairs "
            "are configurations only the perturbed arm / only the router arm solved, and p is "
            "the exact two-sided McNemar test on them.", "",
            *_table(("arm", "task", "success", "router arm", "difference, points [95% CI]",
                     "discordant, exact McNemar", "deadline miss", "fallback"), rows)]


def _stale(r: Report, episodes: Sequence[EpisodeResult]) -> list[str]:
    out = []
    for arm in r.meta.arms:
        flagged = [s for s in arm.metrics.get("router_calibration_stale", []) if s.value == 1]
        answers = Counter(str(e.feedback.get("calibration_stale")) for e in episodes
                          if e.arm == arm.name)
        first = next((i for i, e in enumerate(x for x in episodes if x.arm == arm.name)
                      if e.feedback.get("calibration_stale") is True), None)
        if arm.name == "stale_calibration" or flagged:
            pairs = ", ".join(f"{s.labels.get('task')}/{s.labels.get('policy')}"
                              for s in flagged) or "none"
            out.append(f"- `{arm.name}`: `router_calibration_stale` = 1 at the arm's end for "
                       f"{len(flagged)} (task, policy) pair(s): {pairs}. Feedback answers "
                       f"calibration_stale true/false/null: {answers.get('True', 0)}/"
                       f"{answers.get('False', 0)}/{answers.get('None', 0)}"
                       + (f"; first flagged on the arm's episode #{first + 1}." if first
                          is not None else "; never flagged by feedback."))
    return out or ["No arm raised `router_calibration_stale`."]


def _failures(r: Report) -> list[str]:
    arms = [a.name for a in r.meta.arms]
    counts = Counter((f.episode.arm, f.attribution.label) for f in r.failures)
    labels: tuple[str, ...]
    rules: tuple[tuple[str, str], ...]
    if r.attribution_method == "counterfactual":
        labels, rules = COUNTERFACTUAL_LABELS, COUNTERFACTUAL_RULES
        out = [f"Method: **counterfactual** ({r.attribution_note}). Each failed episode is "
               "compared with the same configuration under the reference arm; the label names "
               "the one recorded factor in which the two runs differ:", ""]
        out += [f"- **{label}**: {text}" for label, text in rules]
    else:
        labels, rules = LABELS, RULES
        out = [f"Method: **rule-based fallback** ({r.attribution_note}). Rules, checked in "
               "this order; the first that matches is the episode's one label:", ""]
        out += [f"{i}. **{label}**: {text}" for i, (label, text) in enumerate(rules, 1)]
    out += ["", *_table(("arm", *labels, "failed"), [
        [a, *(counts[a, lb] for lb in labels), sum(counts[a, lb] for lb in labels)]
        for a in arms])]
    subs = Counter((f.episode.arm, f.attribution.subcategory) for f in r.failures
                   if f.attribution.label == MODEL_ERROR and f.attribution.subcategory)
    if subs:
        out += ["", "Model errors by sub-category (assigned only on recorded evidence):", "",
                *_table(("arm", *MODEL_SUBCATEGORIES), [
                    [a, *(subs[a, s] for s in MODEL_SUBCATEGORIES)] for a in arms
                    if any(subs[a, s] for s in MODEL_SUBCATEGORIES)])]
    examples: dict[str, Failure] = {}
    for f in r.failures:
        examples.setdefault(f.attribution.label, f)
    if examples:
        out += ["", "One example per label (all of them with evidence: failures.jsonl):", ""]
        out += [f"- {lb}: `{f.episode.episode_id}` ({f.episode.arm}, {f.episode.task}): "
                f"{f.attribution.summary}; trace `{f.episode.trace}`"
                for lb, f in examples.items()]
    return out


def _calibration_loop(r: Report) -> list[str]:
    loop = r.meta.calibration_loop
    if not loop:
        return ["Not written in this run (needs the generalist and specialist arms)."]
    out = [f"- Closed-loop table (`source: closed_loop`, rows from the generalist and "
           f"specialist arms): `{loop.get('table')}`",
           f"- Contract pointing at it: `{loop.get('contract')}`",
           "- To make a running router use it: `python -m evaluation apply-calibration "
           f"--result {_display(r.path)} --router-url URL --admin-key KEY` (a POST to "
           "/v1/admin/contract/reload with that contract, then a check of GET /v1/contract)."]
    if "verified" in loop:
        out.append(f"- Checked in this run on a router of the stack: {loop['verified']}")
    return out


def render(r: Report, episodes: Sequence[EpisodeResult],
           confusion_rows: Sequence[dict[str, object]]) -> str:
    m = r.meta
    targets = ", ".join(f"{t} {_pct(v)}" for t, v in m.success_targets.items())
    lines = [f"# Closed-loop evaluation: panel `{m.panel}`", "", "## Setup", "", *_setup(r),
             "", "## Arms", "", *_arms(r), "", "## Task × arm matrix", "",
             "Latency is the round trip the robot measured (HTTP/gRPC + router + Triton); "
             "deadline miss = steps with no usable action within the deadline; fallback = "
             "steps the router served from a fallback route or hold. Raw: matrix.csv, "
             "episodes.jsonl.", "", *_table(CELL_HEADER, [_cell_row(c) for c in r.cells]),
             "", "Per arm over all tasks:", "",
             *_table(CELL_HEADER, [_cell_row(c) for c in r.totals]),
             "", "## Evaluation overhead", "", *overhead_section(m, episodes),
             "", "## What the router did", "", "A route stays with an episode (sticky) "
             "after its first decision unless it fails or is late; a fallback's route becomes "
             "the sticky one.", "", *_behaviour(r, episodes),
             "", "## Router confusion (task hidden)", "", *_confusion(r, episodes,
                                                                      confusion_rows),
             "", "## Perturbations against the router arm", "", *_perturbations(r, episodes),
             "", "## Stale calibration", "", *_stale(r, episodes),
             "", "## Failure attribution", "", *_failures(r),
             "", "## Calibration loop", "", *_calibration_loop(r),
             "", "## Plots", "", "![success](plots/success_heatmap.png)",
             "![confusion](plots/confusion_matrix.png)", "![latency](plots/latency_cdf.png)",
             "", "## Decision", "",
             f"Contract: success targets {targets}; "
             f"latency budget: p99 round trip ≤ {m.deadline_ms:g} ms.", "",
             f"Decision rule: {r.decision.rule}", "",
             *r.decision.lines, ""]
    return "\n".join(lines)
