"""Writes the result folder's report files from `run.json` + `episodes.jsonl` alone:
matrix.csv, confusion.csv, routes.csv, failures.jsonl, plots/*.png and report.md.

    python -m evaluation report results/eval/<stamp>     # rebuild the report of a finished run
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from evaluation.arms import Perturbation
from evaluation.attribution import Attribution, AttributionContext, Method, attribute
from evaluation.contracts import TableRow, load_table, row_from_counts
from evaluation.counterfactual import counterfactual
from evaluation.decision import (
    GENERALIST_ARM,
    ROUTER_ARM,
    SPECIALIST_ARM,
    ContractTargets,
    Decision,
    decide,
)
from evaluation.meta import RunMeta, read_meta
from evaluation.plots import confusion_matrix, latency_cdf, success_heatmap
from evaluation.records import EpisodeResult, read_jsonl
from evaluation.report_md import render
from evaluation.stats import PairedComparison, paired_comparison
from evaluation.tables import (
    CONFUSION_COLUMNS,
    ROUTE_COLUMNS,
    Cell,
    arm_totals,
    confusion,
    latencies_by_route,
    matrix,
    outcomes,
    route_usage,
    write_csv,
    write_matrix,
)

EPISODES_FILE, META_FILE = "episodes.jsonl", "run.json"
# Arms whose latency is shaped on purpose: plotted apart so they do not blur the others.
LATENCY_PERTURBED = ("slow_specialist",)


@dataclass(frozen=True)
class Failure:
    episode: EpisodeResult
    attribution: Attribution


@dataclass(frozen=True)
class Report:
    meta: RunMeta
    cells: list[Cell]
    totals: list[Cell]
    decision: Decision
    failures: list[Failure]
    path: Path
    attribution_method: Method = "rules"
    attribution_note: str = ""  # which reference arm, or why there was none


def targets(meta: RunMeta) -> ContractTargets:
    return ContractTargets(tuple(meta.tasks), meta.success_targets, meta.deadline_ms,
                           meta.generalist, meta.specialist_for, meta.ops_cost)


# The counterfactual reference: the oracle arm, whose contract routes every task to its
# specialist, with the task declared, no perturbation and the build's calibration table.
REFERENCE_ARM = SPECIALIST_ARM


def reference_problem(meta: RunMeta, name: str = REFERENCE_ARM) -> str | None:
    """Why arm `name` cannot serve as the counterfactual reference (None: it can)."""
    arm = meta.arm(name)
    if arm is None:
        return f"no `{name}` arm in this run"
    if arm.family != "specialist" or not arm.declare_task:
        return f"arm `{name}` is not the oracle route with the task declared"
    if Perturbation(**arm.perturbation) != Perturbation():
        return f"arm `{name}` is perturbed"
    if Path(arm.calibration_table).resolve() != Path(meta.reference_table).resolve():
        return f"arm `{name}` did not route by the reference calibration table"
    return None


def contexts(meta: RunMeta) -> dict[str, AttributionContext]:
    reference = load_table(Path(meta.reference_table))
    out = {}
    for arm in meta.arms:
        table_path = Path(arm.calibration_table)
        out[arm.name] = AttributionContext(
            route_tasks={k: tuple(v) for k, v in arm.route_tasks.items()},
            perturbation=Perturbation(**arm.perturbation),
            arm_table=load_table(table_path) if table_path.is_file() else {},
            reference_table=reference,
            family=arm.family,
        )
    return out


def attribute_all(episodes: Sequence[EpisodeResult], meta: RunMeta
                  ) -> tuple[list[Failure], Method, str]:
    """Every failed episode's label: counterfactual against the reference arm when the run has
    a clean one, else the symptom rules. (failures, method used, note saying why)."""
    ctxs = contexts(meta)
    problem = reference_problem(meta)
    method: Method = "rules" if problem else "counterfactual"
    note = (f"no clean reference arm ({problem}): symptom rules on each episode alone"
            if problem else f"counterfactual against arm `{REFERENCE_ARM}`, same configuration")
    refs = {(e.task, e.config_index): e for e in episodes if e.arm == REFERENCE_ARM}
    # The unperturbed router arm splits route × perturbation for the perturbed router arms.
    plain = meta.arm(ROUTER_ARM)
    unperturbed = {(e.task, e.config_index): e for e in episodes if e.arm == ROUTER_ARM} if (
        plain is not None and plain.declare_task
        and Perturbation(**plain.perturbation) == Perturbation()
        and Path(plain.calibration_table).resolve() == Path(meta.reference_table).resolve()
    ) else {}
    failures = []
    for e in episodes:
        if e.success:
            continue
        ctx = ctxs.get(e.arm) or AttributionContext(route_tasks={})
        if method == "counterfactual":
            key = (e.task, e.config_index)
            found = counterfactual(e, ctx, refs.get(key), ctxs.get(REFERENCE_ARM),
                                   unperturbed.get(key) if e.arm != ROUTER_ARM else None)
        else:
            found = attribute(e, ctx)
        assert found is not None  # every failed episode gets a label
        failures.append(Failure(e, found))
    return failures, method, note


def router_vs_generalist(episodes: Sequence[EpisodeResult], tasks: Sequence[str]
                         ) -> dict[str, PairedComparison]:
    """Per task, the router arm against the generalist arm paired by configuration; a task
    whose two arms did not run the same configurations (an interrupted run) is left out and
    compared unpaired by the decision."""
    out = {}
    for t in tasks:
        r, g = outcomes(episodes, ROUTER_ARM, t), outcomes(episodes, GENERALIST_ARM, t)
        if r and g:
            try:
                out[t] = paired_comparison(r, g)
            except ValueError:
                continue
    return out


def closed_loop_rows(cells: Sequence[Cell], meta: RunMeta) -> list[TableRow]:
    """The oracle arms measure each policy on each task: the fresh calibration table."""
    rows = []
    for c in cells:
        if c.arm == GENERALIST_ARM:
            rows.append(row_from_counts(c.task, meta.generalist, c.episodes, c.successes))
        elif c.arm == SPECIALIST_ARM and c.task in meta.specialist_for:
            rows.append(row_from_counts(c.task, meta.specialist_for[c.task], c.episodes,
                                        c.successes))
    return rows


def _write_failures(path: Path, failures: Sequence[Failure]) -> None:
    with path.open("w") as handle:
        for f in failures:
            e = f.episode
            handle.write(json.dumps({
                "episode_id": e.episode_id, "arm": e.arm, "task": e.task,
                "config_index": e.config_index, "robot_id": e.robot_id,
                "label": f.attribution.label, "subcategory": f.attribution.subcategory,
                "method": f.attribution.method, "summary": f.attribution.summary,
                "evidence": f.attribution.evidence, "steps": e.steps, "trace": e.trace,
            }) + "\n")


def build(result_dir: Path) -> Report:
    meta = read_meta(result_dir / META_FILE)
    episodes = read_jsonl(result_dir / EPISODES_FILE)
    arm_names = [a.name for a in meta.arms]
    cells = matrix(episodes, meta.tasks, arm_names)
    totals = arm_totals(episodes, arm_names)
    write_matrix(result_dir / "matrix.csv", cells)
    confusion_rows = confusion(episodes)
    write_csv(result_dir / "confusion.csv", CONFUSION_COLUMNS, confusion_rows)
    write_csv(result_dir / "routes.csv", ROUTE_COLUMNS, route_usage(episodes))
    failures, method, note = attribute_all(episodes, meta)
    _write_failures(result_dir / "failures.jsonl", failures)
    decision = decide(cells, targets(meta), router_vs_generalist(episodes, meta.tasks))

    plots = result_dir / "plots"
    plots.mkdir(exist_ok=True)
    success_heatmap(plots / "success_heatmap.png", cells, meta.tasks, arm_names)
    hidden = [a.name for a in meta.arms if not a.declare_task] or arm_names
    confusion_matrix(plots / "confusion_matrix.png", confusion_rows, meta.tasks, hidden)
    panels = {"all arms without injected latency": latencies_by_route(
        e for e in episodes if e.arm not in LATENCY_PERTURBED)}
    for arm in LATENCY_PERTURBED:
        if arm in arm_names:
            panels[f"{arm} arm"] = latencies_by_route(e for e in episodes if e.arm == arm)
    latency_cdf(plots / "latency_cdf.png", panels, meta.deadline_ms)

    report = Report(meta, cells, totals, decision, failures, result_dir, method, note)
    (result_dir / "report.md").write_text(render(report, episodes, confusion_rows))
    return report


def matrix_text(cells: Sequence[Cell]) -> str:
    """The matrix as printed at the end of a run."""
    head = (f"{'task':<22} {'arm':<18} {'n':>3} {'succ':>5} {'95% CI':>13} {'p50ms':>6} "
            f"{'p99ms':>6} {'miss':>6} {'fallbk':>6}  main route")
    lines = [head, "-" * len(head)]
    for c in cells:
        d = asdict(c)
        lines.append(
            f"{c.task:<22} {c.arm:<18} {c.episodes:>3} {c.success_rate:>5.0%} "
            f"[{c.ci95_lo:>4.0%},{c.ci95_hi:>5.0%}] {c.p50_latency_ms:>6.1f} "
            f"{c.p99_latency_ms:>6.1f} {d['deadline_miss_rate']:>6.1%} {c.fallback_rate:>6.1%}"
            f"  {c.main_route} ({c.main_route_share:.0%})")
    return "\n".join(lines)


def rebuild(result_dir: Path) -> Report:
    if not (result_dir / META_FILE).is_file():
        raise FileNotFoundError(f"{result_dir / META_FILE}: not a result folder")
    return build(result_dir)
