"""A "robot" on DDS for the bridge tests: its own participant that publishes observations and
listens to the action and status topics, on a loopback-only Cyclone domain."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from cyclonedds.pub import DataWriter
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic

from ros2_bridge.dds import DdsContext, loopback_config, open_participant, ros2_default_qos
from ros2_bridge.msgs import Float32MultiArray, Header, JointState, String, Time, dds_topic

OBS_TOPIC, ACTION_TOPIC, STATUS_TOPIC = "/robot/joint_states", "/robot/action", "/robot/status"
T = TypeVar("T")


def random_domain_id() -> int:
    """Not 0 (ROS's default) and at most 232, the last id whose ports fit in 16 bits."""
    return random.SystemRandom().randint(1, 232)


def wait_for(check: Callable[[], T | None], timeout_s: float = 10.0, what: str = "") -> T:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what or check}")


def joint_state(position: list[float], stamp_ns: int = 0,
                names: list[str] | None = None) -> JointState:
    return JointState(Header(Time.from_ns(stamp_ns), "base"), names or [], list(position))


@dataclass
class Robot:
    """The other side of the bridge, as a separate participant."""

    dds: DdsContext
    obs_type: type[Any] = JointState
    actions: list[Float32MultiArray] = field(default_factory=list)
    statuses: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        qos, dp = ros2_default_qos(), self.dds.participant
        self.obs = DataWriter(dp, Topic(dp, dds_topic(OBS_TOPIC), self.obs_type, qos=qos), qos=qos)
        self._actions: DataReader[Float32MultiArray] = DataReader(
            dp, Topic(dp, dds_topic(ACTION_TOPIC), Float32MultiArray, qos=qos), qos=qos)
        self._status: DataReader[String] = DataReader(
            dp, Topic(dp, dds_topic(STATUS_TOPIC), String, qos=qos), qos=qos)

    def wait_matched(self, timeout_s: float = 15.0) -> None:
        """Volatile topics drop what is written before the other side is discovered."""
        def matched() -> bool:
            # cyclonedds leaves these status getters unannotated
            writers = [self.obs.get_publication_matched_status()]  # type: ignore[no-untyped-call]
            readers = [r.get_subscription_matched_status()  # type: ignore[no-untyped-call]
                       for r in (self._actions, self._status)]
            return all(s.current_count > 0 for s in writers + readers)
        wait_for(matched, timeout_s, "DDS discovery between robot and bridge")

    def poll(self) -> None:
        self.actions += [s for s in self._actions.take(N=64) if isinstance(s, Float32MultiArray)]
        self.statuses += [json.loads(s.data) for s in self._status.take(N=64)
                          if isinstance(s, String)]

    def status_for(self, seq: int, timeout_s: float = 10.0) -> dict[str, Any]:
        def find() -> dict[str, Any] | None:
            self.poll()
            return next((s for s in self.statuses if s["seq"] == seq), None)
        return wait_for(find, timeout_s, f"status of observation {seq}")


def open_loopback(domain_id: int, trace: Path | None = None) -> DdsContext:
    return open_participant(domain_id, loopback_config(trace))
