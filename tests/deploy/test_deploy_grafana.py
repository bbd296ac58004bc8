"""Grafana dashboards: the checked-in JSON is the generator's output, panels are well formed,
every query parses with the real PromQL parser, and provisioning points at them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_testkit import DEPLOY, run

from deploy.grafana.generate import DASHBOARD_DIR, rendered
from deploy.grafana.model import DATASOURCE_UID
from deploy.grafana.queries import dashboard_queries

PROVISIONING = DEPLOY / "grafana" / "provisioning"


def _boards() -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(DASHBOARD_DIR.glob("*.json"))}


def test_checked_in_json_equals_generator_output() -> None:
    files = rendered()
    assert {p.name for p in files} == {"router.json", "triton.json"}
    for path, text in files.items():
        assert path.exists(), f"{path} missing: run python -m deploy.grafana.generate"
        assert path.read_text() == text, f"{path} stale: run python -m deploy.grafana.generate"
    assert sorted(DASHBOARD_DIR.glob("*.json")) == sorted(files)


def test_panels_are_well_formed() -> None:
    for name, board in _boards().items():
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), name
        cells: set[tuple[int, int]] = set()
        for panel in board["panels"]:
            pos = panel["gridPos"]
            assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, (name, panel["title"])
            for x in range(pos["x"], pos["x"] + pos["w"]):
                for y in range(pos["y"], pos["y"] + pos["h"]):
                    assert (x, y) not in cells, f"{name}: {panel['title']} overlaps"
                    cells.add((x, y))
            if panel["type"] == "row":
                continue
            refs = [t["refId"] for t in panel["targets"]]
            assert refs and len(refs) == len(set(refs)), (name, panel["title"])
            assert panel["datasource"]["uid"] == "${datasource}"
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert variables["datasource"]["current"]["value"] == DATASOURCE_UID


def test_router_dashboard_covers_the_operators_questions() -> None:
    router = _boards()["router"]
    titles = " | ".join(p["title"].lower() for p in router["panels"])
    for topic in (
        "requests by route", "latency", "sla compliance", "decisions by task and route",
        "fallback", "deadline misses", "misroutes", "in-flight", "shed", "circuit", "redis",
        "decision log",
    ):
        assert topic in titles, topic
    confusion = next(p for p in router["panels"] if p["title"].lower().startswith("misroutes over"))
    assert confusion["type"] == "table"
    assert confusion["transformations"][0]["id"] == "groupingToMatrix"
    triton = " | ".join(p["title"].lower() for p in _boards()["triton"]["panels"])
    for topic in ("requests by model", "queue time", "compute", "batch size", "failure"):
        assert topic in triton, topic


@pytest.mark.prometheus
def test_every_panel_query_parses(promtool: str, tmp_path: Path) -> None:
    """Each query, macros substituted, becomes a recording rule that `promtool check rules`
    parses with Prometheus' own PromQL parser."""
    queries = dashboard_queries()
    rules = [
        {"record": f"dashboard:query_{i}:check", "expr": q.promql()} for i, q in enumerate(queries)
    ]
    path = tmp_path / "panel_queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    result = run([promtool, "check", "rules", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(queries)} rules found" in result.stdout


def test_provisioning_matches_dashboards_and_compose() -> None:
    ds = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    (source,) = ds["datasources"]
    assert source["uid"] == DATASOURCE_UID and source["type"] == "prometheus"
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "dashboards.yml").read_text())
    (provider,) = providers["providers"]
    compose = yaml.safe_load((DEPLOY / "compose" / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"../grafana/dashboards:{provider['options']['path']}:ro" in mounts
    assert "../grafana/provisioning:/etc/grafana/provisioning:ro" in mounts
    assert "PROMETHEUS_URL" in compose["services"]["grafana"]["environment"]
