"""A minimal Grafana dashboard model that renders to dashboard JSON (schemaVersion 39).

grafanalib is not a dependency of the project, and the dashboards need only a few panel kinds,
so this stays small: frozen dataclasses in, plain dicts out, deterministic for the
checked-in-equals-generated test.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

DATASOURCE_UID = "prometheus"  # provisioning/datasources/prometheus.yml pins this uid
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
GRID_WIDTH = 24


@dataclass(frozen=True)
class Target:
    expr: str
    legend: str = ""
    instant: bool = False  # tables and stats over the dashboard range use one instant query
    table: bool = False


@dataclass(frozen=True)
class Panel:
    title: str
    targets: Sequence[Target]
    kind: str = "timeseries"  # timeseries | stat | table | state-timeline
    unit: str = "short"
    description: str = ""
    width: int = 12
    height: int = 8
    min: float | None = None
    max: float | None = None
    # Threshold steps [(value or None for the base, colour)], e.g. SLA red below 99.9 %.
    thresholds: Sequence[tuple[float | None, str]] = ()
    mappings: Sequence[dict[str, Any]] = ()
    transformations: Sequence[dict[str, Any]] = ()
    stack: bool = False


@dataclass(frozen=True)
class Row:
    title: str
    panels: Sequence[Panel]


@dataclass(frozen=True)
class Variable:
    name: str
    label: str
    query: str  # label_values(...) against the datasource
    multi: bool = True


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    rows: Sequence[Row]
    tags: Sequence[str] = ()
    variables: Sequence[Variable] = ()
    refresh: str = "30s"
    time_from: str = "now-3h"
    links: Sequence[dict[str, Any]] = field(default_factory=tuple)


def value_mapping(values: dict[str, tuple[str, str]]) -> dict[str, Any]:
    """{"0": ("closed", "green")} -> a Grafana value mapping."""
    return {
        "type": "value",
        "options": {
            key: {"text": text, "color": color, "index": i}
            for i, (key, (text, color)) in enumerate(values.items())
        },
    }


def _thresholds(steps: Sequence[tuple[float | None, str]]) -> dict[str, Any]:
    base = steps or ((None, "green"),)
    return {"mode": "absolute", "steps": [{"value": v, "color": c} for v, c in base]}


def _target(t: Target, ref: str) -> dict[str, Any]:
    return {
        "datasource": DATASOURCE,
        "refId": ref,
        "expr": t.expr,
        "legendFormat": t.legend or "__auto",
        "instant": t.instant,
        "range": not t.instant,
        "format": "table" if t.table else "time_series",
    }


def _panel(p: Panel, pid: int, x: int, y: int) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "unit": p.unit,
        "thresholds": _thresholds(p.thresholds),
        "mappings": list(p.mappings),
    }
    if p.min is not None:
        defaults["min"] = p.min
    if p.max is not None:
        defaults["max"] = p.max
    options: dict[str, Any] = {}
    if p.kind == "timeseries":
        defaults["custom"] = {
            "drawStyle": "line",
            "lineWidth": 1,
            "fillOpacity": 10,
            "showPoints": "never",
            "stacking": {"mode": "normal" if p.stack else "none", "group": "A"},
        }
        options = {
            "legend": {"displayMode": "table", "placement": "bottom", "calcs": ["mean", "max"]},
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    elif p.kind == "stat":
        options = {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "background",
            "graphMode": "none",
            "textMode": "auto",
        }
    elif p.kind == "table":
        options = {"showHeader": True, "cellHeight": "sm"}
    elif p.kind == "state-timeline":
        options = {"showValue": "auto", "mergeValues": True, "rowHeight": 0.9}
    else:
        raise ValueError(f"unknown panel kind {p.kind!r}")
    return {
        "id": pid,
        "type": p.kind,
        "title": p.title,
        "description": p.description,
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": p.width, "h": p.height},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": options,
        "targets": [_target(t, chr(ord("A") + i)) for i, t in enumerate(p.targets)],
        "transformations": list(p.transformations),
    }


def _variables(d: Dashboard) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {
            "name": "datasource",
            "label": "Data source",
            "type": "datasource",
            "query": "prometheus",
            "current": {"text": "Prometheus", "value": DATASOURCE_UID},
            "hide": 0,
        }
    ]
    for v in d.variables:
        out.append(
            {
                "name": v.name,
                "label": v.label,
                "type": "query",
                "datasource": DATASOURCE,
                "query": {"query": v.query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
                "definition": v.query,
                "refresh": 2,  # on time range change: new routes/models appear by themselves
                "multi": v.multi,
                "includeAll": True,
                "allValue": ".*",
                "current": {"text": "All", "value": "$__all"},
                "sort": 1,
                "hide": 0,
            }
        )
    return out


def render(d: Dashboard) -> dict[str, Any]:
    """Lay panels out left to right, wrapping at 24 columns, one collapsed-free row per Row."""
    panels: list[dict[str, Any]] = []
    pid, y = 1, 0
    for row in d.rows:
        panels.append(
            {
                "id": pid,
                "type": "row",
                "title": row.title,
                "collapsed": False,
                "gridPos": {"x": 0, "y": y, "w": GRID_WIDTH, "h": 1},
                "panels": [],
            }
        )
        pid, y, x, line_h = pid + 1, y + 1, 0, 0
        for p in row.panels:
            if x + p.width > GRID_WIDTH:
                x, y, line_h = 0, y + line_h, 0
            panels.append(_panel(p, pid, x, y))
            pid, x, line_h = pid + 1, x + p.width, max(line_h, p.height)
        y += line_h
    return {
        "uid": d.uid,
        "title": d.title,
        "description": d.description,
        "tags": list(d.tags),
        "editable": False,  # provisioned: change the generator, not the UI
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": d.refresh,
        "time": {"from": d.time_from, "to": "now"},
        "timezone": "utc",
        "links": list(d.links),
        "annotations": {"list": []},
        "templating": {"list": _variables(d)},
        "panels": panels,
    }
