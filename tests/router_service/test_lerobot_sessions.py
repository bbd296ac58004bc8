"""LeRobot sessions without servers: chunk reassembly and its cap, LeRobot's queueing rules per
peer, the long poll's bound, RemotePolicyConfig checks and the service's identity."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import SecretStr

from router_service.auth import ANONYMOUS, ApiKeys
from router_service.errors import InvalidRequest, PayloadTooLarge
from router_service.keys import KeyConfigError, digest, key_id_of
from router_service.lerobot.messages import (
    TRANSFER_BEGIN,
    TRANSFER_END,
    TRANSFER_MIDDLE,
    Observed,
    decode_policy_config,
    reassemble,
)
from router_service.lerobot.proto import services_pb2
from router_service.lerobot.server import lerobot_identity
from router_service.lerobot.sessions import Session, Sessions
from router_service.lerobot.unpickle import RemotePolicyConfig, restricted_loads
from router_service.observation_map import MappedObservation
from router_service.settings import RouterSettings
from tests.router_service.test_lerobot_unpickle import fixture, lerobot_pickle


@dataclass
class Chunk:
    transfer_state: int
    data: bytes


async def stream(*chunks: Chunk | None) -> AsyncIterator[Chunk | None]:
    for chunk in chunks:
        yield chunk


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# -- chunks ---------------------------------------------------------------------------------
def test_one_chunk_message_is_a_lone_end() -> None:
    assert run(reassemble(stream(Chunk(TRANSFER_END, b"abc")), 10)) == b"abc"


def test_chunks_are_joined_and_begin_starts_over() -> None:
    chunks = [Chunk(TRANSFER_BEGIN, b"zz"), Chunk(TRANSFER_BEGIN, b"ab"),
              Chunk(TRANSFER_MIDDLE, b"cd"), Chunk(TRANSFER_END, b"ef"),
              Chunk(TRANSFER_END, b"never read")]
    assert run(reassemble(stream(*chunks), 6)) == b"abcdef"


def test_generated_messages_reassemble() -> None:
    msgs = [services_pb2.Observation(transfer_state=services_pb2.TRANSFER_BEGIN, data=b"x" * 5),
            services_pb2.Observation(transfer_state=services_pb2.TRANSFER_END, data=b"y")]
    assert run(reassemble(stream(*msgs), 6)) == b"xxxxxy"


def test_total_size_is_capped_before_the_end() -> None:
    chunks = [Chunk(TRANSFER_BEGIN, b"a" * 6), Chunk(TRANSFER_MIDDLE, b"b" * 5)]
    with pytest.raises(PayloadTooLarge, match="over 10 bytes") as info:
        run(reassemble(stream(*chunks), 10))
    assert info.value.field == "data"


@pytest.mark.parametrize(("chunks", "match"), [
    ([Chunk(0, b"a")], "transfer_state 0"),
    ([Chunk(7, b"a")], "transfer_state 7"),
    ([Chunk(TRANSFER_BEGIN, b"a")], "ended before"),
    ([], "ended before"),
    ([None], "not a valid Observation"),
])
def test_bad_streams_are_invalid(chunks: list[Chunk | None], match: str) -> None:
    with pytest.raises(InvalidRequest, match=match):
        run(reassemble(stream(*chunks), 100))


# -- LeRobot's queueing rules ---------------------------------------------------------------
def obs(timestep: int, state: list[float], must_go: bool = False
        ) -> tuple[Observed, MappedObservation, float]:
    """`Session.offer`'s observation, its mapping and its arrival time (now)."""
    return Observed(1.0, timestep, must_go, {}), MappedObservation(state, None), time.monotonic()


def test_lerobot_filters_apply_while_the_client_still_has_actions() -> None:
    async def scenario() -> None:
        s = Session("peer")
        assert s.offer(*obs(0, [0.0, 0.0]), atol=1.0)
        taken = await s.take(0.1)
        assert taken is not None and taken.observed.timestep == 0
        s.sent(3)  # a chunk for steps 1..3 went back
        assert not s.offer(*obs(0, [5.0, 5.0]), atol=1.0)  # timestep predicted already
        assert not s.offer(*obs(1, [0.5, 0.0]), atol=1.0)  # within atol of the last
        assert s.offer(*obs(1, [0.5, 0.0], must_go=True), atol=1.0)  # must_go always goes
        assert s.offer(*obs(2, [3.0, 0.0]), atol=1.0)  # new step, far enough: replaces
        taken = await s.take(0.1)
        assert taken is not None and taken.observed.timestep == 2
        assert await s.take(0.05) is None
    run(scenario())


def test_an_observation_with_nothing_left_to_execute_always_goes() -> None:
    """Before any chunk was sent, or once the client reached the last step sent, its queue is
    empty: the observation goes, even unmarked (LeRobot's client loses its must_go flag when a
    reply beats its own SendObservations) and unchanged (a robot standing still)."""
    async def scenario() -> None:
        s = Session("peer")
        assert s.offer(*obs(0, [0.0]), atol=1.0) and await s.take(0.1) is not None
        assert s.offer(*obs(0, [0.0]), atol=1.0)  # no chunk sent yet (the router shed it)
        assert await s.take(0.1) is not None
        s.sent(1)
        assert s.offer(*obs(1, [0.0]), atol=1.0)  # step 1 executed: nothing left
        assert await s.take(0.1) is not None  # ... and the router could not answer it
        assert s.offer(*obs(1, [0.0]), atol=1.0)  # still nothing left: it goes again
    run(scenario())


def test_long_poll_is_bounded_and_wakes_on_an_observation() -> None:
    async def scenario() -> None:
        s = Session("peer")
        start = time.monotonic()
        assert await s.take(0.2) is None
        assert 0.19 <= time.monotonic() - start < 0.6
        waiter = asyncio.create_task(s.take(5.0))
        await asyncio.sleep(0.05)
        start = time.monotonic()
        s.offer(*obs(0, [1.0]), atol=1.0)
        taken = await waiter
        assert taken is not None and time.monotonic() - start < 0.5
    run(scenario())


def test_ready_resets_only_the_callers_session_and_wakes_its_poll() -> None:
    async def scenario() -> None:
        sessions = Sessions()
        a, b = sessions.ready("ipv4:127.0.0.1:1"), sessions.ready("ipv4:127.0.0.1:2")
        a.offer(*obs(0, [1.0]), atol=1.0)
        waiter = asyncio.create_task(b.take(5.0))
        await asyncio.sleep(0.02)
        b2 = sessions.ready("ipv4:127.0.0.1:2")
        assert await asyncio.wait_for(waiter, 1.0) is None  # the old session's poll ends
        assert b2 is not b and b2.episode_id != b.episode_id and b2.pending is None
        assert sessions.get("ipv4:127.0.0.1:1") is a and a.pending is not None
    run(scenario())


def test_least_recently_seen_session_is_forgotten_past_the_limit() -> None:
    sessions = Sessions(max_sessions=2)
    first = sessions.ready("p1")
    sessions.ready("p2")
    sessions.get("p1")  # seen again: p2 is now the oldest
    sessions.get_or_create("p3")
    assert sessions.get("p2") is None and sessions.get("p1") is first and len(sessions) == 2


# -- RemotePolicyConfig checks --------------------------------------------------------------
def config_pickle(**changes: Any) -> bytes:
    """The recorded RemotePolicyConfig's fields, some changed, pickled as LeRobot does."""
    recorded = restricted_loads(fixture("remote_policy_config.pkl"))
    assert isinstance(recorded, RemotePolicyConfig)
    return lerobot_pickle("RemotePolicyConfig", **{**recorded.fields, **changes})


@pytest.mark.parametrize(("changes", "field"), [
    ({"policy_type": "mystery"}, "policy_type"),
    ({"actions_per_chunk": 0}, "actions_per_chunk"),
    ({"actions_per_chunk": 5000}, "actions_per_chunk"),
    ({"actions_per_chunk": True}, "actions_per_chunk"),
    ({"actions_per_chunk": "3"}, "actions_per_chunk"),
])
def test_bad_policy_configs_are_refused_naming_the_field(changes: dict[str, Any],
                                                         field: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        decode_policy_config(config_pickle(**changes))
    assert info.value.field == field


def test_every_policy_type_lerobot_serves_is_accepted() -> None:
    assert decode_policy_config(config_pickle(policy_type="pi05")).policy_type == "pi05"
    assert decode_policy_config(config_pickle()) == decode_policy_config(
        fixture("remote_policy_config.pkl"))


def test_state_names_must_be_strings() -> None:
    bad = {"observation.state": {"dtype": "float32", "shape": (2,), "names": ["a", 3]}}
    with pytest.raises(InvalidRequest) as info:
        decode_policy_config(config_pickle(lerobot_features=bad))
    assert info.value.field == "lerobot_features"


# -- identity -------------------------------------------------------------------------------
KEY = "lerobot-test-key"
KEY_ID = key_id_of(digest(KEY.encode()))


def keys(text: str, disabled: bool = False) -> ApiKeys:
    return ApiKeys.from_settings(RouterSettings(api_keys=SecretStr(text),
                                                auth_disabled=disabled))


def test_lerobot_is_off_and_local_by_default() -> None:
    settings = RouterSettings()
    assert not settings.lerobot_enabled and settings.lerobot_host == "127.0.0.1"


def test_identity_is_the_named_key() -> None:
    settings = RouterSettings(lerobot_key_id=KEY_ID)
    assert lerobot_identity(settings, keys(f"other,{KEY}")).key_id == KEY_ID
    assert lerobot_identity(RouterSettings(), keys("", disabled=True)) is ANONYMOUS


@pytest.mark.parametrize(("key_id", "configured", "match"), [
    (None, KEY, "ROUTER_LEROBOT_KEY_ID"),
    ("deadbeef", KEY, "ROUTER_LEROBOT_KEY_ID"),
    (KEY_ID, f'{{"{KEY}": {{"robots": ["arm-*"]}}}}', "ROUTER_LEROBOT_ROBOT_ID"),
])
def test_identity_must_be_a_configured_key_covering_the_robot(
        key_id: str | None, configured: str, match: str) -> None:
    with pytest.raises(KeyConfigError, match=match) as info:
        lerobot_identity(RouterSettings(lerobot_key_id=key_id), keys(configured))
    assert KEY not in str(info.value)  # named by key_id, never by value
