"""The bridge in this process against a scripted router (the client's httpx transport replaced):
actions published, slow replies and piled-up observations, bad observations, and the
loopback-only Cyclone configuration the tests run on."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from cyclonedds.domain import DomainParticipant
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
from router_client import RetryPolicy, RouterClient

from ros2_bridge.bridge import Bridge, BridgeConfig
from ros2_bridge.dds import DdsContext, loopback_config
from ros2_bridge.msgs import Float32MultiArray, MultiArrayLayout
from ros2_bridge.observation import ObservationError, StateSpec

DIM = 6


@dataclass
class ScriptedRouter:
    """Answers /v1/act with action = 2 * state[:2], after `delay_s`; a state that is not DIM
    long gets the router's 422 naming observation.state."""

    delay_s: float = 0.0
    bodies: list[dict[str, Any]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.bodies.append(body)
        time.sleep(self.delay_s)
        state = body["observation"]["state"]
        if len(state) != DIM:
            return httpx.Response(422, json={"error": {
                "code": "invalid", "message": f"state must have {DIM} values",
                "field": "observation.state"}})
        return httpx.Response(200, json={
            "action": [2 * x for x in state[:2]], "route": "generalist",
            "policy_version": "v1", "task": "reach-v3", "task_source": "declared",
            "task_confidence": 1.0, "fallback": None, "deadline_met": True,
            "timing_ms": {"queued": 0.0, "scoring": 0.1, "upstream": 0.5, "total": 1.0},
            "decision_id": f"d{len(self.bodies)}", "reason": "best_score"})


@dataclass
class Rig:
    robot: Robot
    bridge: Bridge
    router: ScriptedRouter


@contextmanager
def start_rig(spec: StateSpec | None = None, deadline_ms: float = 200.0,
              delay_s: float = 0.0) -> Iterator[Rig]:
    spec = spec or StateSpec()
    domain_id = random_domain_id()
    robot_dds = open_loopback(domain_id)
    # Same process: the bridge joins the domain the robot configured (loopback, no multicast).
    bridge_dds = DdsContext(DomainParticipant(domain_id), None, domain_id)
    router = ScriptedRouter(delay_s)
    client = RouterClient("http://router.test", api_key="k", retry=RetryPolicy.disabled(),
                          httpx_transport=httpx.MockTransport(router.handle))
    config = BridgeConfig("robot-1", OBS_TOPIC, ACTION_TOPIC, STATUS_TOPIC, episode_id="ep-1",
                          task="reach-v3", deadline_ms=deadline_ms, state=spec)
    bridge = Bridge(config, client, bridge_dds).start()
    robot = Robot(robot_dds, spec.dds_type)
    try:
        robot.wait_matched()
        yield Rig(robot, bridge, router)
    finally:
        bridge.close()
        client.close()


@pytest.fixture
def rig() -> Iterator[Rig]:
    with start_rig() as rig:
        yield rig


def test_observation_in_action_out(rig: Rig) -> None:
    rig.robot.obs.write(joint_state([0.5, -1.0, 0, 0, 0, 0], stamp_ns=42))
    status = rig.robot.status_for(1)
    assert status["outcome"] == "published" and status["stamp_ns"] == 42
    assert status["route"] == "generalist" and status["deadline_met"] is True
    action = wait_for(lambda: rig.robot.actions, what="an action")[0]
    assert list(action.data) == [1.0, -2.0]
    assert action.layout.dim[0].label == "action" and action.layout.dim[0].size == 2
    body = rig.router.bodies[0]
    assert body["robot_id"] == "robot-1" and body["episode_id"] == "ep-1"
    assert body["task"] == "reach-v3" and 0 < body["deadline_ms"] <= 200


def test_bad_observations_are_counted_and_the_bridge_keeps_working(rig: Rig) -> None:
    rig.robot.obs.write(joint_state([1.0, 2.0]))  # wrong length: the router refuses it
    refused = rig.robot.status_for(1)
    assert refused["outcome"] == "error" and refused["error"]["kind"] == "InvalidRequest"
    assert refused["error"]["field"] == "observation.state"
    rig.robot.obs.write(joint_state([float("nan")] * DIM))  # never reaches the router
    local = rig.robot.status_for(2)
    assert local["error"]["kind"] == "observation" and len(rig.router.bodies) == 1
    rig.robot.obs.write(joint_state([]))  # empty position
    assert rig.robot.status_for(3)["error"]["kind"] == "observation"
    rig.robot.obs.write(joint_state([0.25] * DIM))
    assert rig.robot.status_for(4)["outcome"] == "published"
    assert rig.bridge.counters()["errors"] == {"InvalidRequest": 1, "observation": 2}
    assert len(wait_for(lambda: rig.robot.actions)) == 1


def test_slow_router_latest_observation_wins_and_late_replies_are_not_published() -> None:
    # Each reply takes 120 ms of a 100 ms deadline: all late. Meanwhile observations pile up.
    with start_rig(deadline_ms=100.0, delay_s=0.12) as rig:
        for i in range(10):
            rig.robot.obs.write(joint_state([float(i)] * DIM, stamp_ns=i))
            time.sleep(0.01)
        counters = wait_for(lambda: (c := rig.bridge.counters())["received"] == 10
                            and c["late"] + c["expired"] + c["superseded"] == 10 and c,
                            what="all ten observations accounted for")
        assert counters["published"] == 0 and rig.robot.actions == []
        # The DDS side never waited for the router: all ten were taken while calls ran.
        assert counters["superseded"] >= 5 and counters["late"] >= 1
        asked = [b["observation"]["state"][0] for b in rig.router.bodies]
        assert asked[0] == 0.0 and asked == sorted(asked)  # always the newest one waiting
        time.sleep(0.2)
        rig.robot.poll()
        assert {s["outcome"] for s in rig.robot.statuses} <= {"late", "expired"}


def test_an_observation_already_past_its_deadline_is_never_sent() -> None:
    # The first observation's call takes 100 ms; the second waits for the worker that long,
    # over twice its 40 ms deadline, so it expires in the mailbox and the router never sees it.
    with start_rig(deadline_ms=40.0, delay_s=0.1) as rig:
        rig.robot.obs.write(joint_state([1.0] * DIM))
        wait_for(lambda: rig.router.bodies, what="the first call")
        rig.robot.obs.write(joint_state([2.0] * DIM))
        expired = rig.robot.status_for(2)
        assert expired["outcome"] == "expired" and "route" not in expired
        assert expired["age_ms"] > 40.0
        assert rig.robot.status_for(1)["outcome"] == "late"
        assert [b["observation"]["state"][0] for b in rig.router.bodies] == [1.0]
        counters = rig.bridge.counters()
        assert (counters["late"], counters["expired"], counters["published"]) == (1, 1, 0)
        assert rig.robot.actions == []


def test_float32_multi_array_observations() -> None:
    with start_rig(StateSpec("float32_multi_array")) as rig:
        rig.robot.obs.write(Float32MultiArray(MultiArrayLayout([], data_offset=1),
                                              [9.0, 1.5, 0.0, 0, 0, 0, 0]))
        assert rig.robot.status_for(1)["outcome"] == "published"
        assert list(wait_for(lambda: rig.robot.actions)[0].data) == [3.0, 0.0]


def test_joint_names_pick_and_order_the_state() -> None:
    spec = StateSpec(fields=("position", "velocity"), joint_names=("b", "a"))
    msg = joint_state([1.0, 2.0], names=["a", "b"])
    msg.velocity = [10.0, 20.0]
    assert spec.state(msg) == [2.0, 1.0, 20.0, 10.0]
    with pytest.raises(ObservationError, match="lacks joints"):
        StateSpec(joint_names=("c",)).state(msg)
    msg.velocity = [1.0]
    with pytest.raises(ObservationError, match="1 values for 2 names"):
        spec.state(msg)
    with pytest.raises(ValueError):
        StateSpec(fields=("torque",))


def test_loopback_config_selects_lo_only_without_multicast(tmp_path: Path) -> None:
    config = loopback_config()
    assert '<NetworkInterface name="lo"/>' in config
    assert "<AllowMulticast>false</AllowMulticast>" in config
    assert '<Peer address="127.0.0.1"/>' in config
    # What Cyclone itself did with it: its trace names the interfaces it selected and any
    # multicast it enabled; and the kernel lists no multicast group joined on its behalf.
    before = _igmp_groups()
    trace = tmp_path / "cyclone.log"
    dds = open_loopback(random_domain_id(), trace)
    during = _igmp_groups()
    text = wait_for(lambda: _read_if(trace, "selected interfaces"), what="Cyclone's trace")
    assert re.search(r"selected interfaces: lo \(index \d+ priority \d+ mc \{\}\)", text)
    assert "ownip: udp/127.0.0.1" in text
    assert "multicast enabled" not in text and "Multicast Ports" not in text
    assert "add_peer_address: add udp/127.0.0.1:" in text
    assert during - before == set(), "a multicast group was joined"
    del dds


def _read_if(path: Path, needle: str) -> str | None:
    text = path.read_text() if path.exists() else ""
    return text if needle in text else None


def _igmp_groups() -> set[tuple[str, str]]:
    """(device, group) pairs from /proc/net/igmp (this network namespace)."""
    groups: set[tuple[str, str]] = set()
    device = ""
    for line in Path("/proc/net/igmp").read_text().splitlines()[1:]:
        if not line.startswith("\t"):
            device = line.split()[1]
        else:
            groups.add((device, line.split()[0]))
    return groups
