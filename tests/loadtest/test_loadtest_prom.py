from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from loadtest.prom import PromParseError, diff_counters, parse_text, sum_delta

BEFORE = """
# HELP router_upstream_duration_seconds upstream latency
# TYPE router_upstream_duration_seconds histogram
router_upstream_duration_seconds_bucket{route="specialist_reach_v3",le="0.005"} 10
router_upstream_duration_seconds_bucket{route="specialist_reach_v3",le="+Inf"} 12
router_upstream_duration_seconds_count{route="specialist_reach_v3"} 12
router_upstream_duration_seconds_sum{route="specialist_reach_v3"} 0.05
# TYPE router_requests_total counter
router_requests_total{route="generalist",outcome="ok"} 100 1700000000000
# TYPE router_inflight_requests gauge
router_inflight_requests 3
router_errors_total{kind="we\\"ird\\\\one\\n"} 1
"""

AFTER = """
# TYPE router_upstream_duration_seconds histogram
router_upstream_duration_seconds_bucket{route="specialist_reach_v3",le="0.005"} 15
router_upstream_duration_seconds_bucket{route="specialist_reach_v3",le="+Inf"} 20
router_upstream_duration_seconds_count{route="specialist_reach_v3"} 20
router_upstream_duration_seconds_count{route="generalist"} 7
router_upstream_duration_seconds_sum{route="specialist_reach_v3"} 0.09
# TYPE router_requests_total counter
router_requests_total{route="generalist",outcome="ok"} 40
# TYPE router_inflight_requests gauge
router_inflight_requests 9
router_errors_total{kind="we\\"ird\\\\one\\n"} 4
process_cpu_seconds_total 12.5
"""


def test_parse_labels_values_and_types() -> None:
    s = parse_text(BEFORE)
    key = (
        "router_upstream_duration_seconds_bucket",
        (("le", "+Inf"), ("route", "specialist_reach_v3")),
    )
    assert s.samples[key] == 12
    assert s.samples[("router_inflight_requests", ())] == 3
    assert s.samples[("router_errors_total", (("kind", 'we"ird\\one\n'),))] == 1
    assert s.family_type("router_upstream_duration_seconds_count") == "histogram"
    assert s.family_type("router_inflight_requests") == "gauge"


def test_special_float_values() -> None:
    s = parse_text('a_total 1\nb{x="y"} +Inf\nc NaN\nd -Inf\n')
    assert math.isinf(s.samples[("b", (("x", "y"),))])
    assert math.isnan(s.samples[("c", ())])


def test_diff_counters_histograms_resets_and_new_series() -> None:
    deltas = diff_counters(parse_text(BEFORE), parse_text(AFTER), prefix="router_")
    by = {(d.name, tuple(sorted(d.labels.items()))): d for d in deltas}
    count = by[("router_upstream_duration_seconds_count", (("route", "specialist_reach_v3"),))]
    assert count.delta == 8 and not count.reset
    new = by[("router_upstream_duration_seconds_count", (("route", "generalist"),))]
    assert new.delta == 7, "a series born during the run counts from zero"
    reset = by[("router_requests_total", (("outcome", "ok"), ("route", "generalist")))]
    assert reset.reset and reset.delta == 40
    assert by[("router_errors_total", (("kind", 'we"ird\\one\n'),))].delta == 3
    assert not any(d.name == "router_inflight_requests" for d in deltas), "gauges are not diffed"
    assert not any(d.name.startswith("process_") for d in deltas), "prefix filter"
    assert sum_delta(deltas, "router_upstream_duration_seconds_count") == 15
    assert sum_delta(deltas, "router_upstream_duration_seconds_count", route="generalist") == 7
    assert sum_delta(deltas, "router_upstream_duration_seconds_sum") == pytest.approx(0.04)


def test_diff_of_real_prometheus_client_output() -> None:
    reg = CollectorRegistry()
    upstream = Histogram(
        "router_upstream_duration_seconds", "u", ["route"], registry=reg, buckets=(0.005, 0.01)
    )
    requests = Counter("router_requests", "r", ["route", "outcome"], registry=reg)
    inflight = Gauge("router_inflight_requests", "g", registry=reg)
    upstream.labels("generalist").observe(0.001)
    requests.labels("generalist", "ok").inc()
    before = parse_text(generate_latest(reg).decode())
    for _ in range(5):
        upstream.labels("generalist").observe(0.002)
        upstream.labels("specialist_reach_v3").observe(0.02)
        requests.labels("generalist", "ok").inc()
    inflight.set(4)
    deltas = diff_counters(before, parse_text(generate_latest(reg).decode()), prefix="router_")
    assert sum_delta(deltas, "router_upstream_duration_seconds_count") == 10
    assert sum_delta(deltas, "router_requests_total", outcome="ok") == 5
    assert not any(d.name.endswith("_created") for d in deltas)


def test_garbage_is_rejected_with_the_line_number() -> None:
    with pytest.raises(PromParseError, match="line 2"):
        parse_text("ok_total 1\nthis is not a sample\n")
    with pytest.raises(PromParseError):
        parse_text('x{a="b" 1\n')
