"""The run's tables, computed from episode records only: the task × arm matrix, the router
confusion (true task × task the router acted on), and the routes each arm used."""

from __future__ import annotations

import csv
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from evaluation.records import NO_REPLY, EpisodeResult
from evaluation.stats import percentile, rate, wilson_interval


@dataclass(frozen=True)
class Cell:
    task: str
    arm: str
    episodes: int
    successes: int
    success_rate: float
    ci95_lo: float
    ci95_hi: float
    p50_latency_ms: float  # robot-measured round trip of replied steps
    p99_latency_ms: float
    deadline_miss_rate: float  # steps with no usable action within the deadline
    fallback_rate: float  # steps served by a fallback route or hold
    router_p99_ms: float  # the router's own receipt-to-reply time
    shed_or_error_rate: float  # steps with no reply at all
    wrong_task_rate: float  # steps acted on for another task
    main_route: str
    main_route_share: float
    steps: int
    eval_errors: int


MATRIX_COLUMNS = tuple(f.name for f in fields(Cell))
CONFUSION_COLUMNS = ("arm", "true_task", "routed_task", "steps", "share", "episodes_majority")
ROUTE_COLUMNS = ("arm", "task", "route", "steps", "share")


def _r(value: float, digits: int = 4) -> float:
    return value if math.isnan(value) else round(value, digits)


def cell(task: str, arm: str, episodes: Sequence[EpisodeResult]) -> Cell:
    n = len(episodes)
    wins = sum(e.success for e in episodes)
    lo, hi = wilson_interval(wins, n)
    latencies = [v for e in episodes for v in e.replied_latencies()]
    router_ms = [v for e in episodes for v in e.router_total_ms if v >= 0]
    steps = sum(len(e.routes) for e in episodes)
    routes: Counter[str] = Counter()
    for e in episodes:
        routes.update(e.route_counts())
    main, main_n = routes.most_common(1)[0] if routes else (NO_REPLY, 0)
    no_reply = sum(1 for e in episodes for r in e.routes if r == NO_REPLY)
    return Cell(
        task=task, arm=arm, episodes=n, successes=wins, success_rate=_r(rate(wins, n)),
        ci95_lo=_r(lo), ci95_hi=_r(hi),
        p50_latency_ms=_r(percentile(latencies, 50), 3),
        p99_latency_ms=_r(percentile(latencies, 99), 3),
        deadline_miss_rate=_r(rate(sum(sum(e.late) for e in episodes), steps)),
        fallback_rate=_r(rate(sum(sum(e.fallback) for e in episodes), steps)),
        router_p99_ms=_r(percentile(router_ms, 99), 3),
        shed_or_error_rate=_r(rate(no_reply, steps)),
        wrong_task_rate=_r(rate(sum(e.wrong_task_steps() for e in episodes), steps)),
        main_route=main, main_route_share=_r(rate(main_n, sum(routes.values()))),
        steps=steps, eval_errors=sum(e.eval_error is not None for e in episodes),
    )


def group(episodes: Iterable[EpisodeResult]) -> dict[tuple[str, str], list[EpisodeResult]]:
    groups: dict[tuple[str, str], list[EpisodeResult]] = defaultdict(list)
    for e in episodes:
        groups[e.task, e.arm].append(e)
    return groups


def matrix(episodes: Sequence[EpisodeResult], tasks: Sequence[str], arms: Sequence[str]
           ) -> list[Cell]:
    groups = group(episodes)
    return [cell(t, a, groups[t, a]) for a in arms for t in tasks if groups.get((t, a))]


def arm_totals(episodes: Sequence[EpisodeResult], arms: Sequence[str]) -> list[Cell]:
    return [cell("(all tasks)", a, eps) for a in arms
            if (eps := [e for e in episodes if e.arm == a])]


def confusion(episodes: Sequence[EpisodeResult]) -> list[dict[str, object]]:
    """Per arm: true task × task the router acted on, in steps (and episodes by majority)."""
    steps: Counter[tuple[str, str, str]] = Counter()
    majority: Counter[tuple[str, str, str]] = Counter()
    totals: Counter[tuple[str, str]] = Counter()
    for e in episodes:
        replied = [t for t in e.resolved_tasks if t != NO_REPLY]
        for t in replied:
            steps[e.arm, e.task, t] += 1
            totals[e.arm, e.task] += 1
        if replied:
            majority[e.arm, e.task, Counter(replied).most_common(1)[0][0]] += 1
    return [{"arm": a, "true_task": t, "routed_task": r, "steps": n,
             "share": round(n / totals[a, t], 4), "episodes_majority": majority[a, t, r]}
            for (a, t, r), n in sorted(steps.items())]


def route_usage(episodes: Sequence[EpisodeResult]) -> list[dict[str, object]]:
    counts: Counter[tuple[str, str, str]] = Counter()
    totals: Counter[tuple[str, str]] = Counter()
    for e in episodes:
        for route in e.routes:
            counts[e.arm, e.task, route or "(no reply)"] += 1
            totals[e.arm, e.task] += 1
    return [{"arm": a, "task": t, "route": r, "steps": n, "share": round(n / totals[a, t], 4)}
            for (a, t, r), n in sorted(counts.items())]


def latencies_by_route(episodes: Iterable[EpisodeResult]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = defaultdict(list)
    for e in episodes:
        for route, ms in zip(e.routes, e.rtt_ms, strict=True):
            if route != NO_REPLY:
                out[route].append(ms)
    return dict(out)


def write_csv(path: Path, columns: Sequence[str], rows: Iterable[dict[str, object]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns))
        writer.writeheader()
        for row in rows:
            writer.writerow(row)


def write_matrix(path: Path, cells: Sequence[Cell]) -> None:
    write_csv(path, MATRIX_COLUMNS, (asdict(c) for c in cells))


def outcomes(episodes: Iterable[EpisodeResult], arm: str, task: str) -> list[tuple[int, bool]]:
    """(configuration index, success) of one arm on one task: the input of a paired
    comparison (stats.paired_comparison), since every arm runs the same configurations."""
    return [(e.config_index, e.success) for e in episodes if e.arm == arm and e.task == task]
