from __future__ import annotations

import math

import numpy as np
import pytest

from loadtest.records import Record, columns
from loadtest.scenario import SLA
from loadtest.stats import (
    fraction_within_budget,
    generator_lag,
    latency_at_quantile_all,
    latency_percentiles,
    nearest_rank,
    sla_verdict,
    summarize,
)

SLA20 = SLA(quantile_within_budget=0.99, budget_ms=20.0)


def rec(
    i: int,
    latency: float | None,
    status: str = "ok",
    route: str | None = "r1",
    scheduled: float = 1.0,
    lag_ms: float = 0.1,
    kind: str | None = None,
) -> Record:
    sent = None if status == "overflow" else scheduled + lag_ms / 1000
    done = None if latency is None else scheduled + latency / 1000
    return Record(
        i, 0, "a", False, scheduled, sent, done, latency, status, route, None, True, kind, None
    )


@pytest.mark.parametrize("n", [1, 2, 3, 7, 10, 99, 100, 101, 999, 1000, 1001, 12345])
@pytest.mark.parametrize("q", [0.0, 0.001, 0.5, 0.9, 0.99, 0.999, 1.0])
def test_nearest_rank_matches_numpy_inverted_cdf(n: int, q: float) -> None:
    values = np.random.default_rng(n).lognormal(1.0, 0.8, size=n)
    assert nearest_rank(values, q) == float(np.quantile(values, q, method="inverted_cdf"))


def test_nearest_rank_random_quantiles_and_ties() -> None:
    rng = np.random.default_rng(0)
    for _ in range(500):
        n = int(rng.integers(1, 400))
        values = rng.integers(0, 20, size=n).astype(float)  # many ties
        q = float(rng.random())
        assert nearest_rank(values, q) == float(np.quantile(values, q, method="inverted_cdf"))


def test_nearest_rank_is_an_observed_value_and_handles_empty() -> None:
    assert nearest_rank([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0  # not the interpolated 2.5
    assert nearest_rank([5.0, 1.0], 0.51) == 5.0
    assert math.isnan(nearest_rank([], 0.5))
    with pytest.raises(ValueError):
        nearest_rank([1.0], 1.5)


def test_latency_percentiles_on_a_known_sample() -> None:
    p = latency_percentiles(np.arange(1, 1001, dtype=float))  # 1..1000 ms
    assert (p["p50"], p["p90"], p["p99"], p["p99.9"], p["max"]) == (500, 900, 990, 999, 1000)
    assert p["mean"] == pytest.approx(500.5)
    assert latency_percentiles([])["p99"] is None


def test_fraction_within_budget_counts_errors_and_holds_as_misses() -> None:
    recs = [rec(i, 5.0) for i in range(6)]
    recs += [rec(6, 25.0)]  # late
    recs += [rec(7, None, status="http_503", route=None, kind="shed")]
    recs += [rec(8, None, status="overflow", route=None, kind="overflow")]
    recs += [rec(9, 3.0, route="hold")]  # fast, but the robot got no action
    cols = columns(recs)
    assert fraction_within_budget(cols, SLA20) == pytest.approx(6 / 10)
    lenient = SLA(quantile_within_budget=0.99, budget_ms=20.0, hold_counts_as_miss=False)
    assert fraction_within_budget(cols, lenient) == pytest.approx(7 / 10)
    assert fraction_within_budget(cols, SLA(quantile_within_budget=0.5, budget_ms=30)) == 0.7


def test_verdict_boundary_is_inclusive_and_empty_fails() -> None:
    sla = SLA(quantile_within_budget=0.999, budget_ms=20)
    assert sla_verdict(999 / 1000, 1000, sla)["pass"] is True
    assert sla_verdict(998 / 1000, 1000, sla)["pass"] is False
    assert sla_verdict(math.nan, 0, sla)["pass"] is False


def test_quantile_over_all_requests_agrees_with_the_fraction() -> None:
    """fraction_within >= q  <=>  nearest-rank q-quantile (misses = inf) <= budget."""
    rng = np.random.default_rng(1)
    for trial in range(300):
        n = int(rng.integers(1, 300))
        lat = rng.lognormal(2.3, 0.6, size=n)
        errors = rng.random(n) < rng.random() * 0.1
        recs = [
            rec(i, None, status="http_500", kind="server_error") if errors[i] else rec(i, lat[i])
            for i in range(n)
        ]
        q = float(rng.choice([0.5, 0.9, 0.99, 0.999]))
        sla = SLA(quantile_within_budget=q, budget_ms=float(rng.uniform(5, 30)))
        cols = columns(recs)
        frac = fraction_within_budget(cols, sla)
        at_q = latency_at_quantile_all(cols, sla)
        assert (frac >= q) == (at_q <= sla.budget_ms), trial


def test_summary_excludes_the_ramp_and_splits_routes() -> None:
    recs = [rec(i, 100.0, scheduled=0.5) for i in range(10)]  # during the ramp: ignored
    recs += [rec(10 + i, 5.0 + i, scheduled=1.0 + i * 0.01) for i in range(90)]
    recs += [rec(100 + i, 7.0, route="r2", scheduled=2.0) for i in range(10)]
    recs += [
        rec(110, None, status="grpc_UNAVAILABLE", route=None, scheduled=2.5, kind="unavailable")
    ]
    s = summarize(columns(recs), SLA20, window_start_s=1.0, window_end_s=3.0)
    o = s["overall"]
    assert s["excluded_ramp_requests"] == 10
    assert (o["requests"], o["ok"], o["errors"]) == (101, 100, 1)
    assert o["offered_rate_hz"] == pytest.approx(101 / 2.0)
    assert o["achieved_rate_hz"] == pytest.approx(100 / 2.0)
    assert o["errors_by_kind"] == {"unavailable": 1}
    assert set(s["routes"]) == {"r1", "r2", "(none)"}
    assert s["routes"]["r2"]["latency_ms"]["p99"] == 7.0
    assert s["routes"]["r1"]["within_budget"] == 16  # 5..20 ms of 5..94
    assert o["verdict"]["pass"] is False


def test_generator_lag_flags_a_saturated_client() -> None:
    fine = columns([rec(i, 5.0, lag_ms=0.5) for i in range(100)])
    late = columns([rec(i, 5.0, lag_ms=0.5 if i < 90 else 30.0) for i in range(100)])
    assert generator_lag(fine, SLA20)["late"] is False
    assert generator_lag(late, SLA20)["late"] is True


def test_late_answers_flagged_met_are_counted_with_how_late() -> None:
    recs = [rec(i, lat, scheduled=1.0 + i * 0.01) for i, lat in enumerate([5.0, 21.0, 23.0, 30.0])]
    recs.append(rec(4, None, status="client_timeout", route=None, scheduled=1.1, kind="deadline"))
    o = summarize(columns(recs), SLA20, window_start_s=1.0, window_end_s=2.0)["overall"]
    assert o["late_but_flagged_met"] == 3
    assert o["late_but_flagged_met_by_ms"] == {"p50": 3.0, "max": 10.0}
    on_time = summarize(columns(recs[:1]), SLA20, window_start_s=1.0, window_end_s=2.0)
    assert on_time["overall"]["late_but_flagged_met_by_ms"] == {"p50": None, "max": None}
