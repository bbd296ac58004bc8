"""The router and Triton dashboards. Queries prefer the recording rules in
deploy/prometheus/rules/recording.yml (computed once, identical to what alerts see) and fall back
to raw metrics with $__rate_interval where a rule would be one-off."""

from __future__ import annotations

from deploy.grafana.model import Dashboard, Panel, Row, Target, Variable, value_mapping

R = 'route=~"$route"'
M = 'model=~"$model"'
SLA_STEPS = ((None, "red"), (0.999, "green"))  # the latency SLO: 99.9 % within budget
UP_MAPPING = value_mapping({"0": ("down", "red"), "1": ("up", "green")})

LINKS = (
    {"title": "Router", "type": "link", "url": "/d/robot-router", "icon": "dashboard"},
    {"title": "Triton", "type": "link", "url": "/d/robot-triton", "icon": "dashboard"},
)


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
        rows=(traffic, sla, decisions, load, state),
        links=LINKS,
    )


def triton_dashboard() -> Dashboard:
    rows = (
        Row(
            "Requests",
            (
                Panel(
                    "Successful requests by model",
                    (Target(f"model:nv_inference_request_success:rate5m{{{M}}}", "{{model}}"),),
                    unit="reqps",
                ),
                Panel(
                    "Failures by model and reason",
                    (
                        Target(
                            "sum by (model, reason) "
                            f"(rate(nv_inference_request_failure{{{M}}}[$__rate_interval]))",
                            "{{model}} {{reason}}",
                        ),
                    ),
                    unit="reqps",
                ),
                Panel(
                    "Failure ratio by model",
                    (
                        Target(
                            f"model:nv_inference_request_failure:ratio_rate5m{{{M}}}",
                            "{{model}}",
                        ),
                    ),
                    unit="percentunit",
                    thresholds=((None, "green"), (0.01, "red")),
                ),
                Panel(
                    "Pending requests by model",
                    (
                        Target(
                            f"sum by (model) (nv_inference_pending_request_count{{{M}}})",
                            "{{model}}",
                        ),
                    ),
                ),
            ),
        ),
        Row(
            "Time per request",
            (
                Panel(
                    "Queue time per request",
                    (
                        Target(
                            f"model:nv_inference_queue_duration_seconds:mean5m{{{M}}}",
                            "{{model}}",
                        ),
                    ),
                    unit="s",
                    width=8,
                ),
                Panel(
                    "Compute (infer) time per request",
                    (
                        Target(
                            f"model:nv_inference_compute_infer_duration_seconds:mean5m{{{M}}}",
                            "{{model}}",
                        ),
                    ),
                    unit="s",
                    width=8,
                ),
                Panel(
                    "Total time in Triton per request",
                    (
                        Target(
                            f"model:nv_inference_request_duration_seconds:mean5m{{{M}}}",
                            "{{model}}",
                        ),
                    ),
                    unit="s",
                    width=8,
                ),
            ),
        ),
        Row(
            "Batching",
            (
                Panel(
                    "Batch size (inferences per execution)",
                    (Target(f"model:nv_inference_batch_size:mean5m{{{M}}}", "{{model}}"),),
                    description="Above 1 only where the dynamic batcher groups requests.",
                ),
                Panel(
                    "Inferences and executions",
                    (
                        Target(
                            f"model:nv_inference_count:rate5m{{{M}}}", "{{model}} inferences"
                        ),
                        Target(
                            f"model:nv_inference_exec_count:rate5m{{{M}}}", "{{model}} executions"
                        ),
                    ),
                    unit="ops",
                ),
            ),
        ),
        Row(
            "Server",
            (
                Panel(
                    "Triton scrape targets",
                    (Target('up{job="triton"}', "{{instance}}"),),
                    kind="stat",
                    mappings=(UP_MAPPING,),
                    thresholds=((None, "red"), (1, "green")),
                    width=6,
                ),
                Panel(
                    "GPU utilisation",
                    (Target("nv_gpu_utilization", "{{instance}} GPU {{gpu_uuid}}"),),
                    unit="percentunit",
                    description="Empty on CPU-only hosts (no NVML).",
                    width=6,
                ),
                Panel(
                    "GPU memory used",
                    (Target("nv_gpu_memory_used_bytes", "{{instance}} GPU {{gpu_uuid}}"),),
                    unit="bytes",
                    width=6,
                ),
                Panel(
                    "CPU utilisation",
                    (Target("nv_cpu_utilization", "{{instance}}"),),
                    unit="percentunit",
                    width=6,
                ),
            ),
        ),
    )
    return Dashboard(
        uid="robot-triton",
        title="Robot policy Triton",
        description="Per-model traffic, queue and compute time, batching and failures of Triton.",
        tags=("robot-policy-router", "triton"),
        variables=(
            Variable("model", "Model", "label_values(nv_inference_request_success, model)"),
        ),
        rows=rows,
        links=LINKS,
    )


DASHBOARDS = {"router": router_dashboard, "triton": triton_dashboard}
