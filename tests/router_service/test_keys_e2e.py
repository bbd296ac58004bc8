"""Keys bound to robots, against the real router process (Triton and Redis real too): a key acts
and gives feedback only for its own robots, on every transport, within its rate; and no key
reaches the router's log or the decision log."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from typing import Any

import grpc
import httpx
import pytest
import redis
from router_client.proto import router_pb2, router_pb2_grpc
from websockets.sync.client import connect

from tests.router_fixtures import ADMIN_KEY, RedisServer, RouterFactory, RouterProcess, act_body
from tests.router_service.test_http_e2e import STATE

pytestmark = [pytest.mark.slow, pytest.mark.triton, pytest.mark.redis]

# Distinctive values, so a leak anywhere is found by a plain substring search.
KEY_A = "key-a-" + uuid.uuid4().hex
KEY_B = "key-b-" + uuid.uuid4().hex
KEY_SLOW = "key-slow-" + uuid.uuid4().hex
KEY_SLOW_2 = "key-slow2-" + uuid.uuid4().hex
KEYS = {
    KEY_A: {"robots": ["arm-a-1", "cell-a-*"]},
    KEY_B: {"robots": ["arm-b-1"]},
    # One token every 2 s: a burst of 3 is spent long before the bucket refills.
    KEY_SLOW: {"robots": ["slow-1"], "rate_per_s": 0.5, "burst": 3},
    KEY_SLOW_2: {"robots": ["slow-2"], "rate_per_s": 0.5, "burst": 3},
}
RAW_KEYS = (*KEYS, ADMIN_KEY)


def key_id(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()[:8]


@pytest.fixture
def fresh_redis(redis_server: RedisServer) -> RedisServer:
    redis.Redis.from_url(redis_server.url).flushdb()
    return redis_server


@pytest.fixture
def router(start_router: RouterFactory, fresh_redis: RedisServer, triton_faults: Any
           ) -> RouterProcess:
    return start_router(redis_url=fresh_redis.url, api_keys=json.dumps(KEYS))


def act(c: httpx.Client, robot: str, episode: str = "ep-1") -> httpx.Response:
    return c.post("/v1/act", json=act_body(STATE, robot=robot, episode=episode))


def grpc_request(robot: str, seq: int = 0) -> router_pb2.ActRequest:
    return router_pb2.ActRequest(robot_id=robot, episode_id="g1", task="reach-v3", sequence=seq,
                                 observation=router_pb2.Observation(state=STATE))


def auth(key: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {key}"),)


def assert_no_raw_key(router: RouterProcess, redis_url: str, min_entries: int) -> None:
    """Neither the router's own output nor any decision-log entry holds a key."""
    stream = redis.Redis.from_url(redis_url, decode_responses=True)
    deadline = time.monotonic() + 5.0
    while stream.xlen("router:decisions") < min_entries and time.monotonic() < deadline:
        time.sleep(0.05)
    entries = [fields["record"] for _, fields in stream.xrange("router:decisions")]
    assert len(entries) >= min_entries
    printed = router.process.log_path.read_text(errors="replace")
    assert "robot keys (by key_id)" in printed  # the start-up line names keys by id only
    for raw in RAW_KEYS:
        assert raw not in printed
        assert not any(raw in entry for entry in entries)
    assert not any(raw in router.metrics() for raw in RAW_KEYS)


def test_a_key_acts_only_for_the_robots_it_covers(router: RouterProcess,
                                                  fresh_redis: RedisServer) -> None:
    with router.client(KEY_A) as a, router.client(KEY_B) as b:
        assert act(a, "arm-a-1").status_code == 200
        assert act(a, "cell-a-7").status_code == 200  # prefix binding
        assert act(b, "arm-b-1", episode="b-ep").status_code == 200
        # B's robot and episode, another task: it would have moved B's episode lease.
        takeover = a.post("/v1/act", json=act_body(STATE, task="pick-place-v3",
                                                     robot="arm-b-1", episode="b-ep"))
        refused = [takeover, act(a, "cell-b-1"), act(b, "cell-a-7"), act(a, "arm-a-10")]
    for r in refused:
        assert r.status_code == 403, r.text
        error = r.json()["error"]
        assert (error["code"], error["field"]) == ("forbidden", "robot_id")
        assert not any(raw in r.text for raw in RAW_KEYS)
    with router.client(ADMIN_KEY) as admin:  # the admin key still covers every robot
        assert act(admin, "anything-9").status_code == 200
    with router.client(KEY_B) as b:  # B's episode kept its lease
        again = act(b, "arm-b-1", episode="b-ep").json()
    assert again["reason"] == "sticky"
    wanted = {("arm-a-1", key_id(KEY_A)), ("cell-a-7", key_id(KEY_A)),
              ("arm-b-1", key_id(KEY_B))}
    client = redis.Redis.from_url(fresh_redis.url, decode_responses=True)
    # The decision log is written in batches every 100 ms, off the reply path: wait for it.
    deadline = time.monotonic() + 10.0
    while True:
        logged = [json.loads(fields["record"]) for _, fields in
                  client.xrange("router:decisions")]
        found = {(d["robot_id"], d["key_id"]) for d in logged}
        if found >= wanted or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert found >= wanted
    assert_no_raw_key(router, fresh_redis.url, min_entries=5)


def test_feedback_only_for_decisions_made_for_the_same_keys_robots(
    router: RouterProcess, fresh_redis: RedisServer
) -> None:
    with router.client(KEY_A) as a, router.client(KEY_B) as b:
        decision = act(b, "arm-b-1", episode="fb-b").json()["decision_id"]
        theirs = {"robot_id": "arm-a-1", "episode_id": "fb-a", "decision_id": decision,
                  "success": True}
        stolen = a.post("/v1/feedback", json=theirs)  # A names B's decision for its own robot
        as_robot = a.post("/v1/feedback", json={"robot_id": "arm-b-1", "episode_id": "fb-b",
                                                "success": False})  # B's episode, by lease
        own = b.post("/v1/feedback", json={"robot_id": "arm-b-1", "episode_id": "fb-b",
                                           "decision_id": decision, "success": True})
        # A decision no longer remembered (and no lease): the same answer as before keys.
        gone = b.post("/v1/feedback", json={"robot_id": "arm-b-1", "episode_id": "never",
                                            "decision_id": uuid.uuid4().hex, "success": True})
    assert stolen.status_code == 403 and stolen.json()["error"]["field"] == "decision_id"
    assert as_robot.status_code == 403 and as_robot.json()["error"]["field"] == "robot_id"
    assert own.status_code == 202, own.text
    assert gone.status_code == 422 and gone.json()["error"]["field"] == "decision_id"
    assert "arm-b-1" not in stolen.json()["error"]["message"]  # names no other robot
    assert not any(raw in r.text for r in (stolen, as_robot) for raw in RAW_KEYS)
    assert_no_raw_key(router, fresh_redis.url, min_entries=1)


def test_websocket_and_grpc_refuse_other_robots_the_same_way(router: RouterProcess) -> None:
    url = router.url.replace("http://", "ws://") + "/v1/act/stream"
    with connect(url, additional_headers={"Authorization": f"Bearer {KEY_A}"},
                 open_timeout=10) as ws:
        ws.send(json.dumps(act_body(STATE, robot="arm-b-1") | {"sequence": 1}))
        refused = json.loads(ws.recv(timeout=10))
        ws.send(json.dumps(act_body(STATE, robot="cell-a-3") | {"sequence": 2}))
        served = json.loads(ws.recv(timeout=10))
    assert refused["sequence"] == 1
    assert (refused["error"]["code"], refused["error"]["field"]) == ("forbidden", "robot_id")
    assert served["sequence"] == 2 and len(served["action"]) == 4  # the session goes on

    with grpc.insecure_channel(f"127.0.0.1:{router.grpc_port}") as channel:
        stub = router_pb2_grpc.PolicyRouterStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.Act(grpc_request("arm-b-1"), timeout=2.0, metadata=auth(KEY_A))
        assert stub.Act(grpc_request("arm-a-1"), timeout=2.0, metadata=auth(KEY_A)).action
        replies = list(stub.StreamAct(iter([grpc_request("arm-b-1", 1),
                                            grpc_request("cell-a-1", 2)]),
                                      timeout=5.0, metadata=auth(KEY_A)))
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert info.value.details().startswith("robot_id")
    assert dict(info.value.trailing_metadata())["field"] == "robot_id"
    assert KEY_A not in info.value.details()
    assert (replies[0].error.code, replies[0].error.field) == ("PERMISSION_DENIED", "robot_id")
    assert replies[1].sequence == 2 and not replies[1].error.code and replies[1].action


def test_a_key_over_its_rate_gets_429_with_a_retry_hint_and_recovers(
    router: RouterProcess, fresh_redis: RedisServer
) -> None:
    with router.client(KEY_SLOW) as slow, router.client(KEY_SLOW_2) as slow2, \
            router.client(KEY_A) as a:
        replies = []
        for i in range(8):  # the burst, then the first refusal
            replies.append(act(slow, "slow-1", episode=f"r{i}"))
            if replies[-1].status_code == 429:
                break
        limited = replies[-1]
        assert [r.status_code for r in replies[:3]] == [200] * 3
        assert limited.status_code == 429, [r.status_code for r in replies]
        with grpc.insecure_channel(f"127.0.0.1:{router.grpc_port}") as channel, \
                pytest.raises(grpc.RpcError) as info:  # one bucket for every transport
            router_pb2_grpc.PolicyRouterStub(channel).Act(
                grpc_request("slow-1"), timeout=2.0, metadata=auth(KEY_SLOW))
        # Other keys are unaffected: one with a rate of its own, one without.
        assert [act(slow2, "slow-2", episode=f"o{i}").status_code for i in range(3)] == [200] * 3
        assert all(act(a, "arm-a-1", episode=f"a{i}").status_code == 200 for i in range(5))
        error = limited.json()["error"]
        assert error["code"] == "rate_limited" and 0 < error["retry_after_ms"] <= 2000
        assert 1 <= int(limited.headers["Retry-After"]) <= 2  # seconds, rounded up
        time.sleep(error["retry_after_ms"] / 1000 + 0.1)
        assert act(slow, "slow-1", episode="after").status_code == 200
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert float(dict(info.value.trailing_metadata())["retry-after-ms"]) > 0
    metrics = router.metrics()
    assert f'router_rate_limited_total{{key_id="{key_id(KEY_SLOW)}"}} 2.0' in metrics
    assert f'key_id="{key_id(KEY_SLOW_2)}"' not in metrics
    assert_no_raw_key(router, fresh_redis.url, min_entries=10)
