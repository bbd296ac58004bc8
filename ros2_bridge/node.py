"""A ROS 2 routing node without rclpy: Cyclone DDS in, the policy router, Cyclone DDS out.

    ROUTER_API_KEY=... python -m ros2_bridge.node --router http://127.0.0.1:8080 \\
        --robot-id robot-1 --obs-topic /robot/joint_states --action-topic /robot/action \\
        --status-topic /robot/router_status --task reach-v3 --deadline-ms 50

The key comes from $ROUTER_API_KEY or --api-key-file, never from the command line (which other
users can read in `ps`). DDS: domain --domain-id or $ROS_DOMAIN_ID, configuration
--dds-config or $CYCLONEDDS_URI, as a ROS 2 node would. SIGINT/SIGTERM stop it; it then prints
its counters as one JSON line on stdout. docs/clients/ros2.md has topics, types, QoS, limits.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path

from cyclonedds.core import DDSException
from router_client import RetryPolicy, RouterClient

from ros2_bridge.bridge import Bridge, BridgeConfig
from ros2_bridge.dds import open_participant
from ros2_bridge.observation import JOINT_FIELDS, OBS_TYPES, StateSpec


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m ros2_bridge.node", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--router", required=True, help="router HTTP base URL")
    p.add_argument("--transport", choices=("http", "grpc"), default="http")
    p.add_argument("--grpc-target", help="host:port of the router's gRPC (default: URL host:50051)")
    p.add_argument("--api-key-file", type=Path, help="file holding the robot key")
    p.add_argument("--robot-id", required=True)
    p.add_argument("--episode-id", help="default: a new id each start")
    p.add_argument("--task", help="declared task (default: the router infers it)")
    p.add_argument("--deadline-ms", type=float, default=50.0,
                   help="budget per observation, from its arrival here")
    p.add_argument("--obs-topic", required=True)
    p.add_argument("--obs-type", choices=OBS_TYPES, default="joint_state")
    p.add_argument("--state-fields", type=_names, default=("position",),
                   help=f"JointState fields concatenated, comma-separated, of {JOINT_FIELDS}")
    p.add_argument("--joint-names", type=_names, default=(),
                   help="pick and order joints by name (default: message order)")
    p.add_argument("--action-topic", required=True)
    p.add_argument("--status-topic", help="std_msgs/String JSON status per observation")
    p.add_argument("--domain-id", type=int, help="default: $ROS_DOMAIN_ID or 0")
    p.add_argument("--dds-config", help="Cyclone XML or file:// URI (default: $CYCLONEDDS_URI)")
    p.add_argument("--log-level", default="INFO")
    return p.parse_args(argv)


def build(args: argparse.Namespace) -> Bridge:
    key = args.api_key_file.read_text().strip() if args.api_key_file else None
    # One attempt per observation: a retry would spend the budget the next observation needs.
    # Each call carries what is left of its deadline, which bounds the client's wait too.
    client = RouterClient(args.router, api_key=key, transport=args.transport,
                          grpc_target=args.grpc_target, retry=RetryPolicy.disabled())
    config = BridgeConfig(
        robot_id=args.robot_id, obs_topic=args.obs_topic, action_topic=args.action_topic,
        status_topic=args.status_topic, episode_id=args.episode_id or uuid.uuid4().hex,
        task=args.task, deadline_ms=args.deadline_ms,
        state=StateSpec(args.obs_type, args.state_fields, args.joint_names))
    return Bridge(config, client, open_participant(args.domain_id, args.dds_config))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request at 50 Hz
    try:
        if not args.deadline_ms > 0:
            raise ValueError("--deadline-ms must be positive")
        bridge = build(args).start()
    except (ValueError, OSError, DDSException) as exc:  # bad options, key file, DDS config
        print(f"ros2_bridge.node: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    cfg = bridge.config
    logging.getLogger("ros2_bridge").info(
        "ready: domain %d, %s -> router %s -> %s (episode %s)", bridge.dds.domain_id,
        cfg.obs_topic, args.router, cfg.action_topic, cfg.episode_id)
    stop.wait()
    bridge.close()
    print(json.dumps(bridge.counters()), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
