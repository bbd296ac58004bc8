"""One robot's control loop without servers or a simulator: a scripted transport and env show
which action is applied when a reply is late, and how the evaluation's own time is kept."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.arms import Arm
from evaluation.runner import EpisodeSpec, RunSettings, run_episode
from evaluation.traces import read_trace
from evaluation.transport import StepReply

HOLD = (0.0, 0.0, 0.0, -1.0)
REPLY = (0.5, -0.5, 0.25, 1.0)
DEADLINE_MS = 20.0


class ScriptedTransport:
    """Replies with REPLY; step k's reply is `rtts[k]` ms late by the robot's clock."""

    def __init__(self, rtts: list[float], sleep_s: float = 0.0) -> None:
        self.rtts, self.sleep_s, self.calls = rtts, sleep_s, 0
        self.abandoned: list[asyncio.Future[StepReply]] = []

    async def act(self, robot_id: str, episode_id: str, task: str | None, state: list[float],
                  deadline_ms: float) -> StepReply:
        rtt = self.rtts[self.calls % len(self.rtts)]
        self.calls += 1
        if self.sleep_s:
            await asyncio.sleep(self.sleep_s)
        return StepReply("ok", rtt, "200", action=REPLY, route="generalist", task=task or "",
                         task_source="declared", deadline_met=rtt <= deadline_ms,
                         timing_ms={"total": rtt / 2}, decision_id=f"d{self.calls}")

    async def feedback(self, robot_id: str, episode_id: str, decision_id: str | None,
                       success: bool, true_task: str) -> dict[str, Any]:
        return {"status": 202}

    def abandon(self, call: asyncio.Future[StepReply]) -> None:
        self.abandoned.append(call)

    async def aclose(self) -> None:
        return None


class RecordingEnv:
    """A 39-dim observation that never succeeds; keeps every action it was stepped with."""

    def __init__(self) -> None:
        self.applied: list[tuple[float, ...]] = []

    def reset(self) -> tuple[np.ndarray[Any, Any], dict[str, Any]]:
        return np.zeros(39), {}

    def step(self, action: np.ndarray[Any, Any]) -> tuple[Any, ...]:
        self.applied.append(tuple(float(v) for v in action))
        return np.zeros(39), 0.0, False, False, {"success": 0.0}


def _run(tmp_path: Path, transport: ScriptedTransport, steps: int, control_hz: float
         ) -> tuple[Any, RecordingEnv]:
    env = RecordingEnv()
    spec = EpisodeSpec(Arm("router", "router"), "reach-v3", 0, "router.reach-v3.000")
    settings = RunSettings(DEADLINE_MS, control_hz, steps, HOLD, "http")
    result = asyncio.run(run_episode(spec, env, transport, "robot-0", settings,
                                     tmp_path / "ep.mcap", "ep.mcap"))
    return result, env


def test_a_late_reply_is_not_applied_the_robot_holds(tmp_path: Path) -> None:
    rtts = [5.0, DEADLINE_MS + 0.1, DEADLINE_MS, 60.0]
    result, env = _run(tmp_path, ScriptedTransport(rtts), steps=4, control_hz=0.0)
    assert result.late == [False, True, False, True]
    assert env.applied == [REPLY, HOLD, REPLY, HOLD]
    sources = [s["action"]["source"] for s in read_trace(tmp_path / "ep.mcap").steps]
    assert sources == ["reply", "hold_late", "reply", "hold_late"]
    assert result.router_misses == 2 and result.pid == os.getpid()


def test_the_evaluations_own_time_is_kept_apart_from_the_round_trip(tmp_path: Path) -> None:
    # A 1 ms control period that every 3 ms reply overruns; an unpaced loop never overruns.
    paced, _ = _run(tmp_path, ScriptedTransport([3.0], sleep_s=0.003), steps=5,
                    control_hz=1000.0)
    assert len(paced.harness_ms) == len(paced.overran) == paced.steps == 5
    assert all(0.0 <= h < 50.0 for h in paced.harness_ms)
    assert all(paced.overran)
    unpaced, _ = _run(tmp_path, ScriptedTransport([3.0]), steps=5, control_hz=0.0)
    assert unpaced.overran == [False] * 5


def test_ticks_keep_the_control_rate(tmp_path: Path) -> None:
    # 100 Hz with instant replies: 10 steps take about 9 periods, not zero time.
    result, _ = _run(tmp_path, ScriptedTransport([1.0]), steps=10, control_hz=100.0)
    assert result.wall_s >= 0.085  # (whether a tick overran depends on the machine's load)


def test_a_tick_longer_than_the_period_is_counted_as_overrun(tmp_path: Path) -> None:
    # 15 ms replies (inside the 20 ms deadline, so applied) against a 10 ms period.
    result, env = _run(tmp_path, ScriptedTransport([15.0], sleep_s=0.015), steps=4,
                       control_hz=100.0)
    assert env.applied == [REPLY] * 4
    assert result.overran[:3] == [True, True, True]


def test_a_reply_still_missing_at_the_deadline_is_abandoned_and_the_world_moves_on(
    tmp_path: Path,
) -> None:
    """A stack that takes 200 ms must cost held ticks, not a frozen world: the robot stops
    waiting at the control deadline, holds, and steps on."""
    transport = ScriptedTransport([5.0], sleep_s=0.2)
    started = time.perf_counter()
    result, env = _run(tmp_path, transport, steps=3, control_hz=0.0)
    elapsed = time.perf_counter() - started
    assert env.applied == [HOLD, HOLD, HOLD]
    assert result.statuses == {"late": 3} and result.late == [True, True, True]
    assert elapsed < 3 * 0.2  # never waited for a reply past its deadline
    assert all(DEADLINE_MS <= ms < 200.0 for ms in
               (s["timing"]["rtt_ms"] for s in read_trace(tmp_path / "ep.mcap").steps))
