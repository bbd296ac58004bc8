"""The bridge: observations from DDS in, router calls, actions to DDS out.

Two threads, so a slow router never holds up DDS. The intake thread waits on the reader, takes
every sample as it arrives and keeps only the newest in a one-deep mailbox; an observation that
a newer one replaces before the router was asked is counted `superseded`. The worker thread takes
the mailbox, asks the router with what is left of the observation's deadline (counted from when
the sample was taken off the reader) and publishes the action only if the reply came inside that
deadline. An observation already past its deadline is `expired` (never sent); a reply after it is
`late` (the router's action is not published). Late means nothing is published, not the hold
action: a command that arrives after its deadline is stale whatever it says, and the robot's own
controller (command timeout, hold-last) is the place that decides what a missing command means.
The hold action the *router* answers with, inside the deadline, is published like any action.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from cyclonedds.core import InstanceState, ReadCondition, SampleState, ViewState, WaitSet
from cyclonedds.pub import DataWriter
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic
from cyclonedds.util import duration
from router_client import ActRequest, ActResponse, InvalidRequest, RouterClient, RouterError

from ros2_bridge.dds import DdsContext, ros2_default_qos
from ros2_bridge.msgs import Float32MultiArray, JointState, String, dds_topic, float32_array
from ros2_bridge.observation import ObservationError, StateSpec

log = logging.getLogger("ros2_bridge")
MIN_BUDGET_MS = 1.0  # below this an act call cannot come back in time: the observation expired
Sample = JointState | Float32MultiArray


@dataclass(frozen=True)
class BridgeConfig:
    robot_id: str
    obs_topic: str
    action_topic: str
    status_topic: str | None = None
    episode_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    task: str | None = None
    deadline_ms: float = 50.0
    state: StateSpec = field(default_factory=StateSpec)


@dataclass
class Counters:
    received: int = 0
    superseded: int = 0  # replaced by a newer observation before the router was asked
    expired: int = 0  # past its deadline before the router was asked
    late: int = 0  # the reply came after the deadline: nothing published
    published: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # by kind


@dataclass(frozen=True)
class _Pending:
    sample: Sample
    taken_at: float  # time.monotonic() when the intake thread took it
    seq: int


class Bridge:
    def __init__(self, config: BridgeConfig, client: RouterClient, dds: DdsContext) -> None:
        self.config = config
        self._client = client
        qos = ros2_default_qos()
        dp = dds.participant
        obs = Topic(dp, dds_topic(config.obs_topic), config.state.dds_type, qos=qos)
        self._reader: DataReader[Any] = DataReader(dp, obs, qos=qos)
        self._action = DataWriter(dp, Topic(dp, dds_topic(config.action_topic),
                                            Float32MultiArray, qos=qos), qos=qos)
        self._status = (DataWriter(dp, Topic(dp, dds_topic(config.status_topic), String,
                                             qos=qos), qos=qos)
                        if config.status_topic else None)
        self._waitset = WaitSet(dp)
        self._waitset.attach(ReadCondition(
            self._reader, SampleState.NotRead | ViewState.Any | InstanceState.Any))
        self._counters = Counters()
        self._lock = threading.Condition()
        self._pending: _Pending | None = None
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._intake, name="ros2-bridge-intake"),
                         threading.Thread(target=self._work, name="ros2-bridge-worker")]
        self.dds = dds  # keeps the participant (and its Domain) alive as long as the bridge

    def start(self) -> Bridge:
        for thread in self._threads:
            thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            self._lock.notify_all()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=5.0)

    def counters(self) -> dict[str, Any]:
        with self._lock:
            return asdict(self._counters)

    def _count_error(self, kind: str) -> None:
        with self._lock:
            self._counters.errors[kind] = self._counters.errors.get(kind, 0) + 1

    def _intake(self) -> None:
        while not self._stop.is_set():
            self._waitset.wait(duration(milliseconds=100))
            try:
                samples = self._reader.take(N=64)
            except Exception as exc:  # a sample the type cannot decode: count it, go on
                log.warning("could not take observations: %s", exc)
                self._count_error("decode")
                continue
            now = time.monotonic()
            with self._lock:
                for sample in samples:
                    if not isinstance(sample, JointState | Float32MultiArray):
                        continue  # instance state changes (a writer left), not data
                    self._counters.received += 1
                    if self._pending is not None:
                        self._counters.superseded += 1
                    self._pending = _Pending(sample, now, self._counters.received)
                self._lock.notify_all()

    def _work(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                while self._pending is None and not self._stop.is_set():
                    self._lock.wait(timeout=0.5)
                pending, self._pending = self._pending, None
            if pending is None:
                continue
            try:
                self._handle(pending)
            except Exception:  # a bug or a DDS write failure must not end the worker thread
                log.exception("observation %d", pending.seq)
                self._count_error("internal")

    def _handle(self, pending: _Pending) -> None:
        cfg = self.config
        left_ms = cfg.deadline_ms - (time.monotonic() - pending.taken_at) * 1000.0
        if left_ms < MIN_BUDGET_MS:
            with self._lock:
                self._counters.expired += 1
            self._report(pending, "expired")
            return
        try:
            state = cfg.state.state(pending.sample)
            reply = self._client.act(ActRequest(cfg.robot_id, cfg.episode_id, state,
                                                task=cfg.task, deadline_ms=left_ms))
        except ObservationError as exc:
            self._fail(pending, "observation", str(exc), None)
            return
        except RouterError as exc:
            field_ = exc.field if isinstance(exc, InvalidRequest) else None
            self._fail(pending, type(exc).__name__, exc.message, field_)
            return
        if (time.monotonic() - pending.taken_at) * 1000.0 > cfg.deadline_ms:
            with self._lock:
                self._counters.late += 1
            self._report(pending, "late", reply)
            return
        self._action.write(float32_array(list(reply.action), "action"))
        with self._lock:
            self._counters.published += 1
        self._report(pending, "published", reply)

    def _fail(self, pending: _Pending, kind: str, message: str, field_: str | None) -> None:
        log.warning("observation %d: %s: %s", pending.seq, kind, message)
        self._count_error(kind)
        self._report(pending, "error", error={"kind": kind, "message": message,
                                              "field": field_})

    def _report(self, pending: _Pending, outcome: str, reply: ActResponse | None = None,
                error: dict[str, Any] | None = None) -> None:
        """One JSON status per observation the worker handled (std_msgs/String)."""
        if self._status is None:
            return
        stamp = (pending.sample.header.stamp.to_ns()
                 if isinstance(pending.sample, JointState) else 0)
        status: dict[str, Any] = {
            "seq": pending.seq, "stamp_ns": stamp, "outcome": outcome,
            "age_ms": round((time.monotonic() - pending.taken_at) * 1000.0, 3),
            "deadline_ms": self.config.deadline_ms, "error": error,
            "counters": self.counters()}
        if reply is not None:
            status.update(route=reply.route, deadline_met=reply.deadline_met,
                          decision_id=reply.decision_id, task=reply.task,
                          fallback=reply.fallback, router_total_ms=reply.timing_ms.total_ms)
        self._status.write(String(json.dumps(status)))
