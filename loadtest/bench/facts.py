"""Machine facts recorded with every benchmark: numbers mean little without the box they ran on."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loadtest.bench.stack import REPO


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                             check=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def busy_processes(patterns: tuple[str, ...] = ("python -m evaluation", "tritonserver",
                                                "router_service")) -> dict[str, int]:
    """How many other processes matching each pattern were running (the benchmark's own
    tritonserver and router count too once they are up)."""
    counts = {}
    for pattern in patterns:
        try:
            out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True,
                                 check=False, timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        counts[pattern] = len([p for p in out.split() if p.isdigit() and int(p) != os.getpid()])
    return counts


def memory_total_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def machine_facts() -> dict[str, Any]:
    status = _git("status", "--porcelain")
    return {
        "date_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "hostname": platform.node(),
        "nproc": os.cpu_count(),
        "sched_affinity_cpus": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model(),
        "memory_gib": memory_total_gib(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": None if status is None else bool(status),
        "load_average_before": load_average(),
        "other_processes_before": busy_processes(),
    }
