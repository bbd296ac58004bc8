"""Wilson and Newcombe intervals, the exact McNemar test and percentiles against published
values, scipy and numpy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binomtest

from evaluation.stats import (
    ecdf,
    mcnemar_exact_p,
    newcombe_difference,
    newcombe_paired_difference,
    pair_outcomes,
    paired_comparison,
    percentile,
    rate,
    wilson_interval,
)
from policies.offline_eval import wilson_interval as offline_wilson
from router_service.feedback import wilson_interval as router_wilson


@pytest.mark.parametrize(("k", "n", "lo", "hi"), [
    (0, 10, 0.0, 0.2775),  # Newcombe (1998), table I
    (10, 10, 0.7225, 1.0),
    (81, 263, 0.2553, 0.3662),
    (15, 148, 0.0624, 0.1605),
])
def test_wilson_published_values(k: int, n: int, lo: float, hi: float) -> None:
    got = wilson_interval(k, n)
    assert got == pytest.approx((lo, hi), abs=1e-4)


def test_wilson_agrees_with_the_router_and_the_offline_table() -> None:
    # The router judges staleness with its own Wilson; the calibration tables use another.
    for n in (1, 5, 20, 30):
        for k in range(n + 1):
            ours = wilson_interval(k, n)
            assert ours == pytest.approx(router_wilson(k, n), abs=1e-4)  # its z is 1.96
            assert ours == pytest.approx(offline_wilson(k, n), abs=1e-9)


def test_wilson_edges() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_newcombe_published_example() -> None:
    # Newcombe (1998) example (method 10): 56/70 vs 48/80 -> 0.2000, CI 0.0524 to 0.3339.
    diff, lo, hi = newcombe_difference(56, 70, 48, 80)
    assert (diff, lo, hi) == pytest.approx((0.2, 0.0524, 0.3339), abs=1e-4)


def test_newcombe_identical_and_empty() -> None:
    diff, lo, hi = newcombe_difference(10, 20, 10, 20)
    assert diff == 0.0 and lo < 0 < hi
    assert newcombe_difference(0, 0, 5, 10) == (0.0, -1.0, 1.0)


@pytest.mark.parametrize("q", [0, 1, 25, 50, 90, 99, 100])
def test_percentile_matches_numpy(q: float) -> None:
    values = list(np.random.default_rng(1).lognormal(2.0, 0.5, 301))
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_percentile_edges() -> None:
    assert math.isnan(percentile([], 50))
    assert percentile([3.0], 99) == 3.0
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_ecdf_and_rate() -> None:
    xs, ys = ecdf([3.0, 1.0, 2.0, 2.0])
    assert xs == [1.0, 2.0, 2.0, 3.0] and ys == [0.25, 0.5, 0.75, 1.0]
    assert rate(1, 4) == 0.25 and rate(0, 0) == 0.0


@pytest.mark.parametrize(("b", "c", "p"), [
    (2, 8, 112 / 1024),  # 2 * (1 + 10 + 45) / 2^10
    (1, 7, 18 / 256),  # Bentur et al. (2009) in Fagerland et al. (2013): 0.070
    (6, 16, 0.052479),  # Cavo et al. (2012) in Fagerland et al. (2013): 0.052
    (0, 5, 2 / 32),
    (5, 5, 1.0),  # 2 * P(X <= 5; 10) = 1.246 -> capped at 1
    (0, 0, 1.0),  # no discordant pair: no evidence
])
def test_mcnemar_exact_textbook_values(b: int, c: int, p: float) -> None:
    assert mcnemar_exact_p(b, c) == pytest.approx(p, abs=1e-6)
    assert mcnemar_exact_p(c, b) == mcnemar_exact_p(b, c)  # two-sided: symmetric


def test_mcnemar_agrees_with_scipy_binomtest() -> None:
    for b in range(0, 15):
        for c in range(0, 15):
            if b + c:
                expected = binomtest(min(b, c), b + c, 0.5).pvalue
                assert mcnemar_exact_p(b, c) == pytest.approx(expected, abs=1e-12)


def test_mcnemar_rejects_negative_counts() -> None:
    with pytest.raises(ValueError):
        mcnemar_exact_p(-1, 3)


def test_newcombe_paired_published_example() -> None:
    # Complete response before/after consolidation (Cavo et al. 2012), table [[59, 6], [16, 80]]:
    # Newcombe square-and-add (method 10) -0.0621 (-0.1186 to -0.0046), Fagerland, Lydersen &
    # Laake (2014) and their R package contingencytables.
    diff, lo, hi = newcombe_paired_difference(59, 6, 16, 80)
    assert (diff, lo, hi) == pytest.approx((-0.0621, -0.1186, -0.0046), abs=1e-4)


def test_paired_interval_is_narrower_than_the_unpaired_one_for_agreeing_arms() -> None:
    # 30 configurations, arms agree on 28: pairing removes the shared variation.
    _, plo, phi = newcombe_paired_difference(20, 2, 0, 8)
    _, ulo, uhi = newcombe_difference(22, 30, 20, 30)
    assert phi - plo < uhi - ulo
    assert plo < 0 < phi  # 2 discordant pairs are not a significant difference


def test_newcombe_paired_edges() -> None:
    assert newcombe_paired_difference(0, 0, 0, 0) == (0.0, -1.0, 1.0)
    diff, lo, hi = newcombe_paired_difference(0, 10, 0, 0)  # A solves all, B none
    assert diff == 1.0 and 0 < lo < 1 and hi == 1.0
    diff, lo, hi = newcombe_paired_difference(10, 0, 0, 0)  # both solve all
    assert diff == 0.0 and lo < 0 < hi
    with pytest.raises(ValueError):
        newcombe_paired_difference(1, -1, 0, 0)


def test_pair_outcomes_joins_on_the_configuration() -> None:
    a = [(0, True), (1, False), (2, True)]
    b = [(2, False), (0, True), (1, True)]  # another order
    assert pair_outcomes(a, b) == [(True, True), (False, True), (True, False)]


def test_pair_outcomes_refuses_different_configurations() -> None:
    with pytest.raises(ValueError, match=r"only in A \[3\], only in B \[4\]"):
        pair_outcomes([(0, True), (3, True)], [(0, True), (4, False)])
    with pytest.raises(ValueError, match="only in A"):
        pair_outcomes([(0, True), (1, True)], [(0, True)])


def test_pair_outcomes_refuses_a_configuration_listed_twice() -> None:
    with pytest.raises(ValueError, match="arm B lists a configuration twice: 1"):
        pair_outcomes([(0, True), (1, True)], [(0, True), (1, False), (1, True)])


def test_paired_comparison_counts_and_verdict() -> None:
    # Configurations 0-11: A solves 0-11, B solves 0-3 only -> b = 8, c = 0.
    a = [(i, True) for i in range(12)]
    b = [(i, i < 4) for i in range(12)]
    pc = paired_comparison(a, b)
    assert (pc.both, pc.only_a, pc.only_b, pc.neither, pc.pairs) == (4, 8, 0, 0, 12)
    assert pc.diff == pytest.approx(8 / 12)
    assert pc.p_value == pytest.approx(2 / 256)
    assert pc.verdict == "better" and pc.lo > 0
    assert paired_comparison(b, a).verdict == "worse"
    same = paired_comparison(a, a)
    assert same.p_value == 1.0 and same.verdict == "no significant difference"
