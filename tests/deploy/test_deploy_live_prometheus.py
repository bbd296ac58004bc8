"""Every dashboard panel query, template variable and rule runs without error on a real
Prometheus (deploy/local/prometheus.py, the same launcher `make up` uses) scraping the real
tritonserver and two router replicas. Rules must evaluate without errors, and the
TritonModelNotReady join must pick exactly the policy that Triton does not serve.

The replicas are stand-ins built from docs/interfaces.md; once the router runs in the test
session, pass its address instead of FakeRouterExporter.target (see docs/operations.md)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from deploy_testkit import PromAPI, RouterMetric, run_panel_queries, wait_for
from fake_router_exporter import FakeRouterExporter

from deploy.grafana.queries import rule_queries, variable_queries
from deploy.local.process import ManagedProcess, free_port
from deploy.local.prometheus import local_prometheus

pytestmark = [pytest.mark.prometheus, pytest.mark.triton, pytest.mark.slow]

# Panels that may legitimately be empty here: no GPU, no failing model, nothing pending.
MAY_BE_EMPTY = {
    ("robot-triton", "GPU utilisation"),
    ("robot-triton", "GPU memory used"),
    ("robot-triton", "Failures by model and reason"),
    ("robot-triton", "Failure ratio by model"),
    ("robot-triton", "Queue time per request"),
    ("robot-triton", "Compute (infer) time per request"),
    ("robot-triton", "Total time in Triton per request"),
    ("robot-triton", "Batch size (inferences per execution)"),
}


@pytest.fixture(scope="module")
def live(
    triton: Any, router_contract: dict[str, RouterMetric], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PromAPI]:
    replicas = [FakeRouterExporter(router_contract, seed=i).start() for i in range(2)]
    port = free_port()
    proc: ManagedProcess = local_prometheus(
        run_dir=tmp_path_factory.mktemp("prometheus") / "run",
        router=tuple(r.target for r in replicas),
        triton=(f"127.0.0.1:{triton.ports.metrics}",),
        port=port,
        scrape_interval="1s",
    )
    try:
        with proc:
            api = PromAPI(f"http://127.0.0.1:{port}")

            wait_for(lambda: api.targets_up(4), "router, triton and prometheus targets up")

            def rules_recorded() -> bool:
                return all(
                    api.query(name)["data"]["result"]
                    for name in (
                        "route:router_request_duration_seconds:p99_5m",
                        "model:nv_inference_request_success:rate5m",
                        "job:router_misroutes_per_decision:ratio_rate1h",
                    )
                )

            wait_for(rules_recorded, "recording rules to produce data")
            yield api
    finally:
        for r in replicas:
            r.stop()


def test_every_panel_query_runs(live: PromAPI) -> None:
    errors, empty = run_panel_queries(live)
    assert errors == {}
    assert empty <= MAY_BE_EMPTY, sorted(empty - MAY_BE_EMPTY)


def test_every_template_variable_has_values(live: PromAPI) -> None:
    for uid, name, query in variable_queries():
        metric, label = query.removeprefix("label_values(").removesuffix(")").split(", ")
        values = live.get(f"/api/v1/label/{label}/values", **{"match[]": metric})["data"]
        assert values, (uid, name, query)


def test_every_rule_expression_runs_and_rules_evaluate_cleanly(live: PromAPI) -> None:
    for rule in rule_queries():
        body = live.query(rule.expr)
        assert body["status"] == "success", (rule.name, body.get("error"))
    # Evaluation errors (e.g. many-to-many matches on real label sets) only show here.
    time.sleep(2)
    assert live.unhealthy_rules() == {}
    groups = live.get("/api/v1/rules")["data"]["groups"]
    assert sum(len(g["rules"]) for g in groups) == len(rule_queries())


def test_model_not_ready_joins_router_policies_with_real_triton_models(live: PromAPI) -> None:
    """Real Triton exports per-model series for its ensembles; the alert expression (without
    its `for`) must select exactly the policy the router knows but Triton lacks."""
    (rule,) = [r for r in rule_queries() if r.name == "TritonModelNotReady"]
    result = live.query(rule.expr)["data"]["result"]
    assert [s["metric"].get("policy") for s in result] == ["specialist_not_deployed"]


def test_healthy_signals_do_not_alert(live: PromAPI) -> None:
    alerts = live.get("/api/v1/alerts")["data"]["alerts"]
    names = {a["labels"]["alertname"] for a in alerts}
    # The stand-in replicas miss no deadline and lose no decision-log record; only the
    # deliberately undeployed policy may be pending.
    assert names <= {"TritonModelNotReady"}, names


def test_rendered_config_lives_under_the_run_dir(tmp_path: Path) -> None:
    proc = local_prometheus(run_dir=tmp_path / "p", port=free_port())
    config = tmp_path / "p" / "prometheus.yml"
    assert config.exists()
    assert f"--config.file={config.resolve()}" in proc.argv
    assert any(a.startswith("--storage.tsdb.path=") and "p/data" in a for a in proc.argv)
