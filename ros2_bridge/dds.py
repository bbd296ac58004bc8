"""Cyclone DDS set up the way a ROS 2 node on rmw_cyclonedds would be: its default QoS, and a
loopback-only configuration for tests and single-host use.

ROS 2's default profile (`rmw_qos_profile_default`: keep last 10, reliable, volatile) becomes,
in rmw_cyclonedds' `create_readwrite_qos`: history KEEP_LAST 10, reliability RELIABLE with an
infinite max blocking time, durability VOLATILE, liveliness AUTOMATIC with an infinite lease, and
`writer_data_lifecycle(autodispose=False)`. No data representation is set there, so Cyclone's
default applies: XCDR1 for these final types, as ROS 2 sends them. What rmw adds that we do not:
the `typehash=RIHS01_...;` USER_DATA (Iron and later) and the `ros_discovery_info` topic that
names nodes, so `ros2 topic list` sees our topics but `ros2 node list` does not see us.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cyclonedds.domain import Domain, DomainParticipant
from cyclonedds.qos import Policy, Qos
from cyclonedds.util import duration

__all__ = ["DdsContext", "loopback_config", "open_participant", "ros2_default_qos"]

ROS2_DEFAULT_DEPTH = 10


def ros2_default_qos(depth: int = ROS2_DEFAULT_DEPTH) -> Qos:
    return Qos(
        Policy.Reliability.Reliable(max_blocking_time=duration(infinite=True)),
        Policy.Durability.Volatile,
        Policy.History.KeepLast(depth),
        Policy.Liveliness.Automatic(lease_duration=duration(infinite=True)),
        Policy.WriterDataLifecycle(autodispose=False),
    )


def loopback_config(trace_file: Path | None = None) -> str:
    """A Cyclone configuration that keeps every packet on this host: the loopback interface
    only, multicast off (so discovery is unicast to the peer 127.0.0.1, over the participant
    indices Cyclone probes), and no shared memory. With `trace_file`, Cyclone writes its
    effective configuration and chosen interfaces there, which is how the tests check it."""
    tracing = (f"<Tracing><Verbosity>config</Verbosity><OutputFile>{trace_file}</OutputFile>"
               "</Tracing>") if trace_file is not None else ""
    return (
        '<CycloneDDS xmlns="https://cdds.io/config"><Domain Id="any">'
        "<General><Interfaces><NetworkInterface name=\"lo\"/></Interfaces>"
        "<AllowMulticast>false</AllowMulticast></General>"
        "<Discovery><ParticipantIndex>auto</ParticipantIndex><MaxAutoParticipantIndex>20"
        "</MaxAutoParticipantIndex><Peers><Peer address=\"127.0.0.1\"/></Peers></Discovery>"
        f"{tracing}</Domain></CycloneDDS>"
    )


@dataclass
class DdsContext:
    """A participant and, when we configured it ourselves, the Domain that must outlive it."""

    participant: DomainParticipant
    domain: Domain | None
    domain_id: int


def default_domain_id() -> int:
    """ROS 2's convention: $ROS_DOMAIN_ID, else 0."""
    return int(os.environ.get("ROS_DOMAIN_ID", "0") or 0)


def open_participant(domain_id: int | None = None, config: str | None = None) -> DdsContext:
    """`config` is Cyclone XML (or a file URI); None leaves it to $CYCLONEDDS_URI, as ROS does.
    A domain's configuration is fixed when its first participant in the process is created."""
    domain_id = default_domain_id() if domain_id is None else domain_id
    domain = Domain(domain_id, config) if config is not None else None
    return DdsContext(DomainParticipant(domain_id), domain, domain_id)
