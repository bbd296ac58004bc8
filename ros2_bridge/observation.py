"""From a ROS 2 observation message to the router's `state` vector.

`sensor_msgs/JointState`: the chosen fields (`position` by default) concatenated, each in the
message's joint order or, with `joint_names`, picked and ordered by name (drivers publish joints
in whatever order they enumerate them). `std_msgs/Float32MultiArray`: `data` from
`layout.data_offset` on. Anything that cannot be a state is an `ObservationError`, never a crash.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from ros2_bridge.msgs import Float32MultiArray, JointState

__all__ = ["JOINT_FIELDS", "ObsType", "ObservationError", "StateSpec"]

ObsType = Literal["joint_state", "float32_multi_array"]
OBS_TYPES: tuple[ObsType, ...] = ("joint_state", "float32_multi_array")
JOINT_FIELDS = ("position", "velocity", "effort")


class ObservationError(ValueError):
    """The message cannot be turned into a state; the text says why."""


@dataclass(frozen=True)
class StateSpec:
    msg_type: ObsType = "joint_state"
    fields: tuple[str, ...] = ("position",)
    joint_names: tuple[str, ...] = ()  # empty: every joint, in the message's order

    def __post_init__(self) -> None:
        if self.msg_type not in OBS_TYPES:
            raise ValueError(f"obs type must be one of {OBS_TYPES}, got {self.msg_type!r}")
        bad = [f for f in self.fields if f not in JOINT_FIELDS]
        if bad or not self.fields:
            raise ValueError(f"state fields must be among {JOINT_FIELDS}, got {self.fields}")

    @property
    def dds_type(self) -> type[JointState] | type[Float32MultiArray]:
        return JointState if self.msg_type == "joint_state" else Float32MultiArray

    def state(self, sample: JointState | Float32MultiArray) -> list[float]:
        if isinstance(sample, JointState):
            values = self._from_joint_state(sample)
        else:
            values = [float(v) for v in sample.data[int(sample.layout.data_offset):]]
        if not values:
            raise ObservationError("observation is empty")
        if not all(math.isfinite(v) for v in values):
            raise ObservationError("observation has non-finite values")
        return values

    def _from_joint_state(self, msg: JointState) -> list[float]:
        out: list[float] = []
        for name in self.fields:
            column = [float(v) for v in getattr(msg, name)]
            if not column:
                raise ObservationError(f"JointState.{name} is empty")
            if self.joint_names:
                out += self._by_name(msg, name, column)
            else:
                out += column
        return out

    def _by_name(self, msg: JointState, name: str, column: list[float]) -> list[float]:
        if len(column) != len(msg.name):
            raise ObservationError(
                f"JointState.{name} has {len(column)} values for {len(msg.name)} names")
        index = {joint: i for i, joint in enumerate(msg.name)}
        missing = [j for j in self.joint_names if j not in index]
        if missing:
            raise ObservationError(f"JointState lacks joints {missing}")
        return [column[index[j]] for j in self.joint_names]
