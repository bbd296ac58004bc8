"""Helpers for the deploy/ tests: paths, real binaries, and the router metric contract parsed
from docs/interfaces.md. (A uniquely named module: several test folders have a conftest.py.)"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY = REPO_ROOT / "deploy"
INTERFACES_MD = REPO_ROOT / "docs" / "interfaces.md"
OPERATIONS_MD = REPO_ROOT / "docs" / "operations.md"

# Validators this suite needs in the virtual environment (pins to add to requirements.lock).
PINS = {
    "jsonschema": "jsonschema==4.26.0",
    "kubernetes_validate": "kubernetes-validate==1.37.0",
}


def require_module(name: str) -> None:
    """Fail (not skip) when a validator is missing: a skipped validation reads as a pass."""
    if importlib.util.find_spec(name) is None:
        pytest.fail(f"{name} is not installed: .venv/bin/pip install {PINS[name]}")


def require_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found: run scripts/install_system_deps.sh")
    return path


def run(
    argv: list[str], cwd: Path = REPO_ROOT, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout)


@dataclass(frozen=True)
class RouterMetric:
    name: str
    kind: str  # counter | histogram | gauge
    labels: tuple[str, ...]

    def exported_names(self) -> set[str]:
        """Series names Prometheus stores for this metric (prometheus_client exposition)."""
        if self.kind == "histogram":
            return {f"{self.name}_bucket", f"{self.name}_sum", f"{self.name}_count"}
        return {self.name}


def router_metrics_contract() -> dict[str, RouterMetric]:
    """The "Router metrics" table of docs/interfaces.md, the operators' contract."""
    text = INTERFACES_MD.read_text()
    section = text.split("## Router metrics", 1)[1].split("\n## ", 1)[0]
    out: dict[str, RouterMetric] = {}
    for line in section.splitlines():
        m = re.match(r"\|\s*(router_\w+)\s*\|\s*([a-z]+)[^|]*\|\s*([^|]*)\|", line)
        if not m:
            continue
        name, kind, labels_text = m.groups()
        # "route, outcome (ok, fallback, ...)": label names, without the value lists.
        labels = tuple(re.findall(r"[a-z_]+", re.sub(r"\([^)]*\)", "", labels_text)))
        out[name] = RouterMetric(name, kind, labels)
    if not out:
        raise AssertionError("no router metrics table found in docs/interfaces.md")
    return out


class PromAPI:
    """The few Prometheus HTTP API calls the live tests make."""

    def __init__(self, base: str) -> None:
        self.base = base

    def get(self, path: str, **params: str) -> dict[str, Any]:
        url = f"{self.base}{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as resp:
            body: dict[str, Any] = json.load(resp)
        return body

    def query(self, expr: str) -> dict[str, Any]:
        data = urllib.parse.urlencode({"query": expr}).encode()
        try:
            with urllib.request.urlopen(f"{self.base}/api/v1/query", data, timeout=10) as resp:
                body: dict[str, Any] = json.load(resp)
        except urllib.error.HTTPError as err:  # 400/422 carry the parse/eval error as JSON
            body = json.load(err)
        return body

    def targets_up(self, count: int) -> bool:
        targets = self.get("/api/v1/targets")["data"]["activeTargets"]
        return len(targets) == count and all(t["health"] == "up" for t in targets)

    def unhealthy_rules(self) -> dict[str, Any]:
        groups = self.get("/api/v1/rules")["data"]["groups"]
        return {r["name"]: r.get("lastError") for g in groups for r in g["rules"]
                if r["health"] != "ok"}


def wait_for(check: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def run_panel_queries(api: PromAPI) -> tuple[dict[tuple[str, str, str], Any], set[tuple[str, str]]]:
    """Every dashboard query against `api`: (errors by query, panels with an empty result)."""
    from deploy.grafana.queries import dashboard_queries

    errors: dict[tuple[str, str, str], Any] = {}
    empty: set[tuple[str, str]] = set()
    for q in dashboard_queries():
        body = api.query(q.promql())
        if body["status"] != "success":
            errors[(q.dashboard, q.panel, q.ref_id)] = body.get("error")
        elif not body["data"]["result"]:
            empty.add((q.dashboard, q.panel))
    return errors, empty


CONTRACT = REPO_ROOT / "deploy" / "contracts" / "ci.yaml"


def _calibration_table(tasks: list[str]) -> dict[str, Any]:
    """A table in the docs/interfaces.md format, for stand-in artifacts that have none."""
    rows = []
    for task in tasks:
        for policy, successes in (("generalist", 21), ("specialist_" + task.replace("-", "_"), 27)):
            rate = successes / 30
            rows.append({"task": task, "policy": policy, "episodes": 30, "successes": successes,
                         "rate": rate, "ci95": [rate - 0.15, min(1.0, rate + 0.15)]})
    return {"panel": "ci", "source": "offline", "created": "2026-01-01T00:00:00Z", "rows": rows}


def contract_for(artifacts: Path, folder: Path) -> Path:
    """deploy/contracts/ci.yaml with its artifact paths pointed at what Triton serves (the
    real `make models` build in CI, stand-ins otherwise)."""
    contract = yaml.safe_load(CONTRACT.read_text())
    manifest = json.loads((artifacts / "manifest.json").read_text())
    if [t["name"] for t in contract["tasks"]] != manifest["tasks"]:
        pytest.skip(f"{CONTRACT.name} tasks differ from the served artifacts' tasks")
    table = artifacts / "offline_matrix.json"
    if not table.exists():
        table = folder / "offline_matrix.json"
        table.write_text(json.dumps(_calibration_table(manifest["tasks"])))
    contract["calibration"]["table"] = str(table)
    contract["task_classifier"]["model"] = str(artifacts / "task_classifier" / "model.onnx")
    contract["task_classifier"]["norm_stats"] = str(artifacts / "norm_stats.json")
    path = folder / "contract.yaml"
    path.write_text(yaml.safe_dump(contract, sort_keys=False))
    return path
