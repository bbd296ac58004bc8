"""Report maths: pure functions over record columns.

Percentile method: nearest rank. The q-quantile of n values is the ceil(q*n)-th smallest
(numpy's method="inverted_cdf", Hyndman-Fan type 1): always a latency that was observed, never
an interpolation, and for the tail it is the conservative choice. Latency percentiles are over
OK responses only; the SLA is judged on *all* requests in the measured window, where an error,
an overflow, an unanswered request or (by default) a `hold` answer counts as a miss.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np
import numpy.typing as npt

from loadtest.records import Columns
from loadtest.scenario import SLA

F64 = npt.NDArray[np.float64]

PERCENTILES: tuple[tuple[str, float], ...] = (
    ("p50", 0.50),
    ("p90", 0.90),
    ("p99", 0.99),
    ("p99.9", 0.999),
)
PERCENTILE_METHOD = (
    "nearest-rank: the ceil(q*n)-th smallest latency (numpy method='inverted_cdf'), "
    "over OK responses; latency is measured from each request's scheduled send time"
)


def nearest_rank(values: npt.ArrayLike, q: float) -> float:
    """The ceil(q*n)-th smallest value; NaN for no values. `values` may contain +inf."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return math.nan
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be in [0, 1], got {q}")
    return float(np.quantile(arr, q, method="inverted_cdf"))


def latency_percentiles(latency_ms: npt.ArrayLike) -> dict[str, float | None]:
    arr = np.asarray(latency_ms, dtype=np.float64)
    out: dict[str, float | None] = {name: _num(nearest_rank(arr, q)) for name, q in PERCENTILES}
    out["max"] = _num(float(arr.max())) if arr.size else None
    out["mean"] = _num(float(arr.mean())) if arr.size else None
    return out


def within_budget(cols: Columns, sla: SLA) -> npt.NDArray[np.bool_]:
    """Per request: answered OK within the budget (from the scheduled time)."""
    with np.errstate(invalid="ignore"):
        hit = cols.ok & (cols.latency_ms <= sla.budget_ms)
    if sla.hold_counts_as_miss:
        hit &= cols.route != "hold"
    return np.asarray(hit, dtype=np.bool_)


def fraction_within_budget(cols: Columns, sla: SLA) -> float:
    n = len(cols)
    return float(within_budget(cols, sla).sum()) / n if n else math.nan


def latency_at_quantile_all(cols: Columns, sla: SLA) -> float:
    """Nearest-rank SLA quantile over all requests, misses counted as +inf latency.

    `fraction_within_budget >= q` holds exactly when this is <= budget_ms, so the two views of
    the verdict agree; inf means failures alone fill that quantile."""
    counted = cols.ok & np.isfinite(cols.latency_ms)
    if sla.hold_counts_as_miss:
        counted &= cols.route != "hold"
    lat = np.where(counted, cols.latency_ms, np.inf)
    return nearest_rank(lat, sla.quantile_within_budget)


def sla_verdict(fraction: float, requests: int, sla: SLA) -> dict[str, Any]:
    if requests == 0 or math.isnan(fraction):
        return {"pass": False, "reason": "no requests in the measured window"}
    ok = fraction >= sla.quantile_within_budget
    rel = ">=" if ok else "<"
    return {
        "pass": bool(ok),
        "reason": (
            f"{fraction:.5f} of {requests} requests answered OK within {sla.budget_ms:g} ms "
            f"{rel} required {sla.quantile_within_budget:g}"
        ),
    }


def group_summary(cols: Columns, sla: SLA, window_s: float,
                  deadline_ms: float | None = None) -> dict[str, Any]:
    """`deadline_ms`: the requests' deadline (default: the SLA budget), against which a reply
    that says `deadline_met: true` is checked from the robot's side."""
    n = len(cols)
    ok_lat = cols.latency_ms[cols.ok & np.isfinite(cols.latency_ms)]
    frac = fraction_within_budget(cols, sla)
    at_q = latency_at_quantile_all(cols, sla) if n else math.nan
    errors = ~cols.ok
    over_ms = cols.latency_ms - (deadline_ms if deadline_ms is not None else sla.budget_ms)
    with np.errstate(invalid="ignore"):
        flagged_late = cols.deadline_met_by_server & cols.ok & (over_ms > 0)
    return {
        "requests": n,
        "ok": int(cols.ok.sum()),
        "errors": int(errors.sum()),
        "offered_rate_hz": n / window_s if window_s > 0 else None,
        "achieved_rate_hz": int(cols.ok.sum()) / window_s if window_s > 0 else None,
        "latency_ms": latency_percentiles(ok_lat),
        "within_budget": int(within_budget(cols, sla).sum()),
        "fraction_within_budget": _num(frac),
        "latency_at_sla_quantile_ms": _num(at_q),
        "errors_by_kind": _counts(cols.error_kind[errors]),
        "status_counts": _counts(cols.status),
        "fallbacks": int(cols.fallback.sum()),
        "server_reported_deadline_miss": int(cols.deadline_missed_by_server.sum()),
        # The honesty check: answered after the deadline at the client, yet flagged on time.
        "late_but_flagged_met": int(flagged_late.sum()),
        # How late those were: next to the generator's own lag, it says whose delay it was.
        "late_but_flagged_met_by_ms": {
            "p50": _num(nearest_rank(over_ms[flagged_late], 0.5)),
            "max": _num(float(over_ms[flagged_late].max())) if flagged_late.any() else None,
        },
        "hold_share": float((cols.route == "hold").sum() / n) if n else None,
        "shed_share": float((cols.error_kind == "shed").sum() / n) if n else None,
        "verdict": sla_verdict(frac, n, sla),
    }


def generator_lag(cols: Columns, sla: SLA) -> dict[str, Any]:
    """How late the generator itself sent (sent - scheduled). Event-loop timers alone make this
    ~1 ms; much more means the run measured the generator's CPU starvation as much as the
    server, so `late` flags a p99 above max(2 ms, 10% of the budget)."""
    lag = (cols.sent_s - cols.scheduled_s)[np.isfinite(cols.sent_s)] * 1000.0
    p99 = nearest_rank(lag, 0.99)
    limit = max(2.0, 0.1 * sla.budget_ms)
    return {
        "p50_ms": _num(nearest_rank(lag, 0.5)),
        "p99_ms": _num(p99),
        "max_ms": _num(float(lag.max())) if lag.size else None,
        "late": bool(lag.size and p99 > limit),
        "late_threshold_ms": limit,
    }


def summarize(
    cols: Columns, sla: SLA, window_start_s: float, window_end_s: float,
    deadline_ms: float | None = None,
) -> dict[str, Any]:
    """Overall and per-route summary over requests scheduled in [window_start, window_end)."""
    in_window = (cols.scheduled_s >= window_start_s) & (cols.scheduled_s < window_end_s)
    measured = cols.select(in_window)
    window_s = window_end_s - window_start_s
    routes = sorted(set(measured.route.tolist()))
    return {
        "percentile_method": PERCENTILE_METHOD,
        "window_s": [window_start_s, window_end_s],
        "excluded_ramp_requests": int((cols.scheduled_s < window_start_s).sum()),
        "overall": group_summary(measured, sla, window_s, deadline_ms),
        "routes": {
            r: group_summary(measured.select(measured.route == r), sla, window_s, deadline_ms)
            for r in routes
        },
        "generator_lag": generator_lag(measured, sla),
    }


def _counts(values: npt.NDArray[np.str_]) -> dict[str, int]:
    return {k: int(v) for k, v in sorted(Counter(values.tolist()).items())}


def _num(x: float) -> float | None:
    """JSON has no NaN/inf: report them as null (the reason is stated next to the number)."""
    return None if (x is None or math.isnan(x) or math.isinf(x)) else float(x)
