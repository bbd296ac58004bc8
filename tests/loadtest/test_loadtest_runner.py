"""The dispatcher is open loop: it sends on schedule while the server stalls, and charges latency
from the scheduled time. A sleeping fake target stands in for the server here; what is under
test is the generator's clock and bookkeeping."""

from __future__ import annotations

import time
from typing import Any

import pytest
from loadtest_support import SleepTarget

from loadtest.runner import run_plan
from loadtest.scenario import Scenario
from loadtest.schedule import build_plan
from loadtest.targets.base import Outcome

# Timing slack for a shared, loaded CI box; the effects checked are ~10x larger.
SLACK_MS = 40.0


class FirstCallClock:
    """perf_counter that remembers its first reading: run_plan's t0 is that + lead_s."""

    def __init__(self) -> None:
        self.first: float | None = None

    def __call__(self) -> float:
        now = time.perf_counter()
        if self.first is None:
            self.first = now
        return now


def scenario(**kw: Any) -> Scenario:
    data: dict[str, Any] = {
        "name": "t",
        "robots": 1,
        "control_hz": 100,
        "task_mix": {"a": 1},
        "deadline_ms": 20,
        "duration_s": 1.0,
        "ramp_s": 0,
        "sla": {"quantile_within_budget": 0.99, "budget_ms": 20},
    }
    return Scenario.model_validate(data | kw)


async def test_keeps_sending_on_schedule_while_the_server_stalls() -> None:
    s = scenario()
    plan = build_plan(s, 16)
    clock = FirstCallClock()
    lead = 0.05
    stall = (0.2, 0.5)  # seconds after t0: anything arriving then is answered at 0.5

    def service(i: int, now: float) -> float:
        assert clock.first is not None
        t = now - (clock.first + lead)
        return stall[1] - t if stall[0] <= t < stall[1] else 0.002

    target = SleepTarget(service, clock)
    result = await run_plan(
        plan,
        target,
        max_outstanding=1000,
        drain_timeout_s=2,
        progress_every_s=None,
        clock=clock,
        lead_s=lead,
    )
    recs = result.records
    assert len(recs) == len(plan) and all(r.status == "ok" for r in recs)
    for r in recs:
        assert r.sent_s is not None and r.latency_ms is not None
        assert (r.sent_s - r.scheduled_s) * 1000 < SLACK_MS, "sent on schedule, not after replies"
        assert r.latency_ms >= (r.sent_s - r.scheduled_s) * 1000
    in_stall = [r for r in recs if stall[0] + 0.005 < r.scheduled_s < stall[1] - 0.005]
    assert len(in_stall) >= 25
    for r in in_stall:
        expected = (stall[1] - r.scheduled_s) * 1000  # waited for the stall to end
        assert r.latency_ms == pytest.approx(expected, abs=SLACK_MS)
    assert target.max_concurrent >= 25, "stalled requests were all in flight at once"
    after = [r for r in recs if r.scheduled_s > stall[1] + 0.05]
    assert after and max(r.latency_ms or 0 for r in after) < SLACK_MS


async def test_latency_includes_the_generators_own_lateness() -> None:
    s = scenario(duration_s=0.3)
    plan = build_plan(s, 16)
    clock = FirstCallClock()

    def service(i: int, now: float) -> float:
        if i == 0:
            time.sleep(0.1)  # blocks the event loop: the dispatcher falls 100 ms behind
        return 0.001

    result = await run_plan(
        plan,
        SleepTarget(service, clock),
        max_outstanding=100,
        drain_timeout_s=2,
        progress_every_s=None,
        clock=clock,
    )
    late = [r for r in result.records if r.sent_s is not None and r.sent_s - r.scheduled_s > 0.05]
    assert len(late) >= 5
    for r in late:
        assert r.latency_ms is not None and r.sent_s is not None
        assert r.latency_ms >= (r.sent_s - r.scheduled_s) * 1000 + 0.9  # lag + service time


async def test_over_the_cap_requests_are_overflow_errors_not_queued() -> None:
    s = scenario(duration_s=0.2)  # 20 requests at 100 Hz; each takes 0.5 s
    plan = build_plan(s, 16)
    target = SleepTarget(lambda i, now: 0.5, time.perf_counter)
    result = await run_plan(
        plan, target, max_outstanding=3, drain_timeout_s=2, progress_every_s=None
    )
    statuses = [r.status for r in result.records]
    assert statuses.count("ok") == 3
    assert statuses.count("overflow") == len(plan) - 3
    for r in result.records:
        if r.status == "overflow":
            assert r.error_kind == "overflow" and r.sent_s is None and r.latency_ms is None
    assert len(target.sent_at) == 3


async def test_requests_still_in_flight_after_the_drain_are_errors() -> None:
    s = scenario(duration_s=0.05)
    plan = build_plan(s, 16)
    target = SleepTarget(lambda i, now: 10.0, time.perf_counter)
    result = await run_plan(
        plan, target, max_outstanding=100, drain_timeout_s=0.1, progress_every_s=None
    )
    assert result.unfinished == len(plan)
    assert {r.status for r in result.records} == {"unfinished"}
    assert all(r.sent_s is not None for r in result.records)


class RaisingTarget(SleepTarget):
    async def send(self, i: int) -> Outcome:
        raise ValueError("bug in a target")


async def test_a_target_exception_costs_one_record_not_the_run() -> None:
    plan = build_plan(scenario(duration_s=0.05), 16)
    result = await run_plan(
        plan,
        RaisingTarget(lambda i, n: 0, time.perf_counter),
        max_outstanding=10,
        drain_timeout_s=1,
        progress_every_s=None,
    )
    assert {(r.status, r.error_code) for r in result.records} == {("client_error", "ValueError")}


async def test_progress_line_is_written(capsys: pytest.CaptureFixture[str]) -> None:
    import sys

    plan = build_plan(scenario(duration_s=0.3), 16)
    await run_plan(
        plan,
        SleepTarget(lambda i, n: 0.001, time.perf_counter),
        max_outstanding=10,
        drain_timeout_s=1,
        progress_every_s=0.1,
        stream=sys.stderr,
    )
    err = capsys.readouterr().err
    assert "[loadtest]" in err and f"sent {len(plan)}/{len(plan)}" in err
