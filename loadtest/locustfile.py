"""Locust front-end to the router, for people who prefer Locust's UI (optional; Locust is not a
project dependency: `pip install locust`).

    LOADTEST_SCENARIO=loadtest/scenarios/default.yaml ROUTER_API_KEY=... \\
        locust -f loadtest/locustfile.py --host http://127.0.0.1:8080 -u 10 -r 2

One Locust user is one robot sending at the scenario's control rate with the scenario's task mix
and hidden-task share. Caveat: Locust is closed loop per user (`constant_pacing` waits for the
reply before the next request), so a slow reply delays the following ones and the tail is
under-reported (coordinated omission). For SLA verdicts use `python -m loadtest run`, which is
open loop and measures from the scheduled send time.
"""

from __future__ import annotations

import itertools
import os
import random
from pathlib import Path
from typing import Any

import orjson

from loadtest.observations import observation_pool
from loadtest.scenario import load_scenario

try:
    from locust import HttpUser, constant_pacing, task
except ImportError as err:  # only this optional front-end needs Locust
    raise ImportError(
        "loadtest/locustfile.py needs Locust (pip install locust); "
        "the project's own generator is `python -m loadtest`"
    ) from err

SCENARIO = load_scenario(
    Path(os.environ.get("LOADTEST_SCENARIO", "loadtest/scenarios/default.yaml"))
)
STATES = [
    orjson.dumps(row.tolist())
    for row in observation_pool(SCENARIO.obs_dim, SCENARIO.seed, SCENARIO.observations)
]
_ids = itertools.count()


class Robot(HttpUser):  # type: ignore[misc,unused-ignore]  # Locust's classes are untyped
    wait_time = constant_pacing(1.0 / SCENARIO.control_hz)

    def on_start(self) -> None:
        self.robot_id = f"locust-robot-{next(_ids):05d}"
        self.rng = random.Random(f"{SCENARIO.seed}-{self.robot_id}")
        self.step = 0
        key = os.environ.get("ROUTER_API_KEY", "")
        self.headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
        self._new_episode()

    def _new_episode(self) -> None:
        tasks, weights = zip(*SCENARIO.task_mix.items(), strict=True)
        self.task = self.rng.choices(tasks, weights=weights)[0]
        self.hidden = self.rng.random() < SCENARIO.hidden_task_share
        self.episode = f"{self.robot_id}-ep-{self.step // SCENARIO.episode_steps}"

    @task  # type: ignore[untyped-decorator,unused-ignore]
    def act(self) -> None:
        if self.step % SCENARIO.episode_steps == 0 and self.step:
            self._new_episode()
        body: dict[str, Any] = {
            "robot_id": self.robot_id,
            "episode_id": self.episode,
            "deadline_ms": SCENARIO.deadline_ms,
        }
        if not self.hidden:
            body["task"] = self.task
        raw = (
            orjson.dumps(body)[:-1]
            + b',"observation":{"state":'
            + STATES[self.step % len(STATES)]
            + b"}}"
        )
        self.step += 1
        name = "/v1/act (hidden task)" if self.hidden else "/v1/act"
        self.client.post("/v1/act", data=raw, headers=self.headers, name=name)
