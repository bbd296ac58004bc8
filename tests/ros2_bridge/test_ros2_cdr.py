"""Our Cyclone IDL types against rosbags' independent ROS 2 type store and CDR serializer: same
fields in the same order, the same bytes (encapsulation header included), and each side reads the
other's bytes. Plus the ROS 2 naming and the default QoS rmw_cyclonedds applies."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from cyclonedds.idl import IdlStruct
from cyclonedds.qos import Policy
from cyclonedds.util import duration
from rosbags.typesys import Stores, get_typestore

from ros2_bridge.dds import ros2_default_qos
from ros2_bridge.msgs import (
    Float32MultiArray,
    Header,
    JointState,
    MultiArrayDimension,
    MultiArrayLayout,
    String,
    Time,
    dds_topic,
    float32_array,
)

STORES = [Stores.ROS2_HUMBLE, Stores.ROS2_JAZZY]
OURS: dict[str, type[IdlStruct]] = {
    "builtin_interfaces/msg/Time": Time, "std_msgs/msg/Header": Header,
    "sensor_msgs/msg/JointState": JointState, "std_msgs/msg/String": String,
    "std_msgs/msg/MultiArrayDimension": MultiArrayDimension,
    "std_msgs/msg/MultiArrayLayout": MultiArrayLayout,
    "std_msgs/msg/Float32MultiArray": Float32MultiArray,
}


def _rosbags(store: Any, value: Any) -> Any:
    """Our dataclass value as rosbags' message object (numpy arrays for numeric sequences)."""
    typename = next(name for name, cls in OURS.items() if isinstance(value, cls))
    cls = store.types[typename]
    args = []
    for name, _desc in store.get_msgdef(typename).fields:
        item = getattr(value, name)
        if isinstance(item, IdlStruct):
            args.append(_rosbags(store, item))
        elif isinstance(item, list) and item and isinstance(item[0], IdlStruct):
            args.append([_rosbags(store, x) for x in item])
        elif isinstance(item, list) and (not item or isinstance(item[0], float)):
            dtype = np.float32 if typename.endswith("Float32MultiArray") else np.float64
            args.append(np.asarray(item, dtype=dtype))
        else:
            args.append(item)
    return cls(*args)


SAMPLES = [
    JointState(Header(Time(1_700_000_000, 123_456_789), "base_link"),
               ["shoulder", "elbow", "wrist_3"], [0.1, -2.5, 3.25], [], [1e-3, 0.0, -7.0]),
    JointState(),  # every sequence empty, empty frame id
    float32_array([0.5, -0.25, 1.0, 0.0], "action"),
    Float32MultiArray(MultiArrayLayout([MultiArrayDimension("rows", 2, 6),
                                        MultiArrayDimension("cols", 3, 3)], 1),
                      [float(i) for i in range(7)]),
    String('{"route": "hold", "deadline_met": false}'),
    String(""),
]


@pytest.mark.parametrize("store_name", STORES)
def test_fields_match_the_ros2_definitions(store_name: Stores) -> None:
    store = get_typestore(store_name)
    for typename, cls in OURS.items():
        ours = list(cls.__dataclass_fields__)  # type: ignore[attr-defined]
        theirs = [name for name, _ in store.get_msgdef(typename).fields]
        assert ours == theirs, typename
        dds_name = "{}::{}::dds_::{}_".format(*typename.split("/"))
        assert cls.__idl_typename__ == dds_name


@pytest.mark.parametrize("store_name", STORES)
@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: type(s).__name__)
def test_cdr_bytes_equal_rosbags_both_ways(store_name: Stores, sample: Any) -> None:
    store = get_typestore(store_name)
    typename = next(name for name, cls in OURS.items() if isinstance(sample, cls))
    ours = sample.serialize()
    theirs = bytes(store.serialize_cdr(_rosbags(store, sample), typename))
    assert ours[:4] == b"\x00\x01\x00\x00"  # CDR_LE, as ROS 2 sends it
    assert ours == theirs
    assert type(sample).deserialize(theirs) == sample
    back = store.deserialize_cdr(ours, typename)
    assert bytes(store.serialize_cdr(back, typename)) == ours


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: type(s).__name__)
def test_the_padded_wire_form_reads_the_same(sample: Any) -> None:
    """cyclonedds-python's DataWriter sends `.serialize()` zero-padded to a multiple of 4."""
    store = get_typestore(Stores.ROS2_HUMBLE)
    typename = next(name for name, cls in OURS.items() if isinstance(sample, cls))
    raw = sample.serialize()
    wire = raw.ljust((len(raw) + 3) & ~3, b"\0")
    assert type(sample).deserialize(wire) == sample
    assert bytes(store.serialize_cdr(store.deserialize_cdr(wire, typename), typename)) == raw


def test_float32_values_survive_as_float32() -> None:
    """An action goes out as float32: what the robot reads is the float32 rounding."""
    value = 0.1
    back = Float32MultiArray.deserialize(float32_array([value], "action").serialize())
    assert back.data[0] == float(np.float32(value))


def test_topic_names_get_the_ros_prefix() -> None:
    assert dds_topic("/robot/joint_states") == "rt/robot/joint_states"
    assert dds_topic("cmd") == "rt/cmd"
    for bad in ("", "/", "/a//b", "/a/"):
        with pytest.raises(ValueError):
            dds_topic(bad)


def test_default_qos_is_what_rmw_cyclonedds_sets_for_the_ros2_default_profile() -> None:
    qos = ros2_default_qos()
    assert qos[Policy.Reliability] == Policy.Reliability.Reliable(duration(infinite=True))
    assert qos[Policy.Durability] == Policy.Durability.Volatile
    assert qos[Policy.History] == Policy.History.KeepLast(10)
    assert qos[Policy.WriterDataLifecycle] == Policy.WriterDataLifecycle(autodispose=False)
