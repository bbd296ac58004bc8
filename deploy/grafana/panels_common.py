"""What the router and Triton dashboards share: label filters, thresholds, links between them.
Queries prefer the recording rules in deploy/prometheus/rules/recording.yml (computed once,
identical to what alerts see) and fall back to raw metrics with $__rate_interval where a rule
would be one-off."""

from __future__ import annotations

from deploy.grafana.model import value_mapping

R = 'route=~"$route"'
M = 'model=~"$model"'
SLA_STEPS = ((None, "red"), (0.999, "green"))  # the latency SLO: 99.9 % within budget
UP_MAPPING = value_mapping({"0": ("down", "red"), "1": ("up", "green")})

LINKS = (
    {"title": "Router", "type": "link", "url": "/d/robot-router", "icon": "dashboard"},
    {"title": "Triton", "type": "link", "url": "/d/robot-triton", "icon": "dashboard"},
)


