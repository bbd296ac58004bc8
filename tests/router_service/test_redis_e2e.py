"""What replicas share through a real redis-server: the contract (reload reaches every
replica), stickiness, and the decision log, which survives Redis going away."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import redis

from tests.router_fixtures import (
    ADMIN_KEY,
    ContractFiles,
    RedisServer,
    RouterFactory,
    act_body,
)
from tests.router_service.test_http_e2e import STATE

pytestmark = [pytest.mark.slow, pytest.mark.triton, pytest.mark.redis]


@pytest.fixture
def fresh_redis(redis_server: RedisServer) -> RedisServer:
    redis.Redis.from_url(redis_server.url).flushdb()
    return redis_server


def wait_for(predicate: Any, timeout_s: float = 5.0) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_reload_on_one_replica_reaches_the_other(
    start_router: RouterFactory, fresh_redis: RedisServer, contract_files: ContractFiles,
    triton_faults: Any,
) -> None:
    a = start_router(redis_url=fresh_redis.url)
    b = start_router(redis_url=fresh_redis.url)
    contract_files.write(version="test-2", specialist=0.4, generalist=0.9)
    with a.client(ADMIN_KEY) as admin:
        assert admin.post("/v1/admin/contract/reload").json()["version"] == "test-2"

    def b_version() -> str:
        with b.client() as c:
            return str(c.get("/v1/contract").json()["spec"]["version"])

    assert wait_for(lambda: b_version() == "test-2")
    with b.client() as c:
        reply = c.post("/v1/act", json=act_body(STATE, episode="new")).json()
    assert reply["route"] == "generalist"  # b routes by a's new calibration
    assert 'router_contract_info{version="test-2"} 1.0' in b.metrics()


def test_stickiness_is_shared_between_replicas(
    start_router: RouterFactory, fresh_redis: RedisServer, contract_files: ContractFiles,
    triton_faults: Any,
) -> None:
    a = start_router(redis_url=fresh_redis.url)
    with a.client() as c:
        first = c.post("/v1/act", json=act_body(STATE, episode="shared")).json()
    contract_files.write(version="test-3", specialist=0.4, generalist=0.9)
    with a.client(ADMIN_KEY) as admin:
        admin.post("/v1/admin/contract/reload")
    b = start_router(redis_url=fresh_redis.url)  # starts on the stored contract test-3
    with b.client() as c:
        assert c.get("/v1/contract").json()["spec"]["version"] == "test-3"
        same = c.post("/v1/act", json=act_body(STATE, episode="shared")).json()
    assert first["route"] == "specialist_reach_v3"
    assert (same["route"], same["reason"]) == ("specialist_reach_v3", "sticky")


def test_decision_log_survives_redis_restart(
    start_router: RouterFactory, fresh_redis: RedisServer, triton_faults: Any
) -> None:
    router = start_router(redis_url=fresh_redis.url)
    ids: list[str] = []

    def act(n: int, tag: str) -> None:
        with router.client() as c:
            for i in range(n):
                reply = c.post("/v1/act", json=act_body(STATE, episode=f"{tag}{i}"))
                assert reply.status_code == 200, reply.text
                ids.append(reply.json()["decision_id"])

    act(10, "before")
    stream = redis.Redis.from_url(fresh_redis.url, decode_responses=True)
    assert wait_for(lambda: stream.xlen("router:decisions") >= 10)
    fresh_redis.process.stop()
    try:
        act(15, "during")  # serving goes on without Redis
        assert wait_for(lambda: "router_redis_up 0.0" in router.metrics())
        assert "router_decision_log_buffered 15.0" in router.metrics()
    finally:
        fresh_redis.process.start()
    assert wait_for(lambda: "router_decision_log_buffered 0.0" in router.metrics(), 10.0)
    act(5, "after")
    assert wait_for(lambda: stream.xlen("router:decisions") >= 30)
    logged = [fields["decision_id"] for _, fields in stream.xrange("router:decisions")]
    assert logged == ids  # every decision, in order, none lost
    assert "router_decision_log_lost_total 0.0" in router.metrics()
    entry = stream.xrange("router:decisions", count=1)[0][1]
    record = json.loads(entry["record"])  # one typed DecisionRecord, serialised once
    assert record["decision_id"] == entry["decision_id"] == ids[0]
    for field in ("state", "candidates", "route_chosen", "budget_ms", "contract_version",
                  "task_probs", "path", "timing_ms", "action", "queued_ms", "batch_size"):
        assert field in record  # enough to replay the decision
    assert len(record["state"]) == len(STATE) and record["batch_size"] == 1


def test_without_redis_url_the_embedded_store_serves(
    start_router: RouterFactory, triton_faults: Any
) -> None:
    router = start_router()
    with router.client() as c:
        assert c.post("/v1/act", json=act_body(STATE)).status_code == 200
    assert "router_redis_up 1.0" in router.metrics()
