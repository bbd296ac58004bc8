"""Wilson and Newcombe intervals and percentiles against published values and numpy."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evaluation.stats import ecdf, newcombe_difference, percentile, rate, wilson_interval
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
