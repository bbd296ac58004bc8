"""Key configuration, authentication, what a key may do, and the token bucket: in process, with
an injected clock (no sleeps)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from router_service.access import KeyAccess
from router_service.auth import ANONYMOUS, ApiKeys
from router_service.errors import Forbidden, RateLimited, Unauthorized
from router_service.keys import KeyConfigError, describe, parse_keys
from router_service.metrics import RouterMetrics
from router_service.rate_limit import RateLimiter, TokenBucket
from router_service.settings import RouterSettings

SECRET = "s3cret-key-for-arm"


def key_id(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()[:8]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# -- configuration ------------------------------------------------------------------------
def test_a_plain_list_gives_keys_that_cover_every_robot_without_a_limit() -> None:
    keys = parse_keys(" k1 , k2,")
    assert [k.key_id for k in keys] == [key_id("k1"), key_id("k2")]
    assert all(k.covers("any-robot") and k.rate_per_s is None for k in keys)
    assert parse_keys("") == []


def test_a_json_object_binds_keys_to_robots_and_prefixes() -> None:
    (key,) = parse_keys(json.dumps({SECRET: {"robots": ["arm-1", "cell-a-*"],
                                             "rate_per_s": 200, "burst": 400}}))
    assert key.key_id == key_id(SECRET) and len(key.key_id) == 8
    assert key.covers("arm-1") and key.covers("cell-a-7") and key.covers("cell-a-")
    assert not key.covers("arm-10") and not key.covers("cell-b-1") and not key.covers("arm")
    assert (key.rate_per_s, key.burst) == (200.0, 400.0)
    (everyone,) = parse_keys(json.dumps({"k": {"robots": ["*"], "rate_per_s": 2.5}}))
    assert everyone.covers("whatever") and everyone.burst == 2.5  # one second's worth
    (small,) = parse_keys(json.dumps({"k": {"robots": ["a"], "rate_per_s": 0.2}}))
    assert small.burst == 1.0  # never below one request


@pytest.mark.parametrize(("binding", "field", "words"), [
    ({"robots": []}, "robots", "at least 1"),
    ({}, "robots", "required"),
    ({"robots": ["arm 1"]}, "robots.0", "pattern"),
    ({"robots": ["cell-*-a"]}, "robots.0", "pattern"),
    ({"robots": ["a"], "rate_per_s": 0}, "rate_per_s", "greater than 0"),
    ({"robots": ["a"], "rate_per_s": 1, "burst": 0.5}, "burst", "greater than or equal to 1"),
    ({"robots": ["a"], "burst": 5}, "", "burst needs rate_per_s"),
    ({"robots": ["a"], "rate": 5}, "rate", "Extra inputs"),
    (["a"], "", "valid dictionary"),
])
def test_a_bad_binding_is_refused_naming_the_field_never_the_key(
    binding: object, field: str, words: str
) -> None:
    with pytest.raises(KeyConfigError) as info:
        parse_keys(json.dumps({SECRET: binding}))
    message = str(info.value)
    where = f"ROUTER_API_KEYS[key {key_id(SECRET)}]"
    assert message.startswith(f"{where}.{field}:" if field else f"{where}:"), message
    assert words in message and SECRET not in message


@pytest.mark.parametrize(("text", "words"), [
    ('{"a": {"robots": ["x"]}, "a": {"robots": ["y"]}}', "listed twice"),
    ('{"a": {"robots": ["x"]}', "not valid JSON"),
    ('{"has space": {"robots": ["x"]}}', "printable ASCII"),
    ('["k1", "k2"]', "expected an object"),  # not two keys named '["k1"' and '"k2"]'
])
def test_a_bad_configuration_is_refused_with_a_clear_error(text: str, words: str) -> None:
    with pytest.raises(KeyConfigError, match=words) as info:
        parse_keys(text)
    assert "has space" not in str(info.value)


def test_settings_from_the_environment_or_a_file(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    config = {SECRET: {"robots": ["arm-1"]}}
    monkeypatch.setenv("ROUTER_API_KEYS", json.dumps(config))
    assert [k.key_id for k in ApiKeys.from_settings(RouterSettings()).robot_keys] == [
        key_id(SECRET)]
    monkeypatch.delenv("ROUTER_API_KEYS")
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(config))
    monkeypatch.setenv("ROUTER_API_KEYS_FILE", str(path))
    assert len(ApiKeys.from_settings(RouterSettings()).robot_keys) == 1
    monkeypatch.setenv("ROUTER_API_KEYS", "k1")
    with pytest.raises(KeyConfigError, match="both set"):
        ApiKeys.from_settings(RouterSettings())
    monkeypatch.delenv("ROUTER_API_KEYS")
    monkeypatch.setenv("ROUTER_API_KEYS_FILE", str(tmp_path / "missing.json"))
    with pytest.raises(KeyConfigError, match="ROUTER_API_KEYS_FILE: cannot read"):
        ApiKeys.from_settings(RouterSettings())


def test_the_admin_key_must_not_also_be_a_robot_key() -> None:
    with pytest.raises(KeyConfigError, match="ROUTER_ADMIN_KEY") as info:
        ApiKeys.from_settings(RouterSettings(api_keys="k1,adm", admin_key="adm"))
    assert "adm" not in str(info.value).replace("admin", "")


def test_what_is_described_has_no_key_material() -> None:
    keys = parse_keys(json.dumps({SECRET: {"robots": ["arm-1", "cell-a-*"], "rate_per_s": 3}}))
    text = json.dumps(describe(keys))
    assert SECRET not in text and key_id(SECRET) in text and "cell-a-*" in text
    assert SECRET not in repr(keys[0])


# -- authentication -----------------------------------------------------------------------
def test_a_request_is_its_key_and_known_headers_are_cached() -> None:
    keys = ApiKeys.from_settings(RouterSettings(
        api_keys=json.dumps({SECRET: {"robots": ["arm-1"]}}), admin_key="adm"))
    header = f"Bearer {SECRET}".encode()
    key = keys.robot(header)
    assert key.key_id == key_id(SECRET)
    assert keys.robot(header) is key and keys.robot(header.decode()) is key
    assert keys.robot(b"bearer adm").covers("any")  # the admin key works on robot endpoints
    for bad in (None, b"", b"Bearer", b"Bearer wrong", f"Basic {SECRET}".encode()):
        with pytest.raises(Unauthorized) as info:
            keys.robot(bad)
        assert info.value.field == "authorization"
    with pytest.raises(Forbidden):
        keys.check_admin(header)
    keys.check_admin("Bearer adm")
    with pytest.raises(Unauthorized):
        keys.check_admin("Bearer nope")


def test_the_token_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("router_service.auth.MAX_CACHED_TOKENS", 2)
    keys = ApiKeys.from_settings(RouterSettings(api_keys="k1"))
    for header in (b"Bearer k1", b"Bearer  k1", b"Bearer k1 ", "Bearer k1"):
        keys.robot(header)  # four spellings of one key
        assert len(keys._cache) <= 2


def test_with_auth_disabled_every_request_is_anonymous() -> None:
    keys = ApiKeys.from_settings(RouterSettings(auth_disabled=True))
    assert keys.robot(None) is ANONYMOUS and ANONYMOUS.covers("anything")
    keys.check_admin(None)


# -- the token bucket and what a key may do -------------------------------------------------
def test_the_bucket_allows_its_burst_then_refills_at_its_rate() -> None:
    bucket = TokenBucket.full(rate_per_s=2.0, burst=3.0, now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.5)  # one token in half a second
    assert bucket.take(0.25) == pytest.approx(0.25)  # refused requests take nothing
    assert bucket.take(0.5) == 0.0
    assert bucket.take(100.0) == 0.0 and bucket.tokens == pytest.approx(2.0)  # capped at burst
    assert bucket.take(99.0) == 0.0  # a clock that steps back adds nothing


def test_keys_have_their_own_buckets_and_unlimited_keys_none() -> None:
    limited, other, free = parse_keys(json.dumps({
        "k1": {"robots": ["a"], "rate_per_s": 1, "burst": 1},
        "k2": {"robots": ["b"], "rate_per_s": 1, "burst": 1},
        "k3": {"robots": ["c"]},
    }))
    clock = Clock()
    limiter = RateLimiter([limited, other, free], clock)
    assert limiter.wait_s(limited) == 0.0 and limiter.wait_s(limited) == pytest.approx(1.0)
    assert limiter.wait_s(other) == 0.0  # unaffected by k1
    assert all(limiter.wait_s(free) == 0.0 for _ in range(1000))
    clock.now += 1.0
    assert limiter.wait_s(limited) == 0.0


def test_access_refuses_other_robots_and_over_the_rate_with_a_retry_hint() -> None:
    key, other = parse_keys(json.dumps({
        SECRET: {"robots": ["arm-1", "cell-a-*"], "rate_per_s": 4, "burst": 2},
        "k2": {"robots": ["arm-2"]},
    }))
    metrics, clock = RouterMetrics(), Clock()
    access = KeyAccess([key, other], metrics, clock)
    access.authorize(key, "cell-a-7")
    with pytest.raises(Forbidden) as forbidden:
        access.authorize(key, "cell-b-1")
    assert forbidden.value.field == "robot_id" and SECRET not in forbidden.value.message
    with pytest.raises(RateLimited) as limited:
        access.authorize(key, "arm-1")
    assert limited.value.retry_after_ms == 250.0 and limited.value.http_status == 429
    assert limited.value.grpc_code == "RESOURCE_EXHAUSTED"
    assert metrics.registry.get_sample_value(
        "router_rate_limited_total", {"key_id": key.key_id}) == 1.0
    access.authorize(other, "arm-2")  # another key is unaffected
    clock.now += 0.25
    access.authorize(key, "arm-1")


def test_feedback_is_for_decisions_of_the_same_key_or_its_robots() -> None:
    key, other = parse_keys(json.dumps({"k1": {"robots": ["arm-1"]}, "k2": {"robots": ["arm-2"]}}))
    KeyAccess.check_decision(key, "arm-1", other.key_id)  # a robot it covers (key rotation)
    KeyAccess.check_decision(key, "arm-9", key.key_id)  # a decision it asked for
    with pytest.raises(Forbidden) as info:
        KeyAccess.check_decision(key, "arm-2", other.key_id)
    assert info.value.field == "decision_id" and "arm-2" not in info.value.message
