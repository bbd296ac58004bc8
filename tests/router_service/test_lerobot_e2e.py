"""LeRobot's AsyncInference service in a real router in front of the real Triton, driven with
the generated stubs and the pickles LeRobot 0.6.1's own client wrote (data/lerobot/)."""

from __future__ import annotations

import os
import pickle
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from deploy.local.process import free_port
from router_service.keys import digest, key_id_of
from router_service.lerobot.messages import decode_observation
from router_service.lerobot.proto import services_pb2, services_pb2_grpc
from router_service.lerobot.unpickle import RemotePolicyConfig, restricted_loads
from tests.router_fixtures import ROBOT_KEY, ContractFiles, RouterFactory, RouterProcess
from tests.router_service.test_lerobot_unpickle import (
    VALUES,
    Evil,
    fixture,
    lerobot_pickle,
    reply_reader,
)

pytestmark = [pytest.mark.slow, pytest.mark.triton]
MAX_MESSAGE = 64 * 1024
POLL_S = 0.5
ROBOT_ID = "lerobot-arm-1"
END, BEGIN, MIDDLE = (services_pb2.TRANSFER_END, services_pb2.TRANSFER_BEGIN,
                      services_pb2.TRANSFER_MIDDLE)


@dataclass
class LeRobotRouter:
    router: RouterProcess
    port: int

    def channel(self) -> grpc.Channel:
        # A channel of its own (own subchannel pool): its own TCP connection, its own peer.
        return grpc.insecure_channel(f"127.0.0.1:{self.port}",
                                     options=[("grpc.use_local_subchannel_pool", 1)])

    def act(self, state: list[float], task: str | None) -> list[float]:
        body: dict[str, Any] = {"robot_id": ROBOT_ID, "episode_id": "http-1",
                                "observation": {"state": state}, "deadline_ms": 1000}
        if task is not None:
            body["task"] = task
        with self.router.client() as client:
            reply = client.post("/v1/act", json=body)
        assert reply.status_code == 200, reply.text
        action: list[float] = reply.json()["action"]
        return action


def start_lerobot_router(start_router: RouterFactory, contract_files: ContractFiles
                         ) -> LeRobotRouter:
    """A router with the service on, for a contract mapping the recorded robot's joints."""
    contract = yaml.safe_load((contract_files.folder / "contract.yaml").read_text())
    contract["observation_mapping"] = {"state_components": VALUES["joints"],
                                       "task_keys": ["task"]}
    path = contract_files.folder / "contract-lerobot.yaml"
    path.write_text(yaml.safe_dump(contract, sort_keys=False))
    port = free_port()
    router = start_router(contract=path, lerobot_enabled="true", lerobot_port=port,
                          lerobot_key_id=key_id_of(digest(ROBOT_KEY.encode())),
                          lerobot_robot_id=ROBOT_ID, lerobot_poll_s=POLL_S,
                          lerobot_max_message_bytes=MAX_MESSAGE)
    return LeRobotRouter(router, port)


@pytest.fixture
def lerobot_router(start_router: RouterFactory, contract_files: ContractFiles) -> LeRobotRouter:
    return start_lerobot_router(start_router, contract_files)


@pytest.fixture
def stub(lerobot_router: LeRobotRouter) -> Iterator[Any]:
    with lerobot_router.channel() as channel:
        yield async_inference(channel)


def async_inference(channel: grpc.Channel) -> Any:
    """The generated stub (untyped: protoc's gRPC module has no annotations)."""
    return services_pb2_grpc.AsyncInferenceStub(channel)  # type: ignore[no-untyped-call]


def chunks(data: bytes, size: int) -> list[services_pb2.Observation]:
    """lerobot.transport.utils.send_bytes_in_chunks with chunks of `size` bytes."""
    parts = [data[i:i + size] for i in range(0, len(data), size)]
    states = [BEGIN] + [MIDDLE] * (len(parts) - 2) + [END] if len(parts) > 1 else [END]
    return [services_pb2.Observation(transfer_state=s, data=p)
            for s, p in zip(states, parts, strict=True)]


def start_session(stub: Any, config: bytes | None = None) -> None:
    stub.Ready(services_pb2.Empty(), timeout=5)
    stub.SendPolicyInstructions(services_pb2.PolicySetup(
        data=config or fixture("remote_policy_config.pkl")), timeout=5)


def get_actions(stub: Any) -> list[Any]:
    reply = stub.GetActions(services_pb2.Empty(), timeout=10)
    assert reply.data, "GetActions answered empty"
    actions = restricted_loads(reply.data, reply_reader())
    assert isinstance(actions, list)
    return actions


def assert_actions(actions: list[Any], expected: list[float], first_timestep: int,
                   obs_timestamp: float) -> None:
    assert [a.fields["timestep"] for a in actions] == [first_timestep + i for i in range(3)]
    for i, action in enumerate(actions):
        assert action.fields["timestamp"] == pytest.approx(obs_timestamp + (i + 1) / 30)
        assert action.fields["action"].tolist() == pytest.approx(expected, abs=1e-6)


def test_actions_equal_the_routers_own_act(lerobot_router: LeRobotRouter, stub: Any) -> None:
    """The recorded observation (39 joints, a camera, task reach-v3) in three chunks: the
    chunk of actions_per_chunk=3 actions is the router's /v1/act action for that state and
    task. Then the recorded tensor observation with a free-text task: the inferred task's."""
    start_session(stub)
    data = fixture("timed_observation.pkl")
    stub.SendObservations(iter(chunks(data, len(data) // 3 + 1)), timeout=5)
    expected = lerobot_router.act(VALUES["state"], VALUES["task"])
    assert_actions(get_actions(stub), expected, 1, 1767225600.25)

    stub.Ready(services_pb2.Empty(), timeout=5)  # a new episode: the config stays
    stub.SendObservations(iter(chunks(fixture("timed_observation_tensors.pkl"), 2**20)),
                          timeout=5)
    inferred = lerobot_router.act(VALUES["state"], None)
    assert_actions(get_actions(stub), inferred, 6, 1767225601.5)


def test_get_actions_is_a_bounded_long_poll(lerobot_router: LeRobotRouter, stub: Any) -> None:
    start_session(stub)
    start = time.monotonic()
    reply = stub.GetActions(services_pb2.Empty(), timeout=10)
    elapsed = time.monotonic() - start
    assert reply.data == b"" and POLL_S - 0.05 <= elapsed < POLL_S + 1.5
    with lerobot_router.channel() as channel:  # a peer that never said Ready
        other = async_inference(channel)
        start = time.monotonic()
        with pytest.raises(grpc.RpcError) as info:
            other.GetActions(services_pb2.Empty(), timeout=10)
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert time.monotonic() - start >= POLL_S - 0.05  # not a busy loop for the client


def test_sessions_are_per_peer(lerobot_router: LeRobotRouter, stub: Any) -> None:
    start_session(stub)
    stub.SendObservations(iter(chunks(fixture("timed_observation.pkl"), 2**20)), timeout=5)
    with lerobot_router.channel() as channel:
        other = async_inference(channel)
        start_session(other)  # another robot's Ready leaves this one's observation queued
        assert len(get_actions(stub)) == 3
        assert other.GetActions(services_pb2.Empty(), timeout=10).data == b""
    stub.SendObservations(iter(chunks(fixture("timed_observation.pkl"), 2**20)), timeout=5)
    stub.Ready(services_pb2.Empty(), timeout=5)  # its own Ready drops it
    assert stub.GetActions(services_pb2.Empty(), timeout=10).data == b""


def send_error(stub: Any, messages: list[Any]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        stub.SendObservations(iter(messages), timeout=5)
    return info.value


def test_hostile_malformed_and_oversized_messages_are_refused(
        lerobot_router: LeRobotRouter, stub: Any, tmp_path: Path) -> None:
    err = send_error(stub, chunks(fixture("timed_observation.pkl"), 2**20))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION  # no SendPolicyInstructions yet

    config = restricted_loads(fixture("remote_policy_config.pkl"))
    assert isinstance(config, RemotePolicyConfig)
    with pytest.raises(grpc.RpcError) as info:
        start_session(stub, lerobot_pickle("RemotePolicyConfig",
                                           **{**config.fields, "policy_type": "mystery"}))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details().startswith("policy_type")
    start_session(stub)

    marker = tmp_path / "ran"  # the router would create it if it ran the payload
    opener = Evil(eval, f"open({str(marker)!r}, 'w')")
    for payload in (pickle.dumps(Evil(os.system, f"touch {marker}")),
                    lerobot_pickle("TimedObservation", timestamp=1.0, timestep=0,
                                   observation={"x": opener})):
        err = send_error(stub, chunks(payload, 2**20))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "not allowed" in err.details()
    assert not marker.exists()

    observation = decode_observation(fixture("timed_observation.pkl")).observation
    del observation["joint_07.pos"]
    err = send_error(stub, chunks(lerobot_pickle(
        "TimedObservation", timestamp=2.0, timestep=1, must_go=True, observation=observation),
        2**20))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert dict(err.trailing_metadata())["field"] == "joint_07.pos"

    err = send_error(stub, chunks(b"\x00" * (MAX_MESSAGE + 1), 16 * 1024))
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "over 65536" in err.details()
    err = send_error(stub, [services_pb2.Observation(transfer_state=END,
                                                     data=b"\x00" * (MAX_MESSAGE + 8192))])
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # grpc's own receive limit

    with lerobot_router.channel() as channel:
        setup = channel.unary_unary("/transport.AsyncInference/SendPolicyInstructions")
        with pytest.raises(grpc.RpcError) as info:
            setup(b"\x0a\xff", timeout=5)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert info.value.details().startswith("request")

    stub.SendObservations(iter(chunks(fixture("timed_observation.pkl"), 2**20)), timeout=5)
    assert len(get_actions(stub)) == 3  # still serving


CLIENT_CODES = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION,
                grpc.StatusCode.RESOURCE_EXHAUSTED}


@st.composite
def observation_stream(draw: st.DrawFn) -> list[services_pb2.Observation]:
    """Chunks as LeRobot sends them, or not: random transfer states and bytes, or a recorded
    observation cut, truncated or bit-flipped."""
    recorded = fixture("timed_observation.pkl")
    data = draw(st.one_of(
        st.binary(max_size=400),
        st.integers(1, len(recorded) - 1).map(lambda n: recorded[:n]),
        st.tuples(st.integers(0, len(recorded) - 1), st.integers(1, 255)).map(
            lambda ix: recorded[:ix[0]] + bytes([recorded[ix[0]] ^ ix[1]])
            + recorded[ix[0] + 1:])))
    size = draw(st.integers(1, 4096))
    messages = chunks(data, size) if data else []
    if draw(st.booleans()) and messages:  # scramble the transfer states
        states = draw(st.lists(st.sampled_from([END, BEGIN, MIDDLE, 0, 7]),
                               min_size=len(messages), max_size=len(messages)))
        messages = [services_pb2.Observation(transfer_state=s, data=m.data)
                    for s, m in zip(states, messages, strict=True)]
    return messages


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(messages=observation_stream())
def test_fuzz_send_observations_never_answers_internal(
        lerobot_router: LeRobotRouter, messages: list[services_pb2.Observation]) -> None:
    with lerobot_router.channel() as channel:
        stub = async_inference(channel)
        start_session(stub)
        try:
            stub.SendObservations(iter(messages), timeout=5)
            event("accepted")
        except grpc.RpcError as err:
            assert err.code() in CLIENT_CODES, (err.code(), err.details())
            assert err.details()
            event(err.code().name)
        # Whatever it was sent, the service still serves a real observation.
        stub.SendObservations(iter(chunks(fixture("timed_observation.pkl"), 2**20)), timeout=5)
        assert get_actions(stub)
