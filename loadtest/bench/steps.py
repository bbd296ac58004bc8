"""The benchmark's measurements, each a loadtest command against the benchmark's own stack.

Every step returns the part of `summary.json` it owns; its raw results stay in its folder.
The scenario for capacity, overhead and baseline is the shipped default (10 robots x 50 Hz,
20 ms deadline, SLA 99.9% within 20 ms) with every task declared: the router then sends each
request to `specialist_<task>`, the ensemble the direct path calls, so the two paths run the
same model and differ only by the router.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtest.bench import profile
from loadtest.bench.runs import (
    DEFAULT_SCENARIO,
    STRAGGLER_SCENARIO,
    LoadtestRunner,
    Timing,
    common_flags,
    load_json,
    run_row,
    task_breakdown,
    write_scenario,
)
from loadtest.bench.stack import REPO, BenchStack, settle
from loadtest.compare import overhead_table, straggler_comparison
from loadtest.observations import observation_pool
from loadtest.scenario import load_scenario
from loadtest.schedule import build_plan
from loadtest.targets.base import task_id

BASELINE_ROBOTS = 10  # 10 robots x 50 Hz = 500 req/s, the rate the issue quotes


@dataclass
class Bench:
    out: Path
    stack: BenchStack
    timing: Timing
    run: LoadtestRunner
    grpc_router: bool = True

    def __post_init__(self) -> None:
        scen = self.out / "scenarios"
        self.scenario = write_scenario(scen, "bench", DEFAULT_SCENARIO, self.timing,
                                       hidden_task_share=0.0)
        self.straggler_scenario = write_scenario(scen, "bench-straggler", STRAGGLER_SCENARIO,
                                                 self.timing)

    def target_flags(self, path: str) -> list[str]:
        """--target/--transport/--url for one of: direct-grpc, router-http, router-grpc."""
        s = self.stack
        return {
            "direct-grpc": ["--target", "direct", "--transport", "grpc", "--url", s.triton_grpc],
            "router-http": ["--target", "router", "--transport", "http", "--url", s.router_url],
            "router-grpc": ["--target", "router", "--transport", "grpc", "--url", s.router_grpc],
            "router-ws": ["--target", "router", "--transport", "ws", "--url", s.router_url],
            "router-grpc-stream": ["--target", "router", "--transport", "grpc-stream", "--url",
                                   s.router_grpc],
            # issue 12's third-party client protocols, next to the native API
            "router-openpi": ["--target", "router", "--transport", "openpi", "--url",
                              s.router_url],
            "router-kserve-http": ["--target", "router", "--transport", "kserve-http", "--url",
                                   s.router_url],
            "router-kserve-grpc": ["--target", "router", "--transport", "kserve-grpc", "--url",
                                   s.router_grpc],
        }[path]

    def paths(self) -> list[str]:
        """What capacity is searched for: direct Triton and the router's unary transports."""
        return ["direct-grpc", "router-http"] + (["router-grpc"] if self.grpc_router else [])

    def all_paths(self) -> list[str]:
        """What the latency comparison runs: also the router's session transports."""
        sessions = ["router-ws"] + (["router-grpc-stream"] if self.grpc_router else [])
        clients = ["router-openpi", "router-kserve-http"] + (
            ["router-kserve-grpc"] if self.grpc_router else [])
        return [*self.paths(), *sessions, *clients]

    def flags(self, out_dir: Path, plot: bool = True) -> list[str]:
        return common_flags(self.stack.manifest, out_dir, plot)


def warmup(b: Bench) -> None:
    """A few seconds on each path first: model stubs, channels and caches warm, and a broken
    stack fails here rather than as a capacity of zero."""
    for path in b.all_paths():
        d = b.out / "warmup" / path
        b.run(f"warmup-{path}", ["run", str(b.scenario), *b.target_flags(path), "--robots", "2",
                                 "--duration", "5", "--ramp", "1", *b.flags(d, plot=False)], d)
    settle(b.timing.settle_s)


def capacity(b: Bench, paths: tuple[str, ...] | None = None,
             folder: str = "capacity") -> dict[str, Any]:
    t = b.timing
    out: dict[str, Any] = {}
    for path in paths or b.paths():
        d = b.out / folder / path
        # The router's counters per step: shed reasons are what a failing step needs explained.
        metrics = (["--metrics-url", f"{b.stack.router_url}/metrics"]
                   if path.startswith("router-") else [])
        b.run(f"capacity-{path}", [
            "capacity", str(b.scenario), *b.target_flags(path), *metrics,
            "--start", str(t.capacity_start), "--max-robots", str(t.capacity_max),
            "--resolution", str(t.capacity_resolution),
            "--step-duration", str(t.step_s), "--step-ramp", str(t.step_ramp_s),
            "--min-step-requests", str(t.min_step_requests),
            *b.flags(d, plot=False)], d)
        doc = load_json(d / "capacity.json")
        robots = doc["capacity_robots"] or 0  # None: not even the smallest fleet passed
        hz = doc["scenario"]["control_hz"]
        out[path] = {
            "robots": robots,
            "req_per_s": robots * hz,
            "control_hz": hz,
            "resolution_robots": doc["resolution"],
            "step_s": t.step_s,
            "min_step_requests": t.min_step_requests,
            "steps": [{k: v for k, v in s.items() if k != "result_dir"} | {
                "result_dir": str(Path(s["result_dir"]).resolve().relative_to(b.out))}
                for s in doc["steps"]],
            "capacity_json": str((d / "capacity.json").relative_to(b.out)),
        }
        settle(t.settle_s)
    return out


def overhead(b: Bench, robots: int, folder: str = "overhead") -> dict[str, Any]:
    """The same plan through each path, back to back, at `robots` x 50 Hz."""
    results, rows = [], []
    for path in b.all_paths():
        d = b.out / folder / path
        b.run(f"{folder}-{path}", ["run", str(b.scenario), *b.target_flags(path),
                                   "--robots", str(robots), *b.flags(d)], d)
        result = load_json(d / "result.json")
        results.append(result)
        rows.append(run_row(result, path, b.out, d))
        settle(b.timing.settle_s)
    table = overhead_table(results, reference=0)
    for row, t_row in zip(rows, table["rows"], strict=True):
        row["ratio_to_direct"] = t_row["ratio_to_reference"]
    return {"robots": robots, "rate_hz": rows[0]["offered_rate_hz"], "reference": "direct-grpc",
            "rows": rows}


def baseline(b: Bench) -> dict[str, Any]:
    """The hand-written proxy (both client modes) and the router at the same 500 req/s."""
    rows = []
    for mode in ("shared", "per-request"):
        d = b.out / "baseline" / f"baseline-{mode}"
        with b.stack.baseline_proxy(mode) as url:
            b.run(f"baseline-{mode}", ["run", str(b.scenario), "--target", "baseline",
                                       "--url", url, "--robots", str(BASELINE_ROBOTS),
                                       *b.flags(d)], d)
        rows.append(run_row(load_json(d / "result.json"), f"baseline proxy ({mode} httpx "
                            "client)", b.out, d))
        settle(b.timing.settle_s)
    d = b.out / "baseline" / "router-http"
    b.run("baseline-router-http", ["run", str(b.scenario), *b.target_flags("router-http"),
                                   "--robots", str(BASELINE_ROBOTS), *b.flags(d)], d)
    rows.append(run_row(load_json(d / "result.json"), "router (HTTP)", b.out, d))
    return {"robots": BASELINE_ROBOTS, "rows": rows}


def _hedges(result: dict[str, Any]) -> float | None:
    metrics = result.get("metrics_delta")
    if not metrics:
        return None
    return float(sum(s["delta"] for s in metrics["series"] if s["name"] == "router_hedges_total"))


def busiest_task(b: Bench, robots: int) -> str:
    """The task with the most requests in the straggler plan's measured window: with a small
    fleet (10 s episodes) a task may get few requests, and the straggler must be hit."""
    scenario = load_scenario(b.straggler_scenario, {"robots": robots})
    pool = observation_pool(scenario.obs_dim, scenario.seed, scenario.observations)
    plan = build_plan(scenario, len(pool))
    counts = Counter(plan.task[plan.scheduled_s >= scenario.ramp_s].tolist())
    return plan.tasks[counts.most_common(1)[0][0]]


def straggler(b: Bench, task: str | None, delay_ms: float, delay_prob: float,
              robots: int) -> dict[str, Any]:
    """One specialist slowed through its fault file; hedging off, then on (contract reload).
    `robots` is chosen by the caller to keep the router below its capacity: above it the runs
    measure overload (sheds, holds), not hedging."""
    task = task or busiest_task(b, robots)
    policy_model = f"policy_specialist_{task_id(task)}"
    metrics = f"{b.stack.router_url}/metrics"
    runs: dict[str, dict[str, Any]] = {}
    reloads = []
    try:
        # "reference": the same plan with no straggler at all, the p99 hedging can approach.
        for label, hedging in (("reference", False), ("off", False), ("on", True)):
            if label == "off":
                b.stack.set_fault(policy_model, delay_ms, delay_prob)
            reloads.append(b.stack.set_hedging(hedging))
            settle(b.timing.settle_s)
            d = b.out / "straggler" / f"hedging-{label}"
            b.run(f"straggler-hedging-{label}", [
                "run", str(b.straggler_scenario), *b.target_flags("router-http"),
                "--label", f"hedging-{label}", "--robots", str(robots),
                "--metrics-url", metrics, *b.flags(d)], d)
            runs[label] = load_json(d / "result.json")
    finally:
        b.stack.clear_faults()
        b.stack.set_hedging(False)
    reference = runs.pop("reference")
    cmp = straggler_comparison(runs["off"], runs["on"])
    sent = {k: int(r["run"]["planned_requests"]) for k, r in runs.items()}
    hedges = {k: _hedges(r) for k, r in runs.items()}
    dirs = {k: b.out / "straggler" / f"hedging-{k}" for k in runs}
    ref_p99 = reference["summary"]["overall"]["latency_ms"].get("p99")
    off_p99 = cmp["latency_ms_off"].get("p99")
    return {
        "robots": robots,
        "fault": {"policy_model": policy_model, "task": task, "delay_ms": delay_ms,
                  "delay_prob": delay_prob},
        "straggler_task": {k: task_breakdown(d, task) for k, d in dirs.items()},
        "hedge_delay_ms": b.stack.hedge_delay_ms(),
        "contract_versions": [r.get("version") for r in reloads],
        "comparison": cmp,
        "hedges": hedges,
        "hedges_per_request": {k: None if v is None else v / sent[k] for k, v in hedges.items()},
        "rows": {k: run_row(r, f"hedging {k}", b.out, dirs[k]) for k, r in runs.items()},
        "reference": run_row(reference, "no straggler (hedging off)", b.out,
                             b.out / "straggler" / "hedging-reference"),
        # Hedging cannot take p99 below the p99 with no straggler at all: the best on/off.
        "best_possible_ratio": ref_p99 / off_p99 if ref_p99 and off_p99 else None,
    }


def profile_router(b: Bench, robots: int, path: str = "router-http") -> dict[str, Any]:
    """py-spy on the router while it serves `robots` x 50 Hz over `path` (router-http or
    router-grpc), into profile/ (HTTP) or profile-grpc/."""
    pid = b.stack.router_pid
    if pid is None:
        raise RuntimeError("router not running")
    t = b.timing
    transport = path.removeprefix("router-")
    d = b.out / ("profile" if transport == "http" else f"profile-{transport}")
    load_dir = d / "load"
    duration = t.profile_s + t.ramp_s + 2.0
    proc = b.run.popen(f"profile-load-{transport}", [
        "run", str(b.scenario), *b.target_flags(path), "--robots", str(robots),
        "--duration", str(duration), "--ramp", str(t.ramp_s), *b.flags(load_dir)], d)
    try:
        settle(t.ramp_s + 1.0)  # sample the steady state, not the ramp
        raw = d / "router.collapsed.txt"
        argv = profile.record(pid, raw, t.profile_s)
    finally:
        rc = proc.wait()
    b.run.commands[-1]["exit_code"] = rc
    log_lines = profile.decision_log_lines(REPO / profile.ENGINE)
    summary = profile.summarise(profile.parse_collapsed(raw.read_text()), 100, t.profile_s,
                                log_lines=log_lines)
    summary |= {
        "command": " ".join(["py-spy", *argv[1:]]),
        "raw": str(raw.relative_to(b.out)),
        "load": run_row(load_json(load_dir / "result.json"), f"{path} under py-spy",
                        b.out, load_dir),
    }
    (d / "profile-summary.md").write_text(profile.format_markdown(summary) + "\n")
    return summary
