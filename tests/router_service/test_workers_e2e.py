"""`ROUTER_WORKERS=2`: two router processes on the same ports, sharing stickiness, the contract
and the decision log through a real redis-server, and reporting metrics summed over both."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import numpy as np
import pytest
import redis

from tests.router_fixtures import (
    ADMIN_KEY,
    ROBOT_KEY,
    ContractFiles,
    RedisServer,
    RouterFactory,
    act_body,
)

pytestmark = [pytest.mark.slow, pytest.mark.triton, pytest.mark.redis]

STATE = np.random.default_rng(0).normal(0, 0.3, 39).round(4).tolist()
AUTH = {"Authorization": f"Bearer {ROBOT_KEY}"}


def fresh_post(router: Any, body: dict[str, Any]) -> dict[str, Any]:
    """A new connection per request, so the kernel may hand it to either worker."""
    reply = httpx.post(f"{router.url}/v1/act", json=body, headers=AUTH, timeout=10.0)
    assert reply.status_code == 200, reply.text
    data: dict[str, Any] = reply.json()
    return data


def replicas(store: redis.Redis, ids: list[str]) -> dict[str, str]:
    rows = store.xrange("router:decisions")
    by_id = {f["decision_id"]: json.loads(f["record"])["replica"] for _, f in rows}
    return {i: by_id[i] for i in ids if i in by_id}


def test_two_workers_share_stickiness_contract_and_metrics(
    start_router: RouterFactory, redis_server: RedisServer, contract_files: ContractFiles,
    triton_faults: Any,
) -> None:
    store = redis.Redis.from_url(redis_server.url, decode_responses=True)
    store.flushdb()
    router = start_router(redis_url=redis_server.url, workers=2)
    first = fresh_post(router, act_body(STATE, episode="shared"))
    time.sleep(0.2)  # the lease write leaves the reply path; it is in Redis within ms
    # Until both workers have served a step: on a loaded machine the second worker may still be
    # starting when the first answers, and the kernel hands every connection to the one ready.
    steps: list[dict[str, Any]] = []
    served_by: dict[str, str] = {}
    deadline = time.monotonic() + 60
    while len(set(served_by.values())) < 2 and time.monotonic() < deadline:
        steps += [fresh_post(router, act_body(STATE, episode="shared")) for _ in range(10)]
        time.sleep(0.1)  # the decision log is flushed every 20 ms
        served_by = replicas(store, [first["decision_id"], *(s["decision_id"] for s in steps)])
    assert first["reason"] == "best_score"
    assert {s["route"] for s in steps} == {first["route"]}
    assert {s["reason"] for s in steps} == {"sticky"}  # whichever worker served the step
    assert len(set(served_by.values())) == 2, served_by  # both workers served this episode

    # A reload through one worker reaches the other (pub/sub), for every new connection.
    contract_files.write(version="test-2")
    reload = httpx.post(f"{router.url}/v1/admin/contract/reload", json={},
                        headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=10.0)
    assert reload.status_code == 200 and reload.json()["version"] == "test-2"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        seen = {httpx.get(f"{router.url}/v1/contract", headers=AUTH, timeout=5.0)
                .json()["spec"]["version"] for _ in range(10)}
        if seen == {"test-2"}:
            break
        time.sleep(0.1)
    assert seen == {"test-2"}

    # /metrics on any worker reports both workers' requests.
    text = httpx.get(f"{router.url}/metrics", timeout=5.0).text
    total = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                if line.startswith("router_requests_total{"))
    assert total == 1 + len(steps)
