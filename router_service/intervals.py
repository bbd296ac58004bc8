"""The 95 % Wilson score interval: the one definition shared by the calibration table
(policies.offline_eval), the closed-loop evaluation and the router's stale-calibration check,
so "outside the interval" means the same thing everywhere."""

from __future__ import annotations

import math

WILSON_Z = 1.959963984540054  # two-sided 95 %


def wilson_interval(successes: int, n: int, z: float = WILSON_Z) -> tuple[float, float]:
    """(low, high) for `successes` out of `n`; (0, 1) when there is no data."""
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"need 0 <= successes <= n, got {successes}/{n}")
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # At k = 0 or k = n one bound is exactly 0 or 1; floating point would miss it by 1 ulp.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high
