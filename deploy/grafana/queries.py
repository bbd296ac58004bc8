"""Every PromQL query the operators' tools run: dashboard panels and Prometheus rules.

For the test that runs each panel query against a real Prometheus scraping the real stack:

    for q in dashboard_queries():
        result = prom_query(q.promql())   # Grafana macros and variables substituted
        assert result["status"] == "success", q

Queries come from the checked-in JSON (what Grafana loads), not from the generator.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy.grafana.generate import DASHBOARD_DIR
from deploy.prometheus.config import load_rule_groups

# Values a Grafana user would see with the default time range and "All" selected.
DEFAULT_MACROS = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "1h",
}


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str  # dashboard uid
    panel: str  # panel title
    ref_id: str
    expr: str  # as stored in the dashboard, with $variables
    instant: bool

    def promql(
        self, macros: dict[str, str] | None = None, variables: dict[str, str] | None = None
    ) -> str:
        return substitute(self.expr, macros, variables)


@dataclass(frozen=True)
class RuleQuery:
    group: str
    name: str  # record or alert name
    kind: str  # "record" | "alert"
    expr: str


def substitute(
    expr: str, macros: dict[str, str] | None = None, variables: dict[str, str] | None = None
) -> str:
    """Replace $__macros and $variables / ${variables}; unknown variables become `.*`
    (the dashboards' "All" value: every variable is used inside a =~ matcher). `$1` in a
    label_replace replacement is not a variable and stays."""
    values = {**DEFAULT_MACROS, **(macros or {}), **(variables or {})}

    def repl(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        return values.get(name, ".*")

    return re.sub(r"\$\{([A-Za-z_]\w*)\}|\$([A-Za-z_]\w*)", repl, expr)


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for p in panels:
        if p.get("type") == "row":
            yield from _panels(p.get("panels", []))
        else:
            yield p


def dashboard_queries(dashboard_dir: Path = DASHBOARD_DIR) -> list[PanelQuery]:
    out: list[PanelQuery] = []
    for path in sorted(dashboard_dir.glob("*.json")):
        board = json.loads(path.read_text())
        for panel in _panels(board["panels"]):
            for target in panel.get("targets", []):
                out.append(
                    PanelQuery(
                        dashboard=board["uid"],
                        panel=panel["title"],
                        ref_id=target["refId"],
                        expr=target["expr"],
                        instant=bool(target.get("instant")),
                    )
                )
    return out


def variable_queries(dashboard_dir: Path = DASHBOARD_DIR) -> list[tuple[str, str, str]]:
    """(dashboard uid, variable name, label_values query) for every query variable."""
    out = []
    for path in sorted(dashboard_dir.glob("*.json")):
        board = json.loads(path.read_text())
        for var in board["templating"]["list"]:
            if var["type"] == "query":
                out.append((board["uid"], var["name"], var["definition"]))
    return out


def rule_queries() -> list[RuleQuery]:
    out = []
    for group in load_rule_groups():
        for rule in group["rules"]:
            kind = "record" if "record" in rule else "alert"
            out.append(RuleQuery(group["name"], rule[kind], kind, rule["expr"]))
    return out
