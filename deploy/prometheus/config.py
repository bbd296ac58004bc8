"""Load the checked-in Prometheus configuration and render the local variant from it.

`prometheus.yml` (compose hostnames) is the single source: the local variant that `make up`
runs keeps its jobs, rules and intervals and only swaps targets, makes rule paths absolute
(the rendered file lives under .run/, away from rules/) and shortens the scrape interval so a
developer sees data within seconds.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PROMETHEUS_DIR = Path(__file__).resolve().parent
CONFIG_PATH = PROMETHEUS_DIR / "prometheus.yml"
RULES_DIR = PROMETHEUS_DIR / "rules"
TESTS_DIR = PROMETHEUS_DIR / "tests"

# Job names are a contract with the alert rules (`up{job="router"}`) and the dashboards.
ROUTER_JOB = "router"
TRITON_JOB = "triton"
PROMETHEUS_JOB = "prometheus"


@dataclass(frozen=True)
class ScrapeTargets:
    """host:port of each scraped process; several router replicas may run side by side."""

    router: Sequence[str] = ("127.0.0.1:8080",)
    triton: Sequence[str] = ("127.0.0.1:8002",)
    prometheus: str = "127.0.0.1:9090"


def load_config(path: Path = CONFIG_PATH) -> dict[str, Any]:
    with path.open() as fh:
        data = yaml.safe_load(fh)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a mapping")
    return data


def rule_file_paths(config: dict[str, Any] | None = None) -> list[Path]:
    """The rule files named by the checked-in config, as absolute paths."""
    cfg = config if config is not None else load_config()
    return [(CONFIG_PATH.parent / name).resolve() for name in cfg.get("rule_files", [])]


def local_config(
    targets: ScrapeTargets = ScrapeTargets(),
    scrape_interval: str = "5s",
    evaluation_interval: str | None = None,
) -> dict[str, Any]:
    """The checked-in config with local targets; every job of it must get targets."""
    cfg = copy.deepcopy(load_config())
    glob = cfg.setdefault("global", {})
    glob["scrape_interval"] = scrape_interval
    glob["evaluation_interval"] = evaluation_interval or scrape_interval
    # scrape_timeout must not exceed the interval; Prometheus rejects the config otherwise.
    glob.pop("scrape_timeout", None)
    glob.setdefault("external_labels", {})["stack"] = "robot-policy-router-local"
    cfg["rule_files"] = [str(p) for p in rule_file_paths(cfg)]
    by_job: dict[str, list[str]] = {
        ROUTER_JOB: list(targets.router),
        TRITON_JOB: list(targets.triton),
        PROMETHEUS_JOB: [targets.prometheus],
    }
    for job in cfg["scrape_configs"]:
        name = job["job_name"]
        if name not in by_job:
            raise KeyError(f"prometheus.yml has job {name!r} that the local variant cannot fill")
        job["static_configs"] = [{"targets": by_job[name]}]
    return cfg


def write_config(config: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "# Rendered by deploy/prometheus/config.py from deploy/prometheus/prometheus.yml.\n"
    path.write_text(header + yaml.safe_dump(config, sort_keys=False))
    return path


def load_rule_groups(paths: Sequence[Path] | None = None) -> list[dict[str, Any]]:
    """Every rule group of the rule files, in file order."""
    groups: list[dict[str, Any]] = []
    for path in paths if paths is not None else rule_file_paths():
        with path.open() as fh:
            groups.extend(yaml.safe_load(fh)["groups"])
    return groups


def recorded_names() -> set[str]:
    return {r["record"] for g in load_rule_groups() for r in g["rules"] if "record" in r}


def alert_names() -> list[str]:
    return [r["alert"] for g in load_rule_groups() for r in g["rules"] if "alert" in r]
