"""`python -m ros2_bridge.node` as its own process against the real router and Triton, with a
"robot" participant in this process: DDS over loopback UDP both ways (two processes, so Cyclone
really sends the CDR), configured the way a ROS 2 node is ($CYCLONEDDS_URI, $ROS_DOMAIN_ID)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ros2_testkit import (
    ACTION_TOPIC,
    OBS_TOPIC,
    STATUS_TOPIC,
    Robot,
    joint_state,
    open_loopback,
    random_domain_id,
    wait_for,
)

from ros2_bridge.dds import loopback_config
from ros2_bridge.msgs import Float32MultiArray, JointState, float32_array
from tests.router_fixtures import REPO_ROOT, ROBOT_KEY, RouterFactory, RouterProcess, act_body

pytestmark = [pytest.mark.slow, pytest.mark.triton]
# float32-exact values, so a Float32MultiArray observation carries the very same state
STATE = [float(x) for x in np.random.default_rng(7).normal(0, 0.3, 39).astype(np.float32)]
DEADLINE_MS = 2000.0  # generous: two cores shared by Triton, the router and this test


def observation(obs_type: str, state: list[float], stamp_ns: int) -> Any:
    if obs_type == "joint_state":
        return joint_state(state, stamp_ns)
    return float32_array(state, "state")


@pytest.fixture
def router(start_router: RouterFactory, triton_faults: Any) -> RouterProcess:
    return start_router()


def start_node(router: RouterProcess, tmp_path: Path, domain_id: int, transport: str,
               obs_type: str) -> subprocess.Popen[str]:
    key_file = tmp_path / "robot.key"
    key_file.write_text(ROBOT_KEY)
    env = {**os.environ, "ROS_DOMAIN_ID": str(domain_id),
           "CYCLONEDDS_URI": loopback_config(tmp_path / "node-cyclone.log")}
    env.pop("ROUTER_API_KEY", None)
    args = [sys.executable, "-m", "ros2_bridge.node", "--router", router.url,
            "--transport", transport, "--grpc-target", f"127.0.0.1:{router.grpc_port}",
            "--api-key-file", str(key_file), "--robot-id", "robot-ros", "--episode-id", "ep-ros",
            "--task", "reach-v3", "--deadline-ms", str(DEADLINE_MS),
            "--obs-topic", OBS_TOPIC, "--obs-type", obs_type, "--action-topic", ACTION_TOPIC,
            "--status-topic", STATUS_TOPIC]
    return subprocess.Popen(args, env=env, cwd=REPO_ROOT, text=True, stdout=subprocess.PIPE,
                            stderr=(tmp_path / "node.log").open("w"))


@pytest.fixture
def node_factory(tmp_path: Path) -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


@pytest.mark.parametrize(("transport", "obs_type"),
                         [("http", "joint_state"), ("grpc", "float32_multi_array")])
def test_node_publishes_the_routers_action_and_survives_bad_observations(
        router: RouterProcess, tmp_path: Path, node_factory: list[subprocess.Popen[str]],
        transport: str, obs_type: str) -> None:
    domain_id = random_domain_id()
    node = start_node(router, tmp_path, domain_id, transport, obs_type)
    node_factory.append(node)
    robot = Robot(open_loopback(domain_id), JointState if obs_type == "joint_state"
                  else Float32MultiArray)
    robot.wait_matched(timeout_s=60.0)

    robot.obs.write(observation(obs_type, STATE, stamp_ns=1))
    first = robot.status_for(1, timeout_s=30.0)
    assert first["outcome"] == "published", first
    assert first["route"] == "specialist_reach_v3" and first["deadline_met"] is True
    with router.client() as http:
        direct = http.post("/v1/act", json=act_body(STATE, episode="ep-direct", robot="robot-ros",
                                                    deadline_ms=DEADLINE_MS)).json()
    assert direct["route"] == first["route"]
    action = wait_for(lambda: robot.actions, what="the action")[0]
    assert len(action.data) == len(direct["action"]) == 4
    np.testing.assert_allclose(action.data, direct["action"], rtol=0, atol=1e-6)

    robot.obs.write(observation(obs_type, STATE[:5], stamp_ns=2))  # wrong length
    refused = robot.status_for(2, timeout_s=30.0)
    assert refused["outcome"] == "error" and refused["error"]["kind"] == "InvalidRequest"
    assert refused["error"]["field"] == "observation.state"
    robot.obs.write(observation(obs_type, [float("inf")] * 39, stamp_ns=3))  # not a state
    assert robot.status_for(3, timeout_s=30.0)["error"]["kind"] == "observation"

    robot.obs.write(observation(obs_type, STATE, stamp_ns=4))  # still working
    assert robot.status_for(4, timeout_s=30.0)["outcome"] == "published"
    actions = wait_for(lambda: robot.actions if len(robot.actions) >= 2 else None,
                       what="the second action")
    np.testing.assert_allclose(actions[1].data, direct["action"], rtol=0, atol=1e-6)

    node.send_signal(signal.SIGTERM)
    out, _ = node.communicate(timeout=30)
    assert node.returncode == 0
    counters = json.loads(out.strip().splitlines()[-1])
    assert counters["received"] == 4 and counters["published"] == 2
    assert counters["errors"] == {"InvalidRequest": 1, "observation": 1}
    trace = (tmp_path / "node-cyclone.log").read_text()
    assert "selected interfaces: lo (" in trace and "mc {})" in trace  # the node too: lo only
