"""The router dashboard: traffic and latency by route, SLA compliance, decisions, fallbacks,
deadline misses, misroutes, in-flight and shed requests, circuits, store health."""

from __future__ import annotations

from deploy.grafana.model import Dashboard, Panel, Row, Target, Variable, value_mapping
from deploy.grafana.panels_common import LINKS, SLA_STEPS, UP_MAPPING, R
from deploy.grafana.router_batching import batching_row


def _quantiles(rule_metric: str) -> tuple[Target, ...]:
    return tuple(
        Target(f"{rule_metric.format(q=q)}{{{R}}}", legend=f"{{{{route}}}} {q}")
        for q in ("p50", "p90", "p99")
    )


def router_dashboard() -> Dashboard:
    traffic = Row(
        "Traffic and latency",
        (
            Panel(
                "Requests by route",
                (Target(f"sum by (route) (route:router_requests:rate5m{{{R}}})", "{{route}}"),),
                unit="reqps",
                stack=True,
            ),
            Panel(
                "Requests by outcome",
                (
                    Target(
                        f"sum by (outcome) (route_outcome:router_requests:rate5m{{{R}}})",
                        "{{outcome}}",
                    ),
                ),
                unit="reqps",
                stack=True,
                description="ok, fallback, hold, shed, rejected, error (docs/interfaces.md).",
            ),
            Panel(
                "Request latency p50 / p90 / p99 by route",
                _quantiles("route:router_request_duration_seconds:{q}_5m"),
                unit="s",
                description="End-to-end router latency, from the router_request_duration_seconds "
                "histogram (buckets 1 ms to 1 s).",
            ),
            Panel(
                "Upstream (Triton) latency p50 / p99 by route",
                (
                    Target(
                        f"route:router_upstream_duration_seconds:p50_5m{{{R}}}",
                        "{{route}} p50",
                    ),
                    Target(
                        f"route:router_upstream_duration_seconds:p99_5m{{{R}}}",
                        "{{route}} p99",
                    ),
                ),
                unit="s",
            ),
        ),
    )
    sla = Row(
        "SLA: 99.9 % of served requests within their deadline",
        (
            Panel(
                "SLA compliance by route (5m)",
                (Target(f"route:router_sla_compliance:ratio_rate5m{{{R}}}", "{{route}}"),),
                unit="percentunit",
                max=1,
                thresholds=SLA_STEPS,
                width=8,
            ),
            Panel(
                "SLA compliance over the dashboard range",
                (
                    Target(
                        "1 - (\n"
                        "  sum by (route) "
                        f"(increase(router_deadline_misses_total{{{R}}}[$__range]))\n"
                        "  or 0 * sum by (route) "
                        f'(increase(router_requests_total{{{R},outcome!="rejected"}}[$__range]))\n'
                        ") / sum by (route) "
                        f'(increase(router_requests_total{{{R},outcome!="rejected"}}[$__range]))',
                        "{{route}}",
                        instant=True,
                    ),
                ),
                kind="stat",
                unit="percentunit",
                thresholds=SLA_STEPS,
                width=8,
            ),
            Panel(
                "Error budget burn rate by route (1h)",
                (
                    Target(
                        f"route:router_deadline_misses:ratio_rate1h{{{R}}} / 0.001",
                        "{{route}}",
                    ),
                ),
                unit="x",
                thresholds=((None, "green"), (1, "yellow"), (6, "orange"), (14.4, "red")),
                description="1 = spending the budget exactly over 30 days; the alerts page at "
                "14.4 (1h) and 6 (6h).",
                width=8,
            ),
            Panel(
                "Deadline misses by route",
                (Target(f"route:router_deadline_misses:rate5m{{{R}}}", "{{route}}"),),
                unit="reqps",
                width=24,
            ),
        ),
    )
    decisions = Row(
        "Routing decisions",
        (
            Panel(
                "Decisions by task and route",
                (
                    Target(
                        f"sum by (task, route) (task_route:router_decisions:rate5m{{{R}}})",
                        "{{task}} → {{route}}",
                    ),
                ),
                unit="reqps",
                stack=True,
            ),
            Panel(
                "Decisions by reason",
                (Target("sum by (reason) (reason:router_decisions:rate5m)", "{{reason}}"),),
                unit="reqps",
                stack=True,
            ),
            Panel(
                "Fallbacks",
                (
                    Target(
                        "from_route_to_route_reason:router_fallbacks:rate5m",
                        "{{from_route}} → {{to_route}} ({{reason}})",
                    ),
                ),
                unit="reqps",
            ),
            Panel(
                "Fallback ratio",
                (Target("job:router_fallbacks:ratio_rate5m", "{{job}}"),),
                unit="percentunit",
            ),
            Panel(
                "Misroutes over the dashboard range (rows: true task, columns: routed task)",
                (
                    Target(
                        "sum by (true_task, routed_task) "
                        "(increase(router_misroutes_total[$__range]))",
                        instant=True,
                        table=True,
                    ),
                ),
                kind="table",
                transformations=(
                    {
                        "id": "groupingToMatrix",
                        "options": {
                            "rowField": "true_task",
                            "columnField": "routed_task",
                            "valueField": "Value",
                        },
                    },
                ),
                description="From feedback with true_task: a confusion table of the task "
                "inference. Empty until feedback arrives.",
                width=16,
            ),
            Panel(
                "Misroutes per decision (1h)",
                (Target("job:router_misroutes_per_decision:ratio_rate1h", "{{job}}"),),
                unit="percentunit",
                width=8,
            ),
        ),
    )
    load = Row(
        "Load, shedding and circuits",
        (
            Panel(
                "In-flight requests by replica",
                (Target("sum by (instance) (router_inflight_requests)", "{{instance}}"),),
                width=8,
            ),
            Panel(
                "Shed requests by reason",
                (Target("reason:router_shed:rate5m", "{{reason}}"),),
                unit="reqps",
                width=8,
            ),
            Panel(
                "Errors by kind",
                (Target("kind:router_errors:rate5m", "{{kind}}"),),
                unit="reqps",
                width=8,
            ),
            Panel(
                "Circuit state by route",
                (Target(f"max by (route) (router_circuit_open{{{R}}})", "{{route}}"),),
                kind="state-timeline",
                mappings=(value_mapping({"0": ("closed", "green"), "1": ("open", "red")}),),
                thresholds=((None, "green"), (1, "red")),
                width=24,
            ),
        ),
    )
    state = Row(
        "State, audit and scrape health",
        (
            Panel(
                "Redis reachable, by replica",
                (Target("min by (instance) (router_redis_up)", "{{instance}}"),),
                kind="stat",
                mappings=(UP_MAPPING,),
                thresholds=((None, "red"), (1, "green")),
                width=6,
            ),
            Panel(
                "Router scrape targets",
                (Target('up{job="router"}', "{{instance}}"),),
                kind="stat",
                mappings=(UP_MAPPING,),
                thresholds=((None, "red"), (1, "green")),
                width=6,
            ),
            Panel(
                "Decision log buffered records",
                (Target("sum by (instance) (router_decision_log_buffered)", "{{instance}}"),),
                width=6,
            ),
            Panel(
                "Decision log records lost (range)",
                (
                    Target(
                        "sum(increase(router_decision_log_lost_total[$__range])) or vector(0)",
                        instant=True,
                    ),
                ),
                kind="stat",
                thresholds=((None, "green"), (1, "red")),
                width=6,
            ),
            Panel(
                "Calibration staleness by task and policy",
                (
                    Target(
                        "max by (task, policy) (router_calibration_stale)",
                        instant=True,
                        table=True,
                    ),
                ),
                kind="table",
                mappings=(value_mapping({"0": ("fresh", "green"), "1": ("stale", "red")}),),
                width=12,
            ),
            Panel(
                "Contract version by replica",
                (
                    Target(
                        "max by (instance, version) (router_contract_info)",
                        instant=True,
                        table=True,
                    ),
                ),
                kind="table",
                width=12,
            ),
        ),
    )
    return Dashboard(
        uid="robot-router",
        title="Robot policy router",
        description="Traffic, latency SLA, routing decisions and health of the policy router.",
        tags=("robot-policy-router", "router"),
        variables=(
            Variable("route", "Route", "label_values(router_requests_total, route)"),
        ),
        rows=(traffic, sla, decisions, load, batching_row(), state),
        links=LINKS,
    )
