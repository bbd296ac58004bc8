"""The open-loop send plan, computed entirely before the run starts (pure, seeded).

Robot r sends at `start_r + k / control_hz` for k = 0, 1, ... while the time is below
`duration_s`, where `start_r = ramp_s * r / robots + phase_r` and `phase_r` is uniform in
[0, period): the ramp staggers robots in, the phase keeps them from all firing on the same tick.
The merged plan is sorted by scheduled time so one dispatcher loop can walk it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from loadtest.scenario import Scenario

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Bool = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Plan:
    """Column arrays, one row per request, sorted by `scheduled_s` (seconds from run start)."""

    scheduled_s: F64
    robot: I64
    step: I64  # index of the request within its robot's stream
    episode: I64
    task: I64  # index into `tasks`
    hidden: Bool  # task left out of the request: the router must infer it
    obs: I64  # row of the observation pool to send
    tasks: tuple[str, ...]
    start_s: F64  # per robot: first send time (ramp offset + phase)

    def __len__(self) -> int:
        return int(self.scheduled_s.shape[0])


def robot_starts(robots: int, period_s: float, ramp_s: float, rng: np.random.Generator) -> F64:
    phase = rng.uniform(0.0, period_s, size=robots)
    ramp = ramp_s * np.arange(robots, dtype=np.float64) / robots
    return np.asarray(ramp + phase, dtype=np.float64)


def obs_rows(robot: I64, step: I64, pool_size: int) -> I64:
    """Each robot walks the pool from its own offset, so robots send different states and a
    recorded trajectory is replayed in order."""
    return np.asarray((robot * 7919 + step) % pool_size, dtype=np.int64)


def build_plan(scenario: Scenario, pool_size: int) -> Plan:
    rng = np.random.default_rng(scenario.seed)
    period = scenario.period_s
    starts = robot_starts(scenario.robots, period, scenario.ramp_s, rng)
    counts = np.maximum(0, np.ceil((scenario.duration_s - starts) / period)).astype(np.int64)
    robot = np.repeat(np.arange(scenario.robots, dtype=np.int64), counts)
    # step index within each robot: position minus the first position of that robot's block
    firsts = np.repeat(np.cumsum(counts) - counts, counts)
    step = np.arange(robot.shape[0], dtype=np.int64) - firsts
    sched = starts[robot] + step * period
    keep = sched < scenario.duration_s  # guards float rounding at the end of the grid
    robot, step, sched = robot[keep], step[keep], sched[keep]

    episode = step // scenario.episode_steps
    n_episodes = int(episode.max()) + 1 if episode.size else 1
    weights = np.asarray(list(scenario.task_mix.values()), dtype=np.float64)
    ep_task = rng.choice(
        len(weights), size=(scenario.robots, n_episodes), p=weights / weights.sum()
    )
    ep_hidden = rng.random(size=(scenario.robots, n_episodes)) < scenario.hidden_task_share

    order = np.argsort(sched, kind="stable")
    robot, step, episode, sched = robot[order], step[order], episode[order], sched[order]
    return Plan(
        scheduled_s=np.asarray(sched, dtype=np.float64),
        robot=robot,
        step=step,
        episode=episode,
        task=np.asarray(ep_task[robot, episode], dtype=np.int64),
        hidden=np.asarray(ep_hidden[robot, episode], dtype=np.bool_),
        obs=obs_rows(robot, step, pool_size),
        tasks=scenario.tasks,
        start_s=starts,
    )
