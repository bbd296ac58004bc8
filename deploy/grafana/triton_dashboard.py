"""The Triton dashboard: per-model request rate, queue and compute time, batch size, failures."""

from __future__ import annotations

from deploy.grafana.model import Dashboard, Panel, Row, Target, Variable
from deploy.grafana.panels_common import LINKS, UP_MAPPING, M


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
