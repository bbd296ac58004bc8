"""`python -m loadtest.bench --out results/bench/<stamp> [--quick] [--doc docs/benchmarks.md]`.

Order: (optionally) wait for a quiet machine, start the stack, warm up, capacity of each path,
router vs direct at half the direct capacity (every transport), router CPU per request against
the floor proxy at 400 and 1,000 req/s, 1 vs 2 router workers, the py-spy profile at the
router's capacity, the straggler with hedging off/on. `summary.json` is rewritten after every
step, so a run that dies half-way still leaves what it measured. Exit 0 when every step ran
(whatever the targets say), 1 when one failed, 2 when another stack was already running.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import yaml

from loadtest.bench import cost, doc, steps, targets
from loadtest.bench.facts import busy_processes, load_average, machine_facts
from loadtest.bench.runs import LoadtestRunner, StepFailed, Timing, load_json
from loadtest.bench.stack import REPO, BenchStack

SCHEMA = "robot-policy-router/bench-summary/v1"
PROFILES = {"profile": "profile", "profile_grpc": "profile-grpc"}  # summary key -> folder


STEPS = ("capacity", "overhead", "cpu", "workers", "profile", "straggler")


def _steps(text: str) -> tuple[str, ...]:
    chosen = tuple(s.strip() for s in text.split(",") if s.strip())
    unknown = sorted(set(chosen) - set(STEPS))
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"unknown step(s) {', '.join(unknown) or '(none)'}; "
                                         f"choose from {', '.join(STEPS)}")
    return chosen


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m loadtest.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, help="default results/bench/<UTC stamp>")
    p.add_argument("--quick", action="store_true", help="seconds per step: a smoke test")
    p.add_argument("--doc", type=Path, help="write the Markdown page here (docs/benchmarks.md)")
    p.add_argument("--render", type=Path, metavar="SUMMARY_JSON",
                   help="only write --doc from an earlier run's summary.json")
    p.add_argument("--raw-copy", type=Path,
                   help="copy summary.json, capacity.json files and the profile summary here")
    p.add_argument("--no-grpc", action="store_true", help="skip the router's gRPC path")
    p.add_argument("--with-baseline", action="store_true",
                   help="also the hand-written httpx proxy at 500 req/s (issue 5's comparison)")
    p.add_argument("--no-redis", action="store_true", help="router with its embedded store")
    p.add_argument("--straggler-task", help="default: the task with most requests in the plan")
    p.add_argument("--straggler-delay-ms", type=float, default=100.0)
    p.add_argument("--straggler-prob", type=float, default=0.03,
                   help="share of the straggler's executions that are delayed")
    p.add_argument("--straggler-robots", type=int,
                   help="fleet for the straggler runs (default: half the router's capacity, "
                        "at most 10)")
    p.add_argument("--steps", type=_steps, default=STEPS,
                   help=f"comma-separated subset of {','.join(STEPS)} (default: all; the page "
                        "marks the others not measured). Without capacity, the straggler "
                        "runs at --straggler-robots (default 4)")
    p.add_argument("--wait-quiet-min", type=float, default=0.0,
                   help="first wait up to this long for no `python -m evaluation` and load1 < 1")
    p.add_argument("--allow-leftovers", action="store_true",
                   help="run even when another tritonserver or router is already running")
    return p


def leftovers() -> dict[str, int]:
    """Stack processes running before the benchmark starts its own: an aborted run's Triton
    (with its python-backend stubs) or router. They share the two cores with what is measured;
    the run of 2026-12-02 02:40 started beside 8 of them and measured direct capacity at 11
    robots; the two runs of the evening before, with none, measured 19 and 26."""
    counts = busy_processes(("tritonserver", "triton_python_backend_stub", "router_service"))
    return {name: n for name, n in counts.items() if n}


def wait_quiet(max_min: float, poll_s: float = 120.0, load_limit: float = 1.0) -> dict[str, Any]:
    start = time.monotonic()
    polls = []
    while True:
        load1 = load_average()[0]
        evals = busy_processes(("python -m evaluation",)).get("python -m evaluation", 0)
        polls.append({"utc": datetime.now(UTC).isoformat(timespec="seconds"), "load1": load1,
                      "evaluation_processes": evals})
        print(f"[bench] waiting for a quiet machine: load1 {load1}, evaluation processes "
              f"{evals}", file=sys.stderr, flush=True)
        quiet = evals == 0 and load1 < load_limit
        waited = time.monotonic() - start
        if quiet or waited >= max_min * 60:
            return {"waited_s": round(waited), "quiet": quiet, "polls": polls,
                    "rule": f"no `python -m evaluation` and load1 < {load_limit:g}, "
                            f"at most {max_min:g} min"}
        time.sleep(min(poll_s, max(1.0, max_min * 60 - waited)))


def write_summary(out: Path, summary: dict[str, Any]) -> None:
    summary["targets"] = targets.evaluate(summary)
    (out / "summary.json").write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))


def copy_raw(out: Path, dest: Path) -> None:
    """The small raw files that belong in the repository (records.jsonl stays out: too big)."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(out / "summary.json", dest / "summary.json")
    for cap in sorted((out / "capacity").glob("*/capacity.json")):
        shutil.copy2(cap, dest / f"capacity-{cap.parent.name}.json")
    for folder in PROFILES.values():
        for name in ("profile-summary.md", "profile-summary.json"):
            if (out / folder / name).exists():
                shutil.copy2(out / folder / name, dest / name.replace("profile", folder, 1))
    for extra in ("overhead", "overhead-light", "baseline", "straggler"):
        for res in sorted((out / extra).glob("*/result.json")):
            shutil.copy2(res, dest / f"{extra}-{res.parent.name}.result.json")


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path.resolve())


def run_bench(args: argparse.Namespace, argv: list[str]) -> int:
    found = leftovers()
    if found and not args.allow_leftovers:
        print(f"[bench] refusing to start: already running {found} (pgrep -f); stop them or "
              "pass --allow-leftovers (the page then lists them)", file=sys.stderr)
        return 2
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out: Path = (args.out or REPO / "results" / "bench" / stamp).resolve()
    out.mkdir(parents=True, exist_ok=True)
    timing = Timing.quick() if args.quick else Timing.full()
    summary: dict[str, Any] = {
        "schema": SCHEMA, "command": "python -m loadtest.bench " + shlex.join(argv),
        "out": _rel(out), "quick": args.quick, "timing": timing.__dict__,
        "started_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "wait": wait_quiet(args.wait_quiet_min) if args.wait_quiet_min > 0 else None,
        "steps": list(args.steps), "errors": [],
        "raw_copy": _rel(args.raw_copy) if args.raw_copy else None,
    }
    summary["machine"] = machine_facts()
    started = time.monotonic()
    stack = BenchStack(out / "stack", use_redis=not args.no_redis)
    runner = LoadtestRunner(out, summary.setdefault("commands", []))
    with stack:
        bench = steps.Bench(out, stack, timing, runner, grpc_router=not args.no_grpc)
        scenario = load_json_yaml(bench.scenario)
        summary["sla"] = scenario["sla"] | {"deadline_ms": scenario["deadline_ms"],
                                            "control_hz": scenario["control_hz"]}
        summary["stack"] = {
            "triton": "tritonserver 2.51 (nvidia-pytriton wheel), python backend on CPU, "
                      "fault-injectable repository from build/models/ci",
            "redis": stack.redis_url, "router_settings": router_settings(stack.router_env),
            "contract": _rel(stack.contract_path), "hedge_delay_ms": stack.hedge_delay_ms(),
            "scenario": _rel(bench.scenario), "straggler_scenario": _rel(bench.straggler_scenario),
        }

        def step(name: str, fn: Callable[[], Any]) -> Any:
            try:
                value = fn()
            except (StepFailed, OSError, RuntimeError, KeyError, ValueError) as err:
                traceback.print_exc()
                summary["errors"].append({"step": name, "error": f"{type(err).__name__}: {err}"})
                value = None
            if value is not None and name != "warmup":
                summary[name] = value
            write_summary(out, summary)
            return value

        chosen = set(args.steps)
        step("warmup", lambda: steps.warmup(bench))
        cap = (step("capacity", lambda: steps.capacity(bench)) or {}
               if "capacity" in chosen else {})
        direct = cap.get("direct-grpc", {}).get("robots") or 0
        router_cap = cap.get("router-http", {}).get("robots") or 0
        if direct and "overhead" in chosen:  # the point: half the direct capacity
            step("overhead", lambda: steps.overhead(bench, max(1, direct // 2)))
        if "cpu" in chosen:
            step("cpu", lambda: cost.cpu_per_request(bench))
        if "workers" in chosen:
            step("workers", lambda: cost.workers(bench, steps.capacity))
        if "profile" in chosen:
            # At the largest fleet the router sustained: the profile of a router at work.
            step("profile", lambda: steps.profile_router(bench, max(1, router_cap)))
            if bench.grpc_router:  # the gRPC path's misses need their own profile
                grpc_cap = cap.get("router-grpc", {}).get("robots") or 0
                step("profile_grpc", lambda: steps.profile_router(bench, max(1, grpc_cap),
                                                                   "router-grpc"))
        if args.with_baseline:
            step("baseline", lambda: steps.baseline(bench))
        # Half the router's capacity (2 to 10 robots, the scenario's fleet): above capacity the
        # comparison would measure overload, not hedging.
        s_robots = args.straggler_robots or (min(10, max(2, router_cap // 2)) if router_cap
                                             else 4)
        if "straggler" in chosen:
            step("straggler", lambda: steps.straggler(
                bench, args.straggler_task, args.straggler_delay_ms, args.straggler_prob,
                s_robots))
    summary["machine"] |= {"load_average_after": load_average(),
                           "other_processes_after": busy_processes()}
    summary["finished_utc"] = datetime.now(UTC).isoformat(timespec="seconds")
    summary["elapsed_s"] = round(time.monotonic() - started)
    for key, folder in PROFILES.items():
        if summary.get(key):
            prof = {k: v for k, v in summary[key].items() if k != "load"}
            (out / folder / "profile-summary.json").write_bytes(
                orjson.dumps(prof, option=orjson.OPT_INDENT_2))
    write_summary(out, summary)
    if args.raw_copy:
        copy_raw(out, args.raw_copy)
    if args.doc:
        args.doc.parent.mkdir(parents=True, exist_ok=True)
        args.doc.write_text(doc.render(load_json(out / "summary.json")))
    print(f"[bench] summary: {out / 'summary.json'}", file=sys.stderr)
    for t in summary["targets"]:
        print(f"  {t['name']:<52} {t['goal']:<28} {targets.verdict_word(t['met'])}")
    return 1 if summary["errors"] else 0


def load_json_yaml(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data


def router_settings(extra: dict[str, str]) -> dict[str, Any]:
    """The router's shedding settings in effect (its defaults unless the stack set them)."""
    from router_service.settings import RouterSettings

    keys = ("max_inflight", "max_queue_age_ms", "max_body_bytes")
    values = {k: RouterSettings.model_fields[k].default for k in keys}
    return values | {k: v for k, v in extra.items() if k.startswith("ROUTER_")}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    if args.render is not None:  # the page again from a finished run (no measurement)
        if args.doc is None:
            print("error: --render needs --doc", file=sys.stderr)
            return 1
        args.doc.write_text(doc.render(load_json(args.render)))
        return 0
    os.chdir(REPO)  # the loadtest subprocesses and relative paths are the repository's
    return run_bench(args, argv)
