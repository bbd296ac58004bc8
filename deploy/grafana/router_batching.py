"""The router dashboard's batching and queueing row: rows per Triton request, how long rows
waited for their batch, and how long requests waited before their handler ran (issue 9)."""

from __future__ import annotations

from deploy.grafana.model import Panel, Row, Target
from deploy.grafana.panels_common import R


def batching_row() -> Row:
    return Row(
        "Batching and queueing",
        (
            Panel(
                "Rows per Triton request by route",
                (Target(f"sum by (route) (rate(router_batch_size_sum{{{R}}}[5m])) / "
                        f"sum by (route) (rate(router_batch_size_count{{{R}}}[5m]))",
                        "{{route}}"),),
                description="Cross-robot micro-batching: mean rows per Triton request.",
            ),
            Panel(
                "Batch wait p99 by route",
                (Target("histogram_quantile(0.99, sum by (route, le) "
                        f"(rate(router_batch_wait_seconds_bucket{{{R}}}[5m])))", "{{route}}"),),
                unit="s",
                description="How long a row waited for its batch to leave (bounded by its "
                "slack and routing.batching.max_wait_ms).",
            ),
            Panel(
                "Queue wait before the handler p99",
                (Target("histogram_quantile(0.99, sum by (le) "
                        "(rate(router_queue_wait_seconds_bucket[5m])))", "p99"),),
                unit="s",
                description="Estimated time requests waited in the router before their "
                "handler ran; charged to their budget.",
            ),
        ),
    )
