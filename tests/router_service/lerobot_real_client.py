"""LeRobot 0.6.1's real robot client against the router, run by the LeRobot venv's Python 3.12
(`make test-lerobot` builds it in build/lerobot-venv); never imported by the router's tests.

    python lerobot_real_client.py record DIR   # the client's own pickles, as test fixtures
    python lerobot_real_client.py run --server HOST:PORT --steps N --out FILE.json

`run` drives `lerobot.async_inference.robot_client.RobotClient` itself (its `start`, its action
receiver and control loop threads, its gRPC stub and pickles) around a stand-in robot whose
observation is the fixture's joints, camera and task; it records what the robot was told to
do and checks every reply `pickle.loads` into real `TimedAction`s holding torch tensors.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import lerobot
import numpy as np
import torch
from lerobot.async_inference.configs import RobotClientConfig
from lerobot.async_inference.helpers import (
    RemotePolicyConfig,
    TimedAction,
    TimedObservation,
    map_robot_keys_to_lerobot_features,
)
from lerobot.robots import Robot, RobotConfig

N_JOINTS, ACTION_DIM, CAMERA = 39, 4, (24, 32, 3)
JOINTS = [f"joint_{i:02d}.pos" for i in range(N_JOINTS)]
STATE = [round(0.05 * ((i * 7) % 11 - 5), 4) for i in range(N_JOINTS)]
TASK = "reach-v3"


@RobotConfig.register_subclass("router_test_robot")
@dataclass(kw_only=True)
class RouterTestRobotConfig(RobotConfig):  # type: ignore[misc]
    state: list[float] = field(default_factory=lambda: list(STATE))


class RouterTestRobot(Robot):  # type: ignore[misc]
    """Stands in for an arm: the same joints every step, a small camera, actions recorded."""

    config_class = RouterTestRobotConfig
    name = "router_test_robot"

    def __init__(self, config: RouterTestRobotConfig) -> None:
        super().__init__(config)
        self.config = config
        self.connected = False
        self.sent: list[dict[str, float]] = []

    @cached_property
    def observation_features(self) -> dict[str, Any]:
        return {**{j: float for j in JOINTS}, "front": CAMERA}

    @cached_property
    def action_features(self) -> dict[str, type]:
        return {f"a{i}": float for i in range(ACTION_DIM)}

    @property
    def is_connected(self) -> bool:
        return self.connected

    def connect(self, calibrate: bool = True) -> None:
        self.connected = True

    @property
    def is_calibrated(self) -> bool:
        return True

    def calibrate(self) -> None:
        pass

    def configure(self) -> None:
        pass

    def get_observation(self) -> dict[str, Any]:
        image = np.arange(np.prod(CAMERA), dtype=np.uint8).reshape(CAMERA)
        return {**dict(zip(JOINTS, self.config.state, strict=True)), "front": image}

    def send_action(self, action: dict[str, Any]) -> dict[str, Any]:
        self.sent.append({k: float(v) for k, v in action.items()})
        return action

    def disconnect(self) -> None:
        self.connected = False


def record(out: Path) -> None:
    """The pickles RobotClient itself makes (start() and control_loop_observation())."""
    out.mkdir(parents=True, exist_ok=True)
    robot = RouterTestRobot(RouterTestRobotConfig(calibration_dir=Path(tempfile.mkdtemp())))
    robot.connect()
    features = map_robot_keys_to_lerobot_features(robot)
    config = RemotePolicyConfig("act", "router/ci", features, 3, "cpu")
    (out / "remote_policy_config.pkl").write_bytes(pickle.dumps(config))
    raw = robot.get_observation()
    raw["task"] = TASK
    obs = TimedObservation(timestamp=1767225600.25, observation=raw, timestep=0)
    obs.must_go = True
    (out / "timed_observation.pkl").write_bytes(pickle.dumps(obs))
    # A robot whose observation holds torch tensors (joints as 0-d tensors, the camera a
    # permuted view), with a free-text task: the tensor path of the restricted unpickler.
    tensors: dict[str, Any] = {j: torch.tensor(v, dtype=torch.float32)
                               for j, v in zip(JOINTS, STATE, strict=True)}
    tensors["front"] = torch.arange(24, dtype=torch.uint8).reshape(2, 3, 4).permute(1, 2, 0)
    tensors["task"] = "pick up the cube"
    obs = TimedObservation(timestamp=1767225601.5, observation=tensors, timestep=5)
    (out / "timed_observation_tensors.pkl").write_bytes(pickle.dumps(obs))
    # What LeRobot's own PolicyServer answers (_time_action_chunk over list(action_tensor)).
    chunk = torch.linspace(-1, 1, 3 * ACTION_DIM, dtype=torch.float32).reshape(3, ACTION_DIM)
    actions = [TimedAction(timestamp=1767225600.25 + i / 30, timestep=i, action=a)
               for i, a in enumerate(list(chunk))]
    (out / "timed_actions_lerobot.pkl").write_bytes(pickle.dumps(actions))
    (out / "values.json").write_text(json.dumps({
        "joints": JOINTS, "state": STATE, "task": TASK, "camera_shape": list(CAMERA),
        "actions_per_chunk": 3, "lerobot_chunk": chunk.tolist(),
        "versions": {"python": sys.version.split()[0], "lerobot": lerobot.__version__,
                     "torch": torch.__version__, "numpy": np.__version__,
                     "pickle_protocol": pickle.DEFAULT_PROTOCOL},
    }, indent=1) + "\n")


def run(server: str, steps: int, timeout_s: float, actions_per_chunk: int, out: Path) -> int:
    from lerobot.async_inference.robot_client import RobotClient  # makes logs/ in the cwd

    config = RobotClientConfig(
        robot=RouterTestRobotConfig(calibration_dir=Path(tempfile.mkdtemp())),
        server_address=server, policy_type="act", pretrained_name_or_path="router/ci",
        actions_per_chunk=actions_per_chunk, task=TASK, fps=30, chunk_size_threshold=0.5)
    client = RobotClient(config)
    chunks: list[dict[str, Any]] = []
    aggregate = client._aggregate_action_queues

    def checked(incoming: list[Any], *args: Any, **kwargs: Any) -> None:
        chunks.append({
            "timesteps": [a.get_timestep() for a in incoming],
            "real_types": all(type(a) is TimedAction and type(a.get_action()) is torch.Tensor
                              and a.get_action().dtype == torch.float32 for a in incoming),
            "actions": [a.get_action().tolist() for a in incoming],
        })
        aggregate(incoming, *args, **kwargs)

    client._aggregate_action_queues = checked
    if not client.start():
        print("RobotClient.start() failed", file=sys.stderr)
        return 2
    receiver = threading.Thread(target=client.receive_actions, daemon=True)
    control = threading.Thread(target=client.control_loop, args=(TASK,), daemon=True)
    receiver.start()
    control.start()
    robot = client.robot
    assert isinstance(robot, RouterTestRobot)
    deadline = time.monotonic() + timeout_s
    while len(robot.sent) < steps and time.monotonic() < deadline:
        time.sleep(0.02)
    performed = list(robot.sent)
    client.stop()
    receiver.join(timeout=10)
    control.join(timeout=10)
    out.write_text(json.dumps({"performed": performed, "chunks": chunks,
                               "lerobot": lerobot.__version__, "torch": torch.__version__}))
    return 0 if len(performed) >= steps else 1


def main() -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record")
    rec.add_argument("out", type=Path)
    go = sub.add_parser("run")
    go.add_argument("--server", required=True)
    go.add_argument("--steps", type=int, default=10)
    go.add_argument("--timeout", type=float, default=30.0)
    go.add_argument("--actions-per-chunk", type=int, default=2)
    go.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.command == "record":
        record(args.out)
        return 0
    return run(args.server, args.steps, args.timeout, args.actions_per_chunk, args.out)


if __name__ == "__main__":
    sys.exit(main())
