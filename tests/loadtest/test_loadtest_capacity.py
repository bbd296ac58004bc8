from __future__ import annotations

import pytest

from loadtest.capacity import Step, format_steps, search_capacity, shed_by_reason


def evaluator(capacity: int, calls: list[int]):  # type: ignore[no-untyped-def]
    def evaluate(robots: int) -> Step:
        calls.append(robots)
        row = {
            "offered_rate_hz": robots * 50.0,
            "achieved_rate_hz": robots * 50.0,
            "p50_ms": 1.0,
            "p99_ms": 2.0,
            "p99.9_ms": 3.0,
            "fraction_within_budget": 1.0,
            "errors": 0,
            "generator_lag_p99_ms": 0.5,
            "generator_late": False,
        }
        return Step(robots, robots <= capacity, row)

    return evaluate


@pytest.mark.parametrize("capacity", [10, 11, 37, 64, 79, 500])
def test_finds_the_knee_to_the_resolution(capacity: int) -> None:
    calls: list[int] = []
    best, steps = search_capacity(
        evaluator(capacity, calls), start=10, max_robots=1000, resolution=1
    )
    assert best == capacity
    assert len(calls) == len(set(calls)), "no fleet size is run twice"
    assert [s.robots for s in steps] == calls


def test_coarser_resolution_stops_early_and_stays_conservative() -> None:
    calls: list[int] = []
    best, _ = search_capacity(evaluator(37, calls), start=10, max_robots=1000, resolution=5)
    assert best is not None and 32 <= best <= 37


def test_start_fails_searches_down_and_nothing_passes() -> None:
    calls: list[int] = []
    best, _ = search_capacity(evaluator(3, calls), start=10, max_robots=100, resolution=1)
    assert best == 3 and calls[0] == 10
    best, steps = search_capacity(evaluator(0, []), start=4, max_robots=100, resolution=1)
    assert best is None
    assert "no fleet size" in format_steps(steps, best)


def test_capped_by_max_robots() -> None:
    calls: list[int] = []
    best, _ = search_capacity(evaluator(10_000, calls), start=10, max_robots=100)
    assert best == 100 and calls == [10, 20, 40, 80, 100]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        search_capacity(evaluator(1, []), start=0, max_robots=10)


def test_small_fleets_run_long_enough_for_the_sla_to_tolerate_a_miss() -> None:
    from loadtest.capacity import step_duration_s

    # 1 robot at 50 Hz: 60 s after a 3 s ramp for 3,000 requests; 8 robots: the 15 s step.
    assert step_duration_s(1, 50.0, 15.0, 3.0, 3000) == pytest.approx(63.0)
    assert step_duration_s(4, 50.0, 15.0, 3.0, 3000) == pytest.approx(18.0)
    assert step_duration_s(8, 50.0, 15.0, 3.0, 3000) == 15.0
    assert step_duration_s(1, 50.0, 15.0, 3.0, 0) == 15.0  # --quick: as given


def test_a_step_names_its_shed_reasons_when_the_router_was_scraped() -> None:
    series = [{"name": "router_shed_total", "labels": {"reason": "queue_age"}, "delta": 2.0,
               "reset": False},
              {"name": "router_requests_total", "labels": {"outcome": "shed", "route": "none"},
               "delta": 2.0, "reset": False}]
    assert shed_by_reason({"metrics_delta": {"series": series}}) == {"queue_age": 2.0}
    assert shed_by_reason({"metrics_delta": None}) is None
