"""The router over HTTP against the real tritonserver (and, where state is shared, real Redis).

Faults are injected into the real Triton: a policy model that sleeps or fails on demand."""

from __future__ import annotations

import concurrent.futures
import time
from typing import Any

import httpx
import numpy as np
import pytest

from router_service.deadlines import reply_margin_ms
from tests.router_fixtures import (
    ADMIN_KEY,
    ROBOT_KEY,
    ContractFiles,
    RouterFactory,
    act_body,
)

pytestmark = [pytest.mark.slow, pytest.mark.triton]

SPEC = "specialist_reach_v3"
STATE = np.random.default_rng(0).normal(0, 0.3, 39).round(4).tolist()


@pytest.fixture
def router(start_router: RouterFactory, triton_faults: Any) -> Any:
    return start_router()


def test_declared_task_routes_to_better_specialist(router: Any) -> None:
    with router.client() as c:
        reply = c.post("/v1/act", json=act_body(STATE)).json()
    assert reply["route"] == SPEC
    assert reply["task"] == "reach-v3" and reply["task_source"] == "declared"
    assert reply["fallback"] is None and reply["deadline_met"] is True
    assert reply["reason"] == "best_score" and len(reply["action"]) == 4
    assert all(-1.0 <= a <= 1.0 for a in reply["action"])
    assert set(reply["timing_ms"]) == {"queued", "scoring", "upstream", "total"}
    assert reply["policy_version"] not in ("", "unknown")
    assert len(reply["decision_id"]) == 32


def test_inferred_task_reports_classifier_confidence(router: Any) -> None:
    with router.client() as c:
        reply = c.post("/v1/act", json=act_body(STATE, task=None)).json()
    assert reply["task_source"] == "inferred"
    assert 0.0 < reply["task_confidence"] <= 1.0
    with router.client() as c:
        known = c.get("/v1/contract").json()["spec"]["tasks"]
    assert reply["task"] in {t["name"] for t in known}
    if reply["task_confidence"] < 0.5:
        assert reply["route"] == "generalist" and reply["reason"] == "low_task_confidence"


def test_episode_keeps_its_route_after_calibration_changes(
    router: Any, contract_files: ContractFiles
) -> None:
    with router.client() as c:
        first = c.post("/v1/act", json=act_body(STATE, episode="sticky-1")).json()
        assert first["route"] == SPEC
        # New calibration: the generalist is now better for every task.
        contract_files.write(version="test-2", specialist=0.5, generalist=0.95)
        with router.client(ADMIN_KEY) as admin:
            assert admin.post("/v1/admin/contract/reload").json()["version"] == "test-2"
        same = c.post("/v1/act", json=act_body(STATE, episode="sticky-1")).json()
        fresh = c.post("/v1/act", json=act_body(STATE, episode="sticky-2")).json()
    assert (same["route"], same["reason"]) == (SPEC, "sticky")
    assert fresh["route"] == "generalist"


def test_slow_specialist_falls_back_to_generalist_inside_deadline(
    router: Any, triton_faults: Any
) -> None:
    triton_faults.set_fault("policy_" + SPEC, delay_ms=300, delay_prob=1.0)
    with router.client() as c:
        reply = c.post("/v1/act", json=act_body(STATE, deadline_ms=80, episode="slow")).json()
    assert reply["route"] == "generalist" and reply["fallback"] == "timeout", (
        reply, router.fallbacks())
    # Whether it was on time is reported honestly; that the 300 ms model was not waited for
    # is what this test checks (a shared CI host cannot promise the last millisecond).
    # Met only with the margin (and the event loop's lag, when the host adds some) to spare.
    assert reply["timing_ms"]["total"] + reply_margin_ms(80) <= 80 or not reply["deadline_met"]
    assert reply["timing_ms"]["total"] < 120
    # One straggling reply does not end the episode's stay on its specialist (once the
    # specialist's instance has slept off the 300 ms it was given).
    triton_faults.clear_faults()
    time.sleep(0.4)
    with router.client() as c:
        nxt = c.post("/v1/act", json=act_body(STATE, deadline_ms=80, episode="slow")).json()
    assert (nxt["route"], nxt["reason"]) == (SPEC, "sticky")


def test_episode_leaves_a_route_after_repeated_failures(router: Any, triton_faults: Any) -> None:
    # The contract's routing.sticky_max_failures (default 3) steps in a row failed: the episode
    # leaves its route and its next step is scored afresh; the failing specialist's circuit
    # (threshold 3 in this contract) is open, so scoring does not send it back there yet.
    with router.client() as c:
        assert c.post("/v1/act", json=act_body(STATE, episode="moves")).json()["route"] == SPEC
        triton_faults.set_fault("policy_" + SPEC, fail_prob=1.0)
        steps = [c.post("/v1/act", json=act_body(STATE, episode="moves")).json()
                 for _ in range(3)]
        triton_faults.clear_faults()
        after = c.post("/v1/act", json=act_body(STATE, episode="moves")).json()
        time.sleep(1.1)  # the circuit's open_s: the specialist may be probed again
        back = [c.post("/v1/act", json=act_body(STATE, episode="moves")).json()
                for _ in range(2)]
    assert [s["route"] for s in steps] == ["generalist"] * 3
    assert [s["reason"] for s in steps] == ["sticky"] * 3  # still on its specialist's lease
    assert after["route"] == "generalist" and after["reason"] != "sticky"  # scored afresh
    assert [b["route"] for b in back] == [SPEC, SPEC]  # the specialist is healthy again
    assert back[1]["reason"] == "sticky"


def test_failing_specialist_opens_circuit(router: Any, triton_faults: Any) -> None:
    triton_faults.set_fault("policy_" + SPEC, fail_prob=1.0)
    with router.client() as c:
        replies = [c.post("/v1/act", json=act_body(STATE, episode=f"f{i}")).json()
                   for i in range(5)]
    assert all(r["route"] == "generalist" for r in replies)
    assert replies[0]["fallback"] == "unavailable"  # the test model fails with UNAVAILABLE
    assert replies[-1]["fallback"] == "circuit_open" or replies[-1]["reason"] != "best_score"
    assert 'router_circuit_open{route="specialist_reach_v3"} 1.0' in router.metrics()


def test_every_route_down_gives_hold_action_in_time(router: Any, triton_faults: Any) -> None:
    for model in ("policy_" + SPEC, "policy_generalist"):
        triton_faults.set_fault(model, delay_ms=300, delay_prob=1.0)
    with router.client() as c:
        reply = c.post("/v1/act", json=act_body(STATE, deadline_ms=60, episode="h")).json()
    assert reply["route"] == "hold" and reply["action"] == [0.0, 0.0, 0.0, 0.0]
    assert reply["fallback"] == "timeout"
    # Met only with the reply margin to spare (and the event loop's lag, which this shared
    # host may add: then an answer inside the margin is not claimed as met either).
    in_time = reply["timing_ms"]["total"] + reply_margin_ms(60) <= 60
    assert in_time or not reply["deadline_met"]
    assert reply["timing_ms"]["total"] < 100


def test_overload_is_shed_at_once_with_retry_hint(
    start_router: RouterFactory, triton_faults: Any
) -> None:
    router = start_router(max_inflight=2)
    triton_faults.set_fault("policy_" + SPEC, delay_ms=150, delay_prob=1.0)
    triton_faults.set_fault("policy_generalist", delay_ms=150, delay_prob=1.0)

    def call(i: int) -> httpx.Response:
        with router.client() as c:
            return c.post("/v1/act", json=act_body(STATE, deadline_ms=400, episode=f"o{i}"))

    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        responses = list(pool.map(call, range(12)))
    shed = [r for r in responses if r.status_code == 503]
    assert shed, [r.status_code for r in responses]
    assert all(r.status_code in (200, 503) for r in responses)
    assert int(shed[0].headers["Retry-After"]) >= 1
    assert shed[0].json()["error"]["code"] == "overloaded"
    assert shed[0].json()["error"]["retry_after_ms"] > 0
    assert 'router_shed_total{reason="inflight"}' in router.metrics()


BAD_INPUTS: list[tuple[str, Any, int, str]] = [
    ("short state", act_body(STATE[:10]), 422, "observation.state"),
    ("missing observation", {"robot_id": "r", "episode_id": "e"}, 422, "observation"),
    ("string state", act_body(["a"] * 39), 422, "observation.state.0"),
    ("unknown task", act_body(STATE, task="fly-v3"), 422, "task"),
    ("zero deadline", act_body(STATE, deadline_ms=0), 408, "deadline_ms"),
    ("negative deadline", act_body(STATE, deadline_ms=-5), 408, "deadline_ms"),
    ("huge deadline", act_body(STATE, deadline_ms=1e9), 422, "deadline_ms"),
    ("extra field", {**act_body(STATE), "speed": 3}, 422, "speed"),
    ("empty robot", {**act_body(STATE), "robot_id": ""}, 422, "robot_id"),
]


@pytest.mark.parametrize(("case", "body", "status", "field"), BAD_INPUTS,
                         ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_gets_clear_4xx_naming_field(router: Any, case: str, body: Any,
                                               status: int, field: str) -> None:
    with router.client() as c:
        r = c.post("/v1/act", json=body)
    assert r.status_code == status, r.text
    assert r.json()["error"]["field"] == field


def test_nan_and_infinity_are_rejected_naming_the_index(router: Any) -> None:
    text = str(act_body(STATE)).replace("'", '"')
    for token in ("NaN", "Infinity"):
        raw = text.replace(str(STATE[7]), token, 1)
        with router.client() as c:
            r = c.post("/v1/act", content=raw, headers={"content-type": "application/json"})
        assert r.status_code == 422, r.text
        assert r.json()["error"]["field"] == "observation.state[7]"


def test_unknown_task_lists_known_tasks(router: Any) -> None:
    with router.client() as c:
        err = c.post("/v1/act", json=act_body(STATE, task="fly-v3")).json()["error"]
    assert "reach-v3" in err["known_tasks"] and "reach-v3" in err["message"]


def test_oversized_and_malformed_bodies(router: Any) -> None:
    with router.client() as c:
        big = c.post("/v1/act", content=b'{"x": "' + b"a" * 200_000 + b'"}')
        broken = c.post("/v1/act", content=b"{not json")
    assert big.status_code == 413 and big.json()["error"]["field"] == "body"
    assert broken.status_code == 422


def test_auth(router: Any) -> None:
    with router.client(key=None) as c:
        assert c.post("/v1/act", json=act_body(STATE)).status_code == 401
    with router.client(key="wrong") as c:
        assert c.post("/v1/act", json=act_body(STATE)).status_code == 401
        assert c.post("/v1/feedback", json={}).status_code == 401
    with router.client(ROBOT_KEY) as c:
        assert c.post("/v1/admin/contract/reload").status_code == 403
    with router.client(ADMIN_KEY) as c:
        assert c.post("/v1/admin/contract/reload").status_code == 200
    assert httpx.get(f"{router.url}/healthz").status_code == 200


def test_bad_contract_reload_is_refused_and_old_one_keeps_serving(
    router: Any, contract_files: ContractFiles
) -> None:
    path = contract_files.folder / "contract.yaml"
    path.write_text(path.read_text().replace("hold_action:", "hold_action: [1]\n  old_hold:"))
    with router.client(ADMIN_KEY) as admin:
        r = admin.post("/v1/admin/contract/reload")
    assert r.status_code == 422 and "routing" in r.json()["error"]["message"]
    with router.client() as c:
        assert c.get("/v1/contract").json()["spec"]["version"] == "test-1"
        assert c.post("/v1/act", json=act_body(STATE)).status_code == 200


def test_feedback_counts_misroutes(router: Any) -> None:
    with router.client() as c:
        reply = c.post("/v1/act", json=act_body(STATE, task=None, episode="fb")).json()
        wrong = next(t for t in ("reach-v3", "pick-place-v3") if t != reply["task"])
        fb = c.post("/v1/feedback", json={"robot_id": "robot-1", "episode_id": "fb",
                                          "decision_id": reply["decision_id"],
                                          "success": False, "true_task": wrong})
        unknown = c.post("/v1/feedback", json={"robot_id": "robot-1", "episode_id": "nope",
                                               "success": True})
    assert fb.status_code == 202 and fb.json()["misrouted"] is True
    assert unknown.status_code == 422 and unknown.json()["error"]["field"] == "episode_id"
    assert (f'router_misroutes_total{{routed_task="{reply["task"]}",true_task="{wrong}"}} 1.0'
            in router.metrics())


def test_metrics_have_the_documented_names_and_labels(router: Any) -> None:
    with router.client() as c:
        c.post("/v1/act", json=act_body(STATE))
        c.post("/v1/act", json=act_body(STATE[:3]))
    text = router.metrics()
    for line in (
        'router_requests_total{outcome="ok",route="specialist_reach_v3"}',
        'router_request_duration_seconds_bucket{le="0.005",route="specialist_reach_v3"}',
        'router_upstream_duration_seconds_count{route="specialist_reach_v3"}',
        'router_decisions_total{reason="best_score",route="specialist_reach_v3",task="reach-v3"}',
        'router_deadline_met_total{route="specialist_reach_v3"}',
        'router_errors_total{kind="invalid_argument"}',
        'router_requests_total{outcome="rejected",route="none"} 1.0',
        "router_inflight_requests 0.0",
        'router_contract_info{version="test-1"} 1.0',
        "router_decision_log_lost_total 0.0",
    ):
        assert line in text, line
    for family in ("router_fallbacks_total", "router_deadline_misses_total",
                   "router_misroutes_total", "router_shed_total", "router_circuit_open",
                   "router_redis_up", "router_calibration_stale"):
        assert f"# TYPE {family.removesuffix('_total')}" in text, family


def test_openapi_documents_the_act_path_the_lean_path_serves(router: Any) -> None:
    # POST /v1/act is served by the lean ASGI path; the schema FastAPI publishes must describe it.
    spec = httpx.get(f"{router.url}/openapi.json", timeout=5.0).json()
    act = spec["paths"]["/v1/act"]["post"]
    body = act["requestBody"]["content"]["application/json"]["schema"]
    assert {"robot_id", "episode_id", "observation"} <= set(body["required"])
    assert {"deadline_ms", "deadline_unix_ms", "task"} <= set(body["properties"])
    assert body["additionalProperties"] is False  # extra fields are refused, as served
    assert any(p["name"] == "X-Deadline-Unix-Ms" for p in act["parameters"])
    with router.client() as c:
        extra = c.post("/v1/act", json=act_body(STATE) | {"surprise": 1})
    assert extra.status_code == 422 and extra.json()["error"]["field"] == "surprise"
