"""ROS 2 messages as Cyclone DDS types, named and laid out the way ROS 2 puts them on the wire.

rmw_cyclonedds registers `pkg/msg/Name` as the DDS type `pkg::msg::dds_::Name_` and the ROS topic
`/a/b` as the DDS topic `rt/a/b`; the sample is plain little-endian CDR (XCDR1, encapsulation
0x0001) of the .msg fields in order, which is what these final (non-appendable) structs serialise
to. Each class matches its .msg definition field for field (the definitions are quoted above each
one); tests/ros2_bridge/test_cdr.py checks the bytes against rosbags' independent ROS 2 serializer.
"""

# No `from __future__ import annotations` here: cyclonedds resolves each field's annotation by
# name in this module, and a string "str" is not a name it can find.
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cyclonedds.idl import IdlStruct
from cyclonedds.idl.types import float32, float64, int32, sequence, uint32

__all__ = [
    "Float32MultiArray",
    "Header",
    "JointState",
    "MultiArrayDimension",
    "MultiArrayLayout",
    "String",
    "Time",
    "dds_topic",
    "float32_array",
]


# cyclonedds' `sequence[T]` is an Annotated Sequence at run time, which mypy cannot see through
# without the package's mypy plugin (global config); to the type checker they are plain lists.
if TYPE_CHECKING:
    Strings = list[str]
    Float64s = list[float]
    Float32s = list[float]
else:
    Strings = sequence[str]
    Float64s = sequence[float64]
    Float32s = sequence[float32]


def dds_topic(ros_topic: str) -> str:
    """`/robot/joint_states` -> `rt/robot/joint_states` (rmw's ROS_TOPIC_PREFIX; a relative
    name is taken from the root namespace, as a node in `/` would resolve it)."""
    name = ros_topic.strip()
    if not name or name == "/" or "//" in name or name.endswith("/"):
        raise ValueError(f"not a ROS topic name: {ros_topic!r}")
    return "rt" + (name if name.startswith("/") else "/" + name)


# builtin_interfaces/msg/Time: int32 sec, uint32 nanosec
@dataclass
class Time(IdlStruct, typename="builtin_interfaces::msg::dds_::Time_"):
    sec: int32 = 0
    nanosec: uint32 = 0

    @classmethod
    def from_ns(cls, ns: int) -> "Time":
        return cls(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)

    def to_ns(self) -> int:
        return self.sec * 1_000_000_000 + self.nanosec


# std_msgs/msg/Header: builtin_interfaces/Time stamp, string frame_id
@dataclass
class Header(IdlStruct, typename="std_msgs::msg::dds_::Header_"):
    stamp: Time = field(default_factory=Time)
    frame_id: str = ""


# sensor_msgs/msg/JointState: std_msgs/Header header, string[] name, float64[] position,
# float64[] velocity, float64[] effort
@dataclass
class JointState(IdlStruct, typename="sensor_msgs::msg::dds_::JointState_"):
    header: Header = field(default_factory=Header)
    name: Strings = field(default_factory=list)
    position: Float64s = field(default_factory=list)
    velocity: Float64s = field(default_factory=list)
    effort: Float64s = field(default_factory=list)


# std_msgs/msg/MultiArrayDimension: string label, uint32 size, uint32 stride
@dataclass
class MultiArrayDimension(IdlStruct, typename="std_msgs::msg::dds_::MultiArrayDimension_"):
    label: str = ""
    size: uint32 = 0
    stride: uint32 = 0


if TYPE_CHECKING:
    Dimensions = list[MultiArrayDimension]
else:
    Dimensions = sequence[MultiArrayDimension]


# std_msgs/msg/MultiArrayLayout: MultiArrayDimension[] dim, uint32 data_offset
@dataclass
class MultiArrayLayout(IdlStruct, typename="std_msgs::msg::dds_::MultiArrayLayout_"):
    dim: Dimensions = field(default_factory=list)
    data_offset: uint32 = 0


# std_msgs/msg/Float32MultiArray: MultiArrayLayout layout, float32[] data
@dataclass
class Float32MultiArray(IdlStruct, typename="std_msgs::msg::dds_::Float32MultiArray_"):
    layout: MultiArrayLayout = field(default_factory=MultiArrayLayout)
    data: Float32s = field(default_factory=list)


# std_msgs/msg/String: string data
@dataclass
class String(IdlStruct, typename="std_msgs::msg::dds_::String_"):
    data: str = ""


def float32_array(values: list[float], label: str) -> Float32MultiArray:
    """A 1-D array with its one dimension named, as ROS tools expect (size = stride = n)."""
    n = len(values)
    return Float32MultiArray(
        layout=MultiArrayLayout(dim=[MultiArrayDimension(label, n, n)], data_offset=0),
        data=list(values))
