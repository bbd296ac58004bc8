"""Running the loadtest CLI as a subprocess for each measurement, and reading what it wrote.

Each measurement is the same command a person would type (`python -m loadtest run|capacity`),
in a fresh interpreter, so the generator's heap and event loop start clean every time and the
command line can be written into the summary next to its numbers. Its output goes to a log
file beside its results.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml

from loadtest.bench.stack import REPO, ROBOT_KEY
from loadtest.cli_args import EXIT_PASS, EXIT_SLA_FAIL
from loadtest.records import read_records
from loadtest.stats import nearest_rank

DEFAULT_SCENARIO = REPO / "loadtest" / "scenarios" / "default.yaml"
STRAGGLER_SCENARIO = REPO / "loadtest" / "scenarios" / "straggler.yaml"


class StepFailed(RuntimeError):
    """A loadtest command could not measure (usage error, target unreachable)."""


@dataclass(frozen=True)
class Timing:
    """How long each kind of measurement runs; `--quick` shrinks all of them."""

    run_s: float
    ramp_s: float
    step_s: float  # one capacity step
    step_ramp_s: float
    capacity_start: int
    capacity_max: int
    capacity_resolution: int
    profile_s: float
    settle_s: float
    cpu_s: float  # one CPU-per-request run
    min_step_requests: int = 3000  # a capacity step runs at least this many (small fleets longer)

    @staticmethod
    def full() -> Timing:
        return Timing(run_s=60, ramp_s=5, step_s=15, step_ramp_s=3, capacity_start=4,
                      capacity_max=512, capacity_resolution=1, profile_s=30, settle_s=3,
                      cpu_s=15)

    @staticmethod
    def quick() -> Timing:
        return Timing(run_s=4, ramp_s=1, step_s=3, step_ramp_s=1, capacity_start=2,
                      capacity_max=4, capacity_resolution=2, profile_s=4, settle_s=1,
                      cpu_s=3, min_step_requests=0)


@dataclass
class LoadtestRunner:
    out: Path
    commands: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, name: str, args: list[str], log_dir: Path) -> int:
        """Run `python -m loadtest <args>`; return its exit code (0 pass, 2 SLA missed)."""
        argv = [sys.executable, "-m", "loadtest", *args]
        log_dir.mkdir(parents=True, exist_ok=True)
        log = log_dir / f"{name}.log"
        env = dict(os.environ, ROUTER_API_KEY=ROBOT_KEY)
        shown = "python -m loadtest " + shlex.join(args)
        print(f"[bench] {name}: {shown}", file=sys.stderr, flush=True)
        start = time.monotonic()
        with log.open("wb") as fh:
            rc = subprocess.run(argv, cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                check=False).returncode
        self.commands.append({"step": name, "command": shown, "exit_code": rc,
                              "elapsed_s": round(time.monotonic() - start, 1),
                              "log": str(log.relative_to(self.out))})
        if rc not in (EXIT_PASS, EXIT_SLA_FAIL):
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
            raise StepFailed(f"{shown} exited {rc}:\n{tail}")
        return rc

    def popen(self, name: str, args: list[str], log_dir: Path) -> subprocess.Popen[bytes]:
        """Start a run in the background (the profile samples the router meanwhile)."""
        argv = [sys.executable, "-m", "loadtest", *args]
        log_dir.mkdir(parents=True, exist_ok=True)
        shown = "python -m loadtest " + shlex.join(args)
        print(f"[bench] {name}: {shown}", file=sys.stderr, flush=True)
        self.commands.append({"step": name, "command": shown,
                              "log": str((log_dir / f"{name}.log").relative_to(self.out))})
        with (log_dir / f"{name}.log").open("wb") as fh:
            return subprocess.Popen(argv, cwd=REPO, env=dict(os.environ, ROUTER_API_KEY=ROBOT_KEY),
                                    stdout=fh, stderr=subprocess.STDOUT)


def write_scenario(out: Path, name: str, base: Path, timing: Timing, **fields: Any) -> Path:
    """A scenario file for the benchmark, derived from a shipped one; kept with the results."""
    data: dict[str, Any] = yaml.safe_load(base.read_text())
    data.update(name=name, duration_s=timing.run_s, ramp_s=timing.ramp_s, **fields)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def load_json(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(path.read_bytes())
    return doc


def run_row(result: dict[str, Any], name: str, out: Path, result_dir: Path) -> dict[str, Any]:
    """The numbers the summary keeps from one run's result.json (the rest stays in the file)."""
    s = result["summary"]
    o = s["overall"]
    return {
        "name": name,
        "robots": result["scenario"]["robots"],
        "control_hz": result["scenario"]["control_hz"],
        "offered_rate_hz": o["offered_rate_hz"],
        "achieved_rate_hz": o["achieved_rate_hz"],
        "requests": o["requests"],
        "ok": o["ok"],
        "errors": o["errors"],
        "errors_by_kind": o["errors_by_kind"],
        "fallbacks": o["fallbacks"],
        "late_but_flagged_met": o.get("late_but_flagged_met"),
        "late_but_flagged_met_by_ms": o.get("late_but_flagged_met_by_ms"),
        "hold_share": o.get("hold_share"),
        "shed_share": o.get("shed_share"),
        "latency_ms": o["latency_ms"],
        "fraction_within_budget": o["fraction_within_budget"],
        "sla_pass": o["verdict"]["pass"],
        "routes": {r: g["requests"] for r, g in s["routes"].items()},
        "generator_lag_p99_ms": s["generator_lag"]["p99_ms"],
        "generator_late": s["generator_lag"]["late"],
        "result_dir": str(result_dir.relative_to(out)),
    }


def common_flags(manifest: Path, out_dir: Path, plot: bool = True) -> list[str]:
    flags = ["--manifest", str(manifest), "--out", str(out_dir), "--quiet"]
    return flags if plot else [*flags, "--no-plot"]


def task_breakdown(result_dir: Path, task: str) -> dict[str, Any]:
    """How one task's requests fared in a run (measured window): how often the router fell
    back, answered `hold`, or was over the budget. Says how hard the straggler really bit."""
    result = load_json(result_dir / "result.json")
    scen = result["scenario"]
    recs = [r for r in read_records(result_dir / "records.jsonl")
            if r.task == task and scen["ramp_s"] <= r.scheduled_s < scen["duration_s"]]
    n = len(recs)
    budget = scen["sla"]["budget_ms"]

    def share(count: int) -> float | None:
        return count / n if n else None

    ok = [r.latency_ms for r in recs if r.status == "ok" and r.latency_ms is not None]
    return {
        "task": task,
        "requests": n,
        "fallback_share": share(sum(r.fallback is not None for r in recs)),
        "hold_share": share(sum(r.route == "hold" for r in recs)),
        "over_budget_share": share(sum(r.status != "ok" or r.latency_ms is None
                                       or r.latency_ms > budget for r in recs)),
        "p99_ms": nearest_rank(ok, 0.99) if ok else None,
    }
