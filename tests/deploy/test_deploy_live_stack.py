"""The operators' view of the real stack: the session's real tritonserver, a real redis-server
and the real router (`python -m router_service`, started as `make up` starts it), scraped by a
real Prometheus with this repository's config and rules. Every dashboard query must run, the
router- and Triton-side panels must show data, and every rule must evaluate cleanly."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from deploy_testkit import PromAPI, contract_for, run_panel_queries, wait_for

from deploy.grafana.queries import rule_queries, variable_queries
from deploy.local.process import free_port
from deploy.local.prometheus import local_prometheus
from deploy.local.redis import redis_process
from deploy.local.router import RouterLaunch, router_process
from deploy.local.stack import DEV_ADMIN_KEY, DEV_ROBOT_KEY
from deploy.local.triton import TritonPorts

pytestmark = [
    pytest.mark.prometheus, pytest.mark.triton, pytest.mark.redis, pytest.mark.slow
]

# Empty unless something goes wrong (or there is a GPU): a healthy run has no such series.
MAY_BE_EMPTY = {
    ("robot-router", "Deadline misses by route"),
    ("robot-router", "Fallbacks"),
    ("robot-router", "Shed requests by reason"),
    ("robot-router", "Errors by kind"),
    ("robot-router", "Misroutes over the dashboard range (rows: true task, columns: routed task)"),
    ("robot-triton", "GPU utilisation"),
    ("robot-triton", "GPU memory used"),
    ("robot-triton", "Failures by model and reason"),
}


def _drive_traffic(url: str, tasks: list[str], obs_dim: int, seconds: float) -> int:
    """Declared and inferred tasks, feedback with true tasks: every panel family gets data."""
    sent = 0
    headers = {"Authorization": f"Bearer {DEV_ROBOT_KEY}"}
    with httpx.Client(base_url=url, headers=headers, timeout=5.0) as client:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for i, task in enumerate([*tasks, None]):
                body: dict[str, Any] = {"robot_id": f"robot-{i}", "episode_id": "ep-1",
                                        "observation": {"state": [0.1] * obs_dim},
                                        "deadline_ms": 200}
                if task is not None:
                    body["task"] = task
                reply = client.post("/v1/act", json=body)
                sent += 1
                if reply.status_code == 200 and sent % 5 == 0:
                    client.post("/v1/feedback", json={
                        "robot_id": f"robot-{i}", "episode_id": "ep-1",
                        "decision_id": reply.json()["decision_id"], "success": True,
                        "true_task": tasks[0],
                    })
            time.sleep(0.02)  # about a robot's control period
    return sent


@pytest.fixture(scope="module")
def stack(triton: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PromAPI]:
    folder = tmp_path_factory.mktemp("live-stack")
    contract = contract_for(Path(triton.artifacts), folder)
    ports: TritonPorts = triton.ports
    http_port, grpc_port, redis_port, prom_port = (free_port() for _ in range(4))
    redis = redis_process(folder / "redis", port=redis_port)
    router = router_process(RouterLaunch(
        contract=contract, triton_grpc=f"127.0.0.1:{ports.grpc}",
        triton_http=f"127.0.0.1:{ports.http}", http_port=http_port, grpc_port=grpc_port,
        log_path=folder / "router.log", robot_keys=DEV_ROBOT_KEY, admin_key=DEV_ADMIN_KEY,
        redis_url=f"redis://127.0.0.1:{redis_port}/0"))
    prometheus = local_prometheus(
        folder / "prometheus", router=(f"127.0.0.1:{http_port}",),
        triton=(f"127.0.0.1:{ports.metrics}",), port=prom_port, scrape_interval="1s",
    )
    with redis, router, prometheus:
        api = PromAPI(f"http://127.0.0.1:{prom_port}")
        wait_for(lambda: api.targets_up(3), "router, triton and prometheus targets up")
        manifest = json.loads((Path(triton.artifacts) / "manifest.json").read_text())
        sent = _drive_traffic(f"http://127.0.0.1:{http_port}", manifest["tasks"],
                              manifest["obs_dim"], seconds=8.0)
        assert sent > 100
        wait_for(lambda: bool(api.query("route:router_request_duration_seconds:p99_5m")
                              ["data"]["result"]), "recording rules over the router's series")
        yield api


def test_every_panel_query_runs_on_the_real_stack(stack: PromAPI) -> None:
    errors, empty = run_panel_queries(stack)
    assert errors == {}
    assert empty <= MAY_BE_EMPTY, sorted(empty - MAY_BE_EMPTY)


def test_rules_evaluate_cleanly_on_the_real_stack(stack: PromAPI) -> None:
    for rule in rule_queries():
        body = stack.query(rule.expr)
        assert body["status"] == "success", (rule.name, body.get("error"))
    assert stack.unhealthy_rules() == {}


def test_every_contract_policy_is_a_triton_model(stack: PromAPI) -> None:
    """TritonModelNotReady's join (router calibration policies vs. Triton model names)
    matches nothing when Triton serves the whole contract."""
    (rule,) = [r for r in rule_queries() if r.name == "TritonModelNotReady"]
    assert stack.query("router_calibration_stale")["data"]["result"], "no policies exported"
    assert stack.query(rule.expr)["data"]["result"] == []


def test_no_page_on_a_healthy_stack(stack: PromAPI) -> None:
    alerts = stack.get("/api/v1/alerts")["data"]["alerts"]
    pages = [a["labels"] for a in alerts if a["labels"].get("severity") == "page"]
    assert pages == []


def test_every_template_variable_has_values(stack: PromAPI) -> None:
    for uid, name, query in variable_queries():
        metric, label = query.removeprefix("label_values(").removesuffix(")").split(", ")
        values = stack.get(f"/api/v1/label/{label}/values", **{"match[]": metric})["data"]
        assert values, (uid, name, query)


def test_rendered_config_lives_under_the_run_dir(tmp_path: Path) -> None:
    proc = local_prometheus(run_dir=tmp_path / "p", port=free_port())
    config = tmp_path / "p" / "prometheus.yml"
    assert config.exists()
    assert f"--config.file={config.resolve()}" in proc.argv
    assert any(a.startswith("--storage.tsdb.path=") and "p/data" in a for a in proc.argv)
