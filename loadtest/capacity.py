"""Capacity search: the largest fleet (robots at the scenario's control rate) that meets the SLA.

Grow the fleet geometrically from `start` until a step fails (or `max_robots` passes), then bisect
between the last passing and the first failing fleet until they are `resolution` robots apart.
Each step is a short, complete run whose raw records are kept, long enough for at least
`--min-step-requests` requests (a 99.9% SLA over 750 requests tolerates no miss at all).
Bisection assumes pass/fail is monotone in fleet size; short runs are noisy near the knee, so
read the step table, not only the answer (a step whose generator sent late is flagged: there
the client, not the server, may have been the limit).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loadtest.report import cell


@dataclass(frozen=True)
class Step:
    robots: int
    passed: bool
    row: dict[str, Any]


def step_duration_s(robots: int, control_hz: float, step_s: float, ramp_s: float,
                    min_requests: int) -> float:
    """How long a step of `robots` runs: `step_s`, or longer when that would measure fewer than
    `min_requests` after the ramp (small fleets: the SLA's tolerated misses must be more than a
    fraction of one request for the verdict to measure the path, not one straggler)."""
    return max(step_s, ramp_s + min_requests / (robots * control_hz))


def search_capacity(
    evaluate: Callable[[int], Step], start: int, max_robots: int, resolution: int = 1
) -> tuple[int | None, list[Step]]:
    """Return (largest passing fleet or None, steps in the order run). Pure but for `evaluate`."""
    if start < 1 or max_robots < start or resolution < 1:
        raise ValueError("need 1 <= start <= max_robots and resolution >= 1")
    steps: list[Step] = []
    tried: dict[int, bool] = {}

    def probe(robots: int) -> bool:
        if robots not in tried:
            step = evaluate(robots)
            steps.append(step)
            tried[robots] = step.passed
        return tried[robots]

    lo, hi = 0, None  # lo: largest known pass (0 = none); hi: smallest known fail
    robots = start
    while True:
        if probe(robots):
            lo = robots
            if robots >= max_robots:
                return lo, steps
            robots = min(robots * 2, max_robots)
        else:
            hi = robots
            break
    while hi - lo > resolution:
        mid = (lo + hi) // 2
        if mid == lo:
            break
        if probe(mid):
            lo = mid
        else:
            hi = mid
    return (lo or None), steps


def step_row(robots: int, result: dict[str, Any], out_dir: str) -> dict[str, Any]:
    s = result["summary"]
    o = s["overall"]
    return {
        "robots": robots,
        "offered_rate_hz": o["offered_rate_hz"],
        "achieved_rate_hz": o["achieved_rate_hz"],
        "p50_ms": o["latency_ms"]["p50"],
        "p99_ms": o["latency_ms"]["p99"],
        "p99.9_ms": o["latency_ms"]["p99.9"],
        "fraction_within_budget": o["fraction_within_budget"],
        "errors": o["errors"],
        "generator_lag_p99_ms": s["generator_lag"]["p99_ms"],
        "generator_late": s["generator_lag"]["late"],
        "pass": o["verdict"]["pass"],
        "requests": o["requests"],
        "duration_s": result["scenario"]["duration_s"],
        "result_dir": out_dir,
        "shed_by_reason": shed_by_reason(result),
    }


def shed_by_reason(result: dict[str, Any]) -> dict[str, float] | None:
    """The router's `router_shed_total` deltas by reason over the step (None: not scraped,
    `--metrics-url` not given): why a step that failed at low load refused what it did."""
    metrics = result.get("metrics_delta")
    if not metrics:
        return None
    return {series["labels"].get("reason", ""): series["delta"] for series in metrics["series"]
            if series["name"] == "router_shed_total"}


def format_steps(steps: list[Step], best: int | None) -> str:
    head = (
        f"{'robots':>7}{'offered/s':>11}{'ok/s':>10}{'p50':>8}{'p99':>8}{'p99.9':>8}"
        f"{'in budget':>11}{'errors':>8}{'gen lag p99':>13}  verdict"
    )
    lines = [head, "-" * len(head)]

    for st in sorted(steps, key=lambda s: s.robots):
        r = st.row
        lines.append(
            f"{st.robots:>7}{cell(r['offered_rate_hz'], 11, 1)}{cell(r['achieved_rate_hz'], 10, 1)}"
            f"{cell(r['p50_ms'], 8, 2)}{cell(r['p99_ms'], 8, 2)}{cell(r['p99.9_ms'], 8, 2)}"
            f"{cell(r['fraction_within_budget'], 11, 5)}{r['errors']:>8}"
            f"{cell(r['generator_lag_p99_ms'], 13, 2)}  {'PASS' if st.passed else 'FAIL'}"
            + ("  (generator late)" if r["generator_late"] else "")
        )
    lines.append(
        f"capacity: {best} robots meet the SLA" if best else "capacity: no fleet size met the SLA"
    )
    return "\n".join(lines)
