"""The robot processes without servers: the router address is a closed port, so every act call
fails at once and the robot holds; what is checked is where the episodes ran and that their
results, traces and failures come back to the parent."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from evaluation.arms import Arm
from evaluation.records import EpisodeResult
from evaluation.robots import RobotCrashed, RobotPool, RouterLink
from evaluation.runner import EpisodeSpec, RunSettings
from evaluation.traces import read_trace
from policies.panel import configurations

TASK = "reach-v3"
STEPS = 3
SETTINGS = RunSettings(20.0, 200.0, STEPS, (0.0, 0.0, 0.0, -1.0), "http")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


LINK = RouterLink(f"http://127.0.0.1:{closed_port()}", None, "test-key")


def specs(n: int, task: str = TASK) -> list[EpisodeSpec]:
    arm = Arm("router", "router")
    return [EpisodeSpec(arm, task, i, f"router.{task}.{i:03d}") for i in range(n)]


def test_each_robot_runs_in_its_own_process(tmp_path: Path) -> None:
    done: list[EpisodeResult] = []
    with RobotPool(2, {TASK: configurations(TASK, 0)[:4]}, tmp_path) as pool:
        pids = pool.wait_ready()
        pool.run(LINK, SETTINGS, specs(4), done.append)
    assert len(set(pids.values())) == 2 and os.getpid() not in pids.values()
    assert sorted(e.episode_id for e in done) == [s.episode_id for s in specs(4)]
    for e in done:
        assert e.pid == pids[int(e.robot_id.removeprefix("robot-"))]  # ran where it says
        assert e.eval_error is None and e.steps == STEPS
        # No router: every tick held, refused at once or (on a loaded machine, where even a
        # refused connect can take longer than the control deadline) abandoned at the deadline.
        assert set(e.statuses) <= {"error", "late"} and sum(e.statuses.values()) == STEPS
        assert all(e.late)
        assert len(e.harness_ms) == len(e.overran) == STEPS
        assert len(read_trace(tmp_path / e.trace).steps) == STEPS  # the child wrote it


def test_a_robot_process_failure_fails_the_run_with_its_traceback(tmp_path: Path) -> None:
    # A task the robot has no configurations for fails outside the episode, in the child.
    with pytest.raises(RobotCrashed, match=r"(?s)robot-0 \(pid \d+\) failed:.*KeyError"), \
            RobotPool(1, {TASK: configurations(TASK, 0)[:1]}, tmp_path) as pool:
        pool.run(LINK, SETTINGS, specs(1, "pick-place-v3"), lambda e: None)
