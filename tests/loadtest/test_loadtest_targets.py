"""Request building and response/error parsing of each target, without real servers."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import orjson
import pytest
from grpc_health.v1 import health, health_pb2
from router_client.proto import router_pb2, router_pb2_grpc
from tritonclient.grpc import service_pb2

from loadtest.baseline_proxy import ActBody, ClientMode, create_app
from loadtest.observations import synthetic_states
from loadtest.scenario import Scenario
from loadtest.schedule import build_plan
from loadtest.targets import BaselineBodies, TargetOptions
from loadtest.targets.base import PlanLists
from loadtest.targets.kserve import ManifestError, choose_ensembles, v2_json_body
from loadtest.targets.router import RouterGrpcTarget, RouterHttpTarget, parse_router_http
from loadtest.targets.triton import infer_request_bytes
from router_service.http_api.schemas import ActBody as RouterActBody

TASKS = ["reach-v3", "pick-place-v3", "peg-insert-side-v3"]


def scenario(**kw: Any) -> Scenario:
    data: dict[str, Any] = {
        "name": "t",
        "robots": 4,
        "control_hz": 50,
        "task_mix": {t: 1 for t in TASKS},
        "hidden_task_share": 0.5,
        "deadline_ms": 25,
        "duration_s": 1,
        "episode_steps": 5,
        "sla": {"quantile_within_budget": 0.99, "budget_ms": 25},
        "seed": 1,
    }
    return Scenario.model_validate(data | kw)


def lists(s: Scenario, run_id: str = "lt") -> PlanLists:
    pool = synthetic_states(s.obs_dim, s.seed, size=16)
    return PlanLists(build_plan(s, len(pool)), pool, run_id)


def manifest(tmp_path: Path, tasks: list[str] = TASKS) -> Path:
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"tasks": tasks, "obs_dim": 39}))
    return path


def test_router_http_body_matches_the_api() -> None:
    s = scenario()
    ls = lists(s, run_id="run1")
    target = RouterHttpTarget(s, ls, TargetOptions(api_key="k", run_id="run1"))
    seen_hidden = seen_declared = False
    assert "deadline_unix_ms" not in orjson.loads(target.body(0))  # not anchored yet
    ls.origin_unix = 1_700_000_000.0  # what the runner sets at the plan's t=0
    for i in range(len(ls)):
        raw = target.body(i)
        RouterActBody.model_validate_json(raw)  # the router's own schema accepts it
        body = orjson.loads(raw)
        assert body["deadline_unix_ms"] == pytest.approx(
            (ls.origin_unix + ls.scheduled_s[i]) * 1000 + 25, abs=1e-3)
        assert body["robot_id"] == f"run1-robot-{ls.robot[i]:05d}"
        assert body["episode_id"] == f"{body['robot_id']}-ep-{ls.episode[i]}"
        assert body["deadline_ms"] == 25
        state = body["observation"]["state"]
        np.testing.assert_allclose(state, ls.pool[ls.obs[i]], rtol=1e-6)
        if ls.hidden[i]:
            assert "task" not in body
            seen_hidden = True
        else:
            assert body["task"] == TASKS[ls.task[i]]
            seen_declared = True
    assert seen_hidden and seen_declared


@pytest.mark.parametrize(
    ("status", "content", "expect"),
    [
        (
            200,
            b'{"action":[0],"route":"generalist","fallback":"circuit_open","deadline_met":false}',
            ("ok", "generalist", "circuit_open", False, None, None),
        ),
        (
            503,
            b'{"error":{"code":"overloaded","message":"x","retry_after_ms":5}}',
            ("http_503", None, None, None, "shed", "overloaded"),
        ),
        (
            408,
            b'{"error":{"code":"deadline_expired","message":"x"}}',
            ("http_408", None, None, None, "deadline", "deadline_expired"),
        ),
        (
            422,
            b'{"error":{"code":"unknown_task","message":"x","field":"task"}}',
            ("http_422", None, None, None, "rejected", "unknown_task"),
        ),
        (401, b"", ("http_401", None, None, None, "auth", None)),
        (502, b"<html>", ("http_502", None, None, None, "server_error", None)),
        (200, b"not json", ("bad_response", None, None, None, "bad_response", None)),
    ],
)
def test_router_http_responses_are_classified(
    status: int, content: bytes, expect: tuple[Any, ...]
) -> None:
    assert tuple(parse_router_http(status, content)) == expect


async def test_router_http_target_sends_auth_and_reads_the_route(
    fake_router: tuple[str, Any]
) -> None:
    url, state = fake_router  # a real HTTP server (uvicorn in a thread): the client is raw
    s = scenario()
    ls = lists(s)
    target = RouterHttpTarget(s, ls, TargetOptions(url=url, api_key=state.api_key))
    await target.start()
    await target.preflight()
    ls.origin_unix = 1_700_000_000.0
    outcomes = [await target.send(i) for i in range(3)]
    wrong = RouterHttpTarget(s, ls, TargetOptions(url=url, api_key="wrong"))
    await wrong.start()
    refused = await wrong.send(0)
    await target.close()
    await wrong.close()
    assert [o.status for o in outcomes] == ["ok"] * 3 and state.requests == 3
    assert state.bodies[0]["robot_id"] == ls.robot_name[ls.robot[0]]
    assert state.bodies[0]["deadline_unix_ms"] > 1_700_000_000_000
    assert (refused.status, refused.error_kind) == ("http_401", "auth")


class FakePolicyRouter(router_pb2_grpc.PolicyRouterServicer):  # type: ignore[misc]
    def __init__(self) -> None:
        self.metadata: list[dict[str, str]] = []
        self.requests: list[Any] = []
        self.delay_s = 0.0

    async def Act(self, request: Any, context: Any) -> Any:
        self.metadata.append(dict(context.invocation_metadata()))
        self.requests.append(request)
        await asyncio.sleep(self.delay_s)
        route = f"specialist_{request.task.replace('-', '_')}" if request.task else "generalist"
        return router_pb2.ActResponse(
            action=[0.0] * 4, route=route, deadline_met=True, sequence=request.sequence
        )


async def test_router_grpc_target_deadline_auth_and_errors() -> None:
    servicer = FakePolicyRouter()
    server = grpc.aio.server()
    router_pb2_grpc.add_PolicyRouterServicer_to_server(servicer, server)
    health_servicer = health.aio.HealthServicer()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    from grpc_health.v1 import health_pb2_grpc

    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        s = scenario(deadline_ms=50)
        ls = lists(s)
        target = RouterGrpcTarget(s, ls, TargetOptions(url=f"127.0.0.1:{port}", api_key="k"))
        await target.start()
        await target.preflight()
        hidden = next(i for i in range(len(ls)) if ls.hidden[i])
        declared = next(i for i in range(len(ls)) if not ls.hidden[i])
        ok = await target.send(declared)
        assert ok.status == "ok" and (ok.route or "").startswith("specialist_")
        assert (await target.send(hidden)).route == "generalist"
        assert servicer.requests[-1].task == ""
        assert len(servicer.requests[-1].observation.state) == 39
        assert servicer.metadata[-1]["authorization"] == "Bearer k"
        servicer.delay_s = 0.2  # past the 50 ms call deadline
        late = await target.send(declared)
        assert (late.status, late.error_kind) == ("grpc_DEADLINE_EXCEEDED", "deadline")
        await target.close()
    finally:
        await server.stop(None)


def test_triton_grpc_request_bytes_decode_to_kserve_v2() -> None:
    state = np.arange(39, dtype=np.float32)
    req = service_pb2.ModelInferRequest.FromString(
        infer_request_bytes("generalist", state, [0.0, 1.0, 0.0])
    )
    assert req.model_name == "generalist"
    assert [(t.name, t.datatype, list(t.shape)) for t in req.inputs] == [
        ("observation", "FP32", [1, 39]),
        ("task_onehot", "FP32", [1, 3]),
    ]
    np.testing.assert_array_equal(np.frombuffer(req.raw_input_contents[0], "<f4"), state)
    assert [o.name for o in req.outputs] == ["action"]


def test_ensemble_choice(tmp_path: Path) -> None:
    spec = choose_ensembles(scenario(), None)
    assert spec.models == (
        "specialist_reach_v3",
        "specialist_pick_place_v3",
        "specialist_peg_insert_side_v3",
    )
    order = ["peg-insert-side-v3", "reach-v3", "pick-place-v3"]
    gen = choose_ensembles(scenario(direct_policy="generalist"), manifest(tmp_path, order))
    assert set(gen.models) == {"generalist"}
    assert gen.onehots[0] == [0.0, 1.0, 0.0]  # reach-v3 is second in the manifest
    with pytest.raises(ManifestError, match="task_mix"):
        choose_ensembles(scenario(), manifest(tmp_path, ["reach-v3"]))
    with pytest.raises(ManifestError, match="generalist"):
        choose_ensembles(scenario(direct_policy="generalist"), tmp_path / "absent.json")


def test_v2_json_body_shape() -> None:
    body = orjson.loads(v2_json_body("m", np.ones(39, dtype=np.float32), None))
    assert body["inputs"][0]["shape"] == [1, 39] and len(body["inputs"][0]["data"]) == 39


async def call_proxy(app: Any, method: str, path: str, **kw: Any) -> httpx.Response:
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://proxy"
        ) as client,
    ):
        return await client.request(method, path, **kw)


@pytest.mark.parametrize("mode", ["shared", "per-request"])
async def test_baseline_proxy_forwards_to_triton(mode: ClientMode, tmp_path: Path) -> None:
    upstream: list[httpx.Request] = []

    def triton(request: httpx.Request) -> httpx.Response:
        upstream.append(request)
        return httpx.Response(200, json={"outputs": [{"name": "action", "data": [0.5] * 4}]})

    s = scenario(direct_policy="generalist")
    ls = lists(s)
    bodies = BaselineBodies(ls, choose_ensembles(s, manifest(tmp_path)))
    model, body = bodies.get(0)
    ActBody.model_validate_json(body)  # the client's body is what the proxy accepts
    app = create_app("http://triton:8000", mode, transport=httpx.MockTransport(triton))
    resp = await call_proxy(
        app, "POST", f"/v1/act/{model}", content=body, headers={"content-type": "application/json"}
    )
    assert (await call_proxy(app, "GET", "/healthz")).status_code == 200
    assert resp.status_code == 200
    assert resp.json() == {"action": [0.5] * 4, "route": "generalist"}
    sent = json.loads(upstream[0].content)
    assert str(upstream[0].url) == "http://triton:8000/v2/models/generalist/infer"
    assert [i["name"] for i in sent["inputs"]] == ["observation", "task_onehot"]
    assert sent["inputs"][0]["shape"] == [1, 39]


async def test_baseline_proxy_reports_upstream_errors() -> None:
    def triton(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"error": "unknown model"})

    app = create_app("http://triton:8000", "shared", transport=httpx.MockTransport(triton))
    body = {"robot_id": "r", "episode_id": "e", "observation": {"state": [0.0]}}
    resp = await call_proxy(app, "POST", "/v1/act/nope", json=body)
    assert resp.status_code == 502
