"""Every metric a dashboard panel or a rule queries exists: a router metric of
docs/interfaces.md, a Triton `nv_*` metric, a recording rule, or Prometheus' own `up`."""

from __future__ import annotations

import pytest
from deploy_testkit import RouterMetric

from deploy.grafana.queries import dashboard_queries, rule_queries, variable_queries
from deploy.prometheus.config import recorded_names
from deploy.prometheus.promql import metric_names

PROMETHEUS_OWN = {"up"}  # written by Prometheus for every target


def _allowed(contract: dict[str, RouterMetric]) -> set[str]:
    router = set().union(*(m.exported_names() for m in contract.values()))
    return router | recorded_names() | PROMETHEUS_OWN


def _unknown(names: set[str], allowed: set[str]) -> set[str]:
    return {n for n in names if n not in allowed and not n.startswith("nv_")}


def test_dashboard_queries_use_known_metrics(router_contract: dict[str, RouterMetric]) -> None:
    allowed = _allowed(router_contract)
    queries = dashboard_queries()
    assert len(queries) > 30
    problems = {
        f"{q.dashboard} / {q.panel} / {q.ref_id}": sorted(
            _unknown(metric_names(q.promql()), allowed)
        )
        for q in queries
    }
    assert {k: v for k, v in problems.items() if v} == {}
    assert all(metric_names(q.promql()) for q in queries), "a query selects no metric"


def test_variable_queries_use_known_metrics(router_contract: dict[str, RouterMetric]) -> None:
    allowed = _allowed(router_contract)
    for uid, name, query in variable_queries():
        inner = query.removeprefix("label_values(").rsplit(",", 1)[0]
        assert not _unknown(metric_names(inner), allowed), (uid, name, query)


def test_rule_expressions_use_known_metrics(router_contract: dict[str, RouterMetric]) -> None:
    allowed = _allowed(router_contract)
    for rule in rule_queries():
        unknown = _unknown(metric_names(rule.expr), allowed)
        assert not unknown, f"{rule.group}/{rule.name}: {sorted(unknown)}"


def test_nv_metrics_are_triton_metrics() -> None:
    """`nv_*` names must be metric families that tritonserver registers: the list is Triton's
    metrics documentation, cross-checked against the names in libtritonserver 2.51."""
    known = {
        "nv_inference_request_success", "nv_inference_request_failure", "nv_inference_count",
        "nv_inference_exec_count", "nv_inference_request_duration_us",
        "nv_inference_queue_duration_us", "nv_inference_compute_input_duration_us",
        "nv_inference_compute_infer_duration_us", "nv_inference_compute_output_duration_us",
        "nv_inference_pending_request_count", "nv_gpu_utilization", "nv_gpu_memory_total_bytes",
        "nv_gpu_memory_used_bytes", "nv_gpu_power_usage", "nv_gpu_power_limit",
        "nv_energy_consumption", "nv_cpu_utilization", "nv_cpu_memory_total_bytes",
        "nv_cpu_memory_used_bytes",
    }
    used = {
        n
        for expr in [q.promql() for q in dashboard_queries()] + [r.expr for r in rule_queries()]
        for n in metric_names(expr)
        if n.startswith("nv_")
    }
    assert used, "no Triton metric queried"
    assert used <= known, sorted(used - known)


def test_the_router_exports_the_contract(router_contract: dict[str, RouterMetric]) -> None:
    """The router's metric registry matches docs/interfaces.md (names, types, labels), so
    the dashboards and alerts built on that table see real series."""
    metrics_mod = pytest.importorskip("router_service.metrics")
    registry = metrics_mod.RouterMetrics().registry
    exported = {}
    for family in registry.collect():
        name = family.name + ("_total" if family.type == "counter" else "")
        exported[name] = family
    for metric in router_contract.values():
        assert metric.name in exported, f"router does not export {metric.name}"
        family = exported[metric.name]
        assert family.type == metric.kind, (metric.name, family.type)
    # Label names are not in an unused family's exposition; prometheus_client has no public
    # API that lists them, so read them from the registered collectors.
    collectors = registry._collector_to_names
    labels_by_name: dict[str, tuple[str, ...]] = {}
    for collector, names in collectors.items():
        for n in names:
            labels_by_name[n] = tuple(getattr(collector, "_labelnames", ()))
    for metric in router_contract.values():
        assert labels_by_name.get(metric.name) == metric.labels, metric.name


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (route, le) (rate(a_bucket{route=~"$x"}[5m]))', {"a_bucket"}),
        ("histogram_quantile(0.99, lvl:b:rate5m) > (14.4 * 0.001)", {"lvl:b:rate5m"}),
        ('label_replace(c, "policy", "$1", "model", "(.+)") / 1e6', {"c"}),
        ("sum(d) by (route) / ignoring(le) group_left(foo) e unless f", {"d", "e", "f"}),
        ('count(up{job="triton"} == 1) > 0 and on () g offset 5m', {"up", "g"}),
        ("max_over_time(h[1h:5m]) or vector(0)", {"h"}),
        ("1 - (sum by (route) (increase(i[$__range])) or 0 * j) / j", {"i", "j"}),
        ('k{le="+Inf", quantile="0.99"} bool > 2', {"k"}),
    ],
)
def test_metric_name_extraction(expr: str, names: set[str]) -> None:
    from deploy.grafana.queries import substitute

    assert metric_names(substitute(expr)) == names
