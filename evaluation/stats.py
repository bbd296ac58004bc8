"""Interval and percentile maths for the report. Pure functions."""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import binom

from router_service.intervals import WILSON_Z, wilson_interval

__all__ = ["WILSON_Z", "PairedComparison", "ecdf", "mcnemar_exact_p", "newcombe_difference",
           "newcombe_paired_difference", "pair_outcomes", "paired_comparison", "percentile",
           "rate", "wilson_interval"]


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
    if len(values) == 0:
        return math.nan
    return float(np.percentile(values, q))


def ecdf(values: Sequence[float]) -> tuple[list[float], list[float]]:
    """Sorted values and the fraction of values <= each."""
    ordered = sorted(values)
    n = len(ordered)
    return ordered, [(i + 1) / n for i in range(n)]


def rate(count: int, total: int) -> float:
    return count / total if total else 0.0


# --- Paired comparisons: two arms run on the same configurations --------------------------
# Every arm of a run sees the same configurations (task, configuration index), so two arms'
# outcomes are paired; the independent-samples Newcombe interval above ignores that pairing and
# is too wide when the arms agree on most configurations. Only the discordant pairs carry
# information about the difference.


@dataclass(frozen=True)
class PairedComparison:
    """Arm A against arm B on the same configurations: the 2×2 table of paired outcomes, the
    exact McNemar p-value and the Newcombe (1998b, method 10) interval for p_A - p_B."""

    both: int  # a: A and B succeeded
    only_a: int  # b: A succeeded, B failed
    only_b: int  # c: A failed, B succeeded
    neither: int  # d: both failed
    diff: float  # p_A - p_B = (b - c) / n
    lo: float
    hi: float
    p_value: float  # exact two-sided McNemar (binomial on the discordant pairs)

    @property
    def pairs(self) -> int:
        return self.both + self.only_a + self.only_b + self.neither

    @property
    def verdict(self) -> str:
        return "better" if self.lo > 0 else "worse" if self.hi < 0 else "no significant difference"


def mcnemar_exact_p(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: under H0 each of the b + c discordant pairs is equally
    likely to go either way, so min(b, c) ~ Binomial(b + c, 1/2); p = min(1, 2 P(X <= min)).
    1.0 when there is no discordant pair (no evidence either way)."""
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be >= 0, got b={b}, c={c}")
    if b + c == 0:
        return 1.0
    return min(1.0, 2.0 * float(binom.cdf(min(b, c), b + c, 0.5)))


def newcombe_paired_difference(a: int, b: int, c: int, d: int, z: float = WILSON_Z
                               ) -> tuple[float, float, float]:
    """(p_A - p_B, lo, hi) for paired proportions: Newcombe (1998b) method 10, the Wilson score
    limits of the two marginal rates combined with the estimated correlation phi between them
    (the phi numerator corrected as in Newcombe's paper and Fagerland et al. 2014: ad - bc
    shrunk by n/2 when positive, 0 in [0, n/2]). Good coverage at small n, where a Wald
    interval on (b - c)/n is far too narrow; no continuity correction on the Wilson limits."""
    if min(a, b, c, d) < 0:
        raise ValueError(f"counts must be >= 0, got {(a, b, c, d)}")
    n = a + b + c + d
    if n == 0:
        return 0.0, -1.0, 1.0
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson_interval(a + b, n, z)
    l2, u2 = wilson_interval(a + c, n, z)
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    cross = a * d - b * c
    if margins == 0 or 0 <= cross <= n / 2:
        phi = 0.0
    else:
        phi = (cross - n / 2 if cross > 0 else cross) / math.sqrt(margins)
    diff = p1 - p2
    lo = diff - math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2)
                              + (u2 - p2) ** 2))
    hi = diff + math.sqrt(max(0.0, (p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1)
                              + (u1 - p1) ** 2))
    return diff, max(-1.0, lo), min(1.0, hi)


def pair_outcomes(a: Sequence[tuple[Hashable, bool]], b: Sequence[tuple[Hashable, bool]]
                  ) -> list[tuple[bool, bool]]:
    """Per-configuration outcomes of two arms, (configuration, success) each, joined on the
    configuration. Pairing is only valid when both arms ran exactly the same configurations
    once each, so anything else is an error, never silently dropped."""
    out = []
    for name, side in (("A", a), ("B", b)):
        keys = [k for k, _ in side]
        if len(set(keys)) != len(keys):
            dupes = sorted({repr(k) for k in keys if keys.count(k) > 1})
            raise ValueError(f"arm {name} lists a configuration twice: {', '.join(dupes)}")
    ma, mb = dict(a), dict(b)
    if ma.keys() != mb.keys():
        only_a = sorted(repr(k) for k in ma.keys() - mb.keys())
        only_b = sorted(repr(k) for k in mb.keys() - ma.keys())
        raise ValueError("the two arms did not run the same configurations: only in A "
                         f"[{', '.join(only_a)}], only in B [{', '.join(only_b)}]")
    for key, success in a:
        out.append((success, mb[key]))
    return out


def paired_comparison(a: Sequence[tuple[Hashable, bool]], b: Sequence[tuple[Hashable, bool]],
                      z: float = WILSON_Z) -> PairedComparison:
    """Arm A against arm B, paired by configuration (see pair_outcomes)."""
    pairs = pair_outcomes(a, b)
    counts = {(x, y): 0 for x in (True, False) for y in (True, False)}
    for pair in pairs:
        counts[pair] += 1
    both, only_a = counts[True, True], counts[True, False]
    only_b, neither = counts[False, True], counts[False, False]
    diff, lo, hi = newcombe_paired_difference(both, only_a, only_b, neither, z)
    return PairedComparison(both, only_a, only_b, neither, diff, lo, hi,
                            mcnemar_exact_p(only_a, only_b))
