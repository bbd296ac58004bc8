"""Interval and percentile maths for the report. Pure functions, no numpy state."""

from __future__ import annotations

import math
from collections.abc import Sequence

from router_service.intervals import WILSON_Z, wilson_interval

__all__ = ["WILSON_Z", "ecdf", "newcombe_difference", "percentile", "rate", "wilson_interval"]

def newcombe_difference(
    successes_a: int, n_a: int, successes_b: int, n_b: int, z: float = WILSON_Z
) -> tuple[float, float, float]:
    """(p_a - p_b, lo, hi): Newcombe's hybrid score interval for a difference of two independent
    proportions, built from the two Wilson intervals (good coverage at small n, unlike Wald)."""
    if n_a == 0 or n_b == 0:
        return 0.0, -1.0, 1.0
    pa, pb = successes_a / n_a, successes_b / n_b
    la, ua = wilson_interval(successes_a, n_a, z)
    lb, ub = wilson_interval(successes_b, n_b, z)
    diff = pa - pb
    lo = diff - math.sqrt((pa - la) ** 2 + (ub - pb) ** 2)
    hi = diff + math.sqrt((ua - pa) ** 2 + (pb - lb) ** 2)
    return diff, max(-1.0, lo), min(1.0, hi)


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation percentile (numpy's default), q in [0, 100]; NaN for no values."""
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile q must be in [0, 100], got {q}")
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def ecdf(values: Sequence[float]) -> tuple[list[float], list[float]]:
    """Sorted values and the fraction of values <= each."""
    ordered = sorted(values)
    n = len(ordered)
    return ordered, [(i + 1) / n for i in range(n)]


def rate(count: int, total: int) -> float:
    return count / total if total else 0.0
