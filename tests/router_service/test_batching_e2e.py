"""Cross-robot batching, shedding and deadline honesty against the real tritonserver.

A policy model that sleeps on demand (its fault file) keeps one Triton call in flight while
other robots' requests arrive, which is when the router batches."""

from __future__ import annotations

import concurrent.futures
import re
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import yaml

from tests.router_fixtures import ContractFiles, RouterFactory, act_body

pytestmark = [pytest.mark.slow, pytest.mark.triton]

SPEC = "specialist_reach_v3"
STATES = [np.random.default_rng(i).normal(0, 0.3, 39).round(4).tolist() for i in range(8)]


def triton_requests(triton: Any, model: str) -> float:
    text = httpx.get(triton.metrics_url, timeout=5.0).text
    found = re.search(rf'nv_inference_request_success\{{model="{model}",version="1"\}} (\S+)',
                      text)
    return float(found.group(1)) if found else 0.0


def metric(router: Any, line_start: str) -> float:
    for line in router.metrics().splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def edit_contract(files: ContractFiles, **changes: Any) -> Path:
    """Write the contract, then apply changes: `spec_latency_ms`, `latency_weight`, routing."""
    spec_ms = changes.pop("spec_latency_ms", None)
    weight = changes.pop("latency_weight", None)
    path = files.write(**changes)
    data = yaml.safe_load(path.read_text())
    for policy in data["policies"]:
        if policy["name"] == SPEC and spec_ms is not None:
            policy["expected_latency_ms"] = spec_ms
    if weight is not None:
        data["objective"]["latency_weight_per_ms"] = weight
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def direct_action(triton: Any, state: list[float]) -> Any:
    """The same ensemble called directly, one row: what each robot's row must equal."""
    client = triton_grpc.InferenceServerClient(triton.grpc_url)
    obs = triton_grpc.InferInput("observation", [1, 39], "FP32")
    obs.set_data_from_numpy(np.asarray([state], np.float32))
    return client.infer(SPEC, [obs]).as_numpy("action")[0]


def post_all(router: Any, bodies: list[dict[str, Any]], headers: dict[str, str] | None = None
             ) -> list[httpx.Response]:
    def one(body: dict[str, Any]) -> httpx.Response:
        with router.client() as c:
            return c.post("/v1/act", json=body, headers=headers or {})

    with concurrent.futures.ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(one, bodies))


def test_concurrent_robots_reach_triton_as_one_request_each_gets_its_row(
    start_router: RouterFactory, triton_faults: Any, contract_files: ContractFiles
) -> None:
    router = start_router(contract=edit_contract(
        contract_files, batching={"enabled": True, "max_batch": 16, "max_wait_ms": 50}))
    want = [direct_action(triton_faults, s) for s in STATES]
    # The first call is held in Triton for 80 ms: the other robots' requests arrive meanwhile.
    triton_faults.set_fault("policy_" + SPEC, delay_ms=80, delay_prob=1.0)
    before = triton_requests(triton_faults, SPEC)
    replies = post_all(router, [act_body(s, episode=f"b{i}", robot=f"robot-{i}",
                                         deadline_ms=2000) for i, s in enumerate(STATES)])
    sent = triton_requests(triton_faults, SPEC) - before
    assert all(r.status_code == 200 for r in replies), [r.text for r in replies]
    assert [r.json()["route"] for r in replies] == [SPEC] * len(STATES)
    assert sent < len(STATES)  # fewer Triton requests than robots: rows were batched
    for reply, action in zip(replies, want, strict=True):
        np.testing.assert_allclose(reply.json()["action"], action, rtol=1e-5, atol=1e-6)
    assert metric(router, f'router_batch_size_sum{{route="{SPEC}"}}') >= len(STATES)
    assert metric(router, f'router_batch_size_count{{route="{SPEC}"}}') < len(STATES) + 1


def test_a_request_without_slack_is_not_held_back(
    start_router: RouterFactory, triton_faults: Any, contract_files: ContractFiles
) -> None:
    # The specialist is predicted at 890 ms (the contract's prior, before live samples), and
    # latency is not penalised, so it still wins; a 900 ms budget then leaves no slack.
    router = start_router(contract=edit_contract(
        contract_files, spec_latency_ms=890, latency_weight=0.0,
        batching={"enabled": True, "max_batch": 16, "max_wait_ms": 50}))
    triton_faults.set_fault("policy_" + SPEC, delay_ms=150, delay_prob=1.0)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        roomy = pool.submit(post_all, router, [act_body(STATES[0], episode="roomy",
                                                        deadline_ms=2000)])
        time.sleep(0.04)  # the roomy request's call is in flight (150 ms)
        start = time.monotonic()
        tight = post_all(router, [act_body(STATES[1], episode="tight", deadline_ms=900)])[0]
        tight_ms = (time.monotonic() - start) * 1000
        assert roomy.result()[0].json()["route"] == SPEC
    assert tight.json()["route"] == SPEC
    # It left at once, on Triton's second instance: it did not wait for the in-flight call
    # (which returns ~110 ms later) nor for max_wait (50 ms).
    assert metric(router, 'router_batch_wait_seconds_bucket{le="0.005",route="'
                  + SPEC + '"}') == 2
    assert tight_ms < 150 + 110


def test_overload_is_shed_with_a_retry_hint_never_held(
    start_router: RouterFactory, triton_faults: Any
) -> None:
    router = start_router(max_inflight=2)
    triton_faults.set_fault("policy_" + SPEC, delay_ms=200, delay_prob=1.0)
    replies = post_all(router, [act_body(STATES[i % 8], episode=f"o{i}", robot=f"r{i}",
                                         deadline_ms=1000) for i in range(10)])
    shed = [r for r in replies if r.status_code == 503]
    served = [r for r in replies if r.status_code == 200]
    assert shed and served and len(shed) + len(served) == len(replies)
    for r in shed:
        error = r.json()["error"]
        assert error["code"] == "overloaded" and error["retry_after_ms"] > 0
        assert int(r.headers["retry-after"]) >= 1
    assert all(r.json()["route"] != "hold" for r in served)
    assert metric(router, 'router_shed_total{reason="inflight"}') == len(shed)


def test_an_absolute_deadline_that_passed_before_arrival_is_refused(
    start_router: RouterFactory, triton_faults: Any
) -> None:
    router = start_router()
    with router.client() as c:
        late = c.post("/v1/act", json=act_body(STATES[0]) | {
            "deadline_unix_ms": time.time() * 1000 - 50})
        header = c.post("/v1/act", json=act_body(STATES[0], deadline_ms=None),
                        headers={"X-Deadline-Unix-Ms": f"{time.time() * 1000 - 50:.0f}"})
        skewed = c.post("/v1/act", json=act_body(STATES[0]) | {"deadline_unix_ms": 1.0})
        bad = c.post("/v1/act", json=act_body(STATES[0]),
                     headers={"X-Deadline-Unix-Ms": "soon"})
        ok = c.post("/v1/act", json=act_body(STATES[0], deadline_ms=None) | {
            "deadline_unix_ms": time.time() * 1000 + 500})
    assert late.status_code == 408 and late.json()["error"]["field"] == "deadline_unix_ms"
    assert header.status_code == 408
    assert skewed.status_code == 422 and "synchronised" in skewed.json()["error"]["message"]
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "x-deadline-unix-ms"
    assert ok.status_code == 200 and ok.json()["deadline_met"] is True
    assert ok.json()["timing_ms"]["total"] < 500


def test_no_late_answer_is_flagged_met_under_a_burst(
    start_router: RouterFactory, triton_faults: Any
) -> None:
    # 16 robots at once against a 15 ms absolute deadline: the router's queue and Triton make
    # some answers late; none of those may say deadline_met. The client reads each reply in its
    # own thread: 5 ms is allowed for that thread to be scheduled after the bytes arrived.
    router = start_router(max_queue_age_ms=1000)
    deadline = time.time() * 1000 + 15
    results: list[tuple[httpx.Response, float]] = []

    def one(i: int) -> tuple[httpx.Response, float]:
        with router.client() as c:
            r = c.post("/v1/act", json=act_body(STATES[i % 8], episode=f"h{i}", robot=f"r{i}",
                                                 deadline_ms=None) | {"deadline_unix_ms": deadline})
            return r, time.time() * 1000

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        results = list(pool.map(one, range(16)))
    flagged_late = [(r.json(), at - deadline) for r, at in results
                    if r.status_code == 200 and r.json()["deadline_met"] and at > deadline + 5]
    assert not flagged_late, flagged_late
    assert all(r.status_code in (200, 408, 503) for r, _ in results)


def test_timeouts_under_load_cut_the_limit_and_the_excess_is_shed(
    start_router: RouterFactory, triton_faults: Any, contract_files: ContractFiles
) -> None:
    # Every route stays slow (both policies sleep 60 ms per execute) and no circuit opens, so a
    # wave of robots piles up in flight and, past the first few, runs out of its 100 ms: more
    # late requests at once than a stall of the host makes (AdaptiveLimit.late_burst, 16).
    router = start_router(contract=edit_contract(
        contract_files, batching={"enabled": False},
        circuit_breaker={"failure_threshold": 10_000, "open_s": 1.0}))
    for model in ("policy_" + SPEC, "policy_generalist"):
        triton_faults.set_fault(model, delay_ms=60, delay_prob=1.0)
    wave = len(STATES) * 6

    def bodies(tag: str) -> list[dict[str, Any]]:
        return [act_body(STATES[i % len(STATES)], episode=f"{tag}{i}", robot=f"r{i}",
                         deadline_ms=100) for i in range(wave)]

    # Waves until the limit sheds: it is cut once more than 16 requests went late within
    # 0.5 s, which one wave (its requests spread over ~0.3 s by the client's threads) may not do.
    shed: list[httpx.Response] = []
    for n in range(4):
        wave_replies = post_all(router, bodies(f"w{n}"))
        assert all(r.status_code in (200, 503) for r in wave_replies), [
            r.text for r in wave_replies]
        shed += [r for r in wave_replies if r.status_code == 503]
        if metric(router, 'router_shed_total{reason="concurrency"}') >= 1:
            break
    limit = metric(router, "router_concurrency_limit ")
    assert 0 < limit < wave  # cut from max_inflight (64) by the timeouts
    assert shed, "no wave was shed"
    for r in shed:
        assert r.json()["error"]["code"] == "overloaded" and r.json()["error"]["retry_after_ms"] > 0
    assert metric(router, 'router_shed_total{reason="concurrency"}') >= 1
