"""Prometheus config and rules, checked by the real promtool: syntax, and unit tests in which
every alert fires on constructed series and stays quiet on healthy ones."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_testkit import OPERATIONS_MD, run

from deploy.prometheus.config import (
    CONFIG_PATH,
    RULES_DIR,
    TESTS_DIR,
    ScrapeTargets,
    alert_names,
    load_rule_groups,
    local_config,
    rule_file_paths,
    write_config,
)

RULE_TESTS = sorted(TESTS_DIR.glob("*.test.yml"))


def _alert_expectations() -> dict[str, list[list[Any]]]:
    """alertname -> every exp_alerts list the promtool tests give for it."""
    out: dict[str, list[list[Any]]] = {}
    for path in RULE_TESTS:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                out.setdefault(case["alertname"], []).append(case.get("exp_alerts") or [])
    return out


@pytest.mark.prometheus
def test_promtool_check_config(promtool: str) -> None:
    result = run([promtool, "check", "config", str(CONFIG_PATH)])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.prometheus
def test_promtool_check_rules(promtool: str) -> None:
    files = [str(p) for p in rule_file_paths()]
    assert files, "prometheus.yml names no rule files"
    result = run([promtool, "check", "rules", *files])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.prometheus
def test_promtool_rule_unit_tests(promtool: str) -> None:
    assert len(RULE_TESTS) >= 4
    result = run([promtool, "test", "rules", *map(str, RULE_TESTS)], cwd=TESTS_DIR)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.prometheus
def test_local_config_is_valid_and_keeps_jobs_and_rules(promtool: str, tmp_path: Path) -> None:
    targets = ScrapeTargets(
        router=("127.0.0.1:18080", "127.0.0.1:18081"), triton=("127.0.0.1:18002",),
        prometheus="127.0.0.1:19090",
    )
    cfg = local_config(targets, scrape_interval="2s")
    path = write_config(cfg, tmp_path / "prometheus.yml")
    result = run([promtool, "check", "config", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = {j["job_name"]: j["static_configs"][0]["targets"] for j in cfg["scrape_configs"]}
    assert jobs == {
        "router": ["127.0.0.1:18080", "127.0.0.1:18081"],
        "triton": ["127.0.0.1:18002"],
        "prometheus": ["127.0.0.1:19090"],
    }
    assert all(Path(p).is_absolute() and Path(p).exists() for p in cfg["rule_files"])
    assert cfg["global"]["scrape_interval"] == "2s"


@pytest.mark.prometheus
def test_rule_tests_catch_a_broken_threshold(promtool: str, tmp_path: Path) -> None:
    """The unit tests are not vacuous: loosen the fast-burn factor and they must fail."""
    copy = tmp_path / "prometheus"
    shutil.copytree(RULES_DIR, copy / "rules")
    shutil.copytree(TESTS_DIR, copy / "tests")
    alerts = copy / "rules" / "alerts.yml"
    text = alerts.read_text()
    assert text.count("(14.4 * 0.001)") == 2
    alerts.write_text(text.replace("(14.4 * 0.001)", "(30 * 0.001)"))
    result = run([promtool, "test", "rules", "slo_burn.test.yml"], cwd=copy / "tests")
    assert result.returncode != 0
    assert "RouterLatencySLOFastBurn" in result.stdout + result.stderr


def test_every_alert_fires_in_a_test_and_stays_quiet_when_healthy() -> None:
    expectations = _alert_expectations()
    healthy = {
        case["alertname"]
        for test in yaml.safe_load((TESTS_DIR / "healthy.test.yml").read_text())["tests"]
        for case in test["alert_rule_test"]
        if not case.get("exp_alerts")
    }
    for name in alert_names():
        assert any(expectations.get(name, [])), f"{name}: no promtool test makes it fire"
        assert name in healthy, f"{name}: healthy.test.yml does not check it stays quiet"


def test_alerts_have_severity_and_a_runbook_section() -> None:
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in OPERATIONS_MD.read_text().splitlines()
        if line.startswith("#")
    }
    for group in load_rule_groups():
        for rule in group["rules"]:
            if "alert" not in rule:
                continue
            assert rule["labels"]["severity"] in {"page", "ticket"}, rule["alert"]
            url = rule["annotations"]["runbook_url"]
            path, _, anchor = url.partition("#")
            assert path == "docs/operations.md", url
            assert anchor in anchors, f"{rule['alert']}: no heading for #{anchor}"
            assert rule["annotations"]["summary"]


def test_slo_alerts_follow_the_workbook_windows() -> None:
    """14.4x over 1h & 5m and 6x over 6h & 30m page; 1x over 3d & 6h opens a ticket."""
    rules = {r["alert"]: r for g in load_rule_groups() for r in g["rules"] if "alert" in r}
    expected = {
        "RouterLatencySLOFastBurn": ("14.4", "1h", "5m", "page"),
        "RouterLatencySLOSlowBurn": ("6", "6h", "30m", "page"),
        "RouterLatencySLOBudgetBurn": ("1", "3d", "6h", "ticket"),
    }
    for name, (factor, long_w, short_w, severity) in expected.items():
        expr = " ".join(rules[name]["expr"].split())
        assert f"route:router_deadline_misses:ratio_rate{long_w} > ({factor} * 0.001)" in expr
        assert f"route:router_deadline_misses:ratio_rate{short_w} > ({factor} * 0.001)" in expr
        assert rules[name]["labels"]["severity"] == severity
