"""`python -m loadtest {run,report,compare,capacity,hedging}`.

Exit codes: 0 SLA met (every run), 2 SLA missed (any run), 1 usage or configuration error,
3 target not reachable/ready (preflight failed; nothing measured).
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

from loadtest.capacity import Step, format_steps, search_capacity, step_duration_s, step_row
from loadtest.cli_args import (
    DEFAULT_OUT,
    EXIT_PASS,
    EXIT_SLA_FAIL,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    build_parser,
)
from loadtest.compare import format_overhead, format_straggler, overhead_table, straggler_comparison
from loadtest.execute import RunConfig, execute
from loadtest.report import format_summary, load_result, passed, summarize_records, write_result
from loadtest.scenario import (
    SLA,
    TARGET_ALIASES,
    Scenario,
    ScenarioError,
    load_scenario,
    with_overrides,
)
from loadtest.targets import ManifestError, TargetOptions, TargetUnavailable


class UsageError(Exception):
    pass


def _targets(arg: str | None, scenario_target: str) -> list[str]:
    names = [t.strip() for t in (arg or scenario_target).split(",") if t.strip()]
    try:
        return [TARGET_ALIASES[t] for t in names]
    except KeyError as err:
        raise UsageError(
            f"unknown target {err.args[0]!r}; use router, direct or baseline"
        ) from None


def _urls(values: list[str], targets: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for v in values:
        key, sep, url = v.partition("=")
        if sep and "://" not in key:
            if key not in TARGET_ALIASES:
                raise UsageError(f"--url {v}: unknown target {key!r}")
            out[TARGET_ALIASES[key]] = url
        elif len(targets) == 1:
            out[targets[0]] = v
        else:
            raise UsageError("with several targets give --url TARGET=URL")
    return out


def _check_url(target: str, transport: str, url: str | None) -> None:
    """Catch a gRPC address given to an HTTP target (or the reverse) before any run starts."""
    if url is None:
        return
    has_scheme = "://" in url
    if transport in ("http", "ws", "openpi", "kserve-http") and not url.startswith(("http://", "https://")):
        raise UsageError(f"{target} over {transport} needs an http:// URL, got {url!r}")
    if transport in ("grpc", "grpc-stream", "kserve-grpc") and has_scheme:
        raise UsageError(f"{target} over grpc takes host:port, got {url!r}")


def _scenario(args: argparse.Namespace, **extra: Any) -> Scenario:
    keys = (
        "robots",
        "duration_s",
        "ramp_s",
        "seed",
        "observations",
        "label",
        "transport",
        "deadline_ms",
    )
    overrides = {k: getattr(args, k) for k in keys} | extra
    scenario = load_scenario(args.scenario, overrides)
    if args.budget_ms is not None:
        scenario = with_overrides(
            scenario, sla=scenario.sla.model_dump() | {"budget_ms": args.budget_ms}
        )
    return scenario


def _config(args: argparse.Namespace, scenario: Scenario, url: str | None) -> RunConfig:
    key = args.api_key or os.environ.get("ROUTER_API_KEY")
    if scenario.target == "router" and not key:
        raise UsageError(
            "the router needs a key: --api-key or ROUTER_API_KEY "
            "(make up serves the development key dev-robot-key)"
        )
    return RunConfig(
        options=TargetOptions(url=url, api_key=key, manifest=args.manifest),
        metrics_url=args.metrics_url,
        progress_every_s=None if args.quiet else 2.0,
        loop=args.loop,
    )


def _out_dir(args: argparse.Namespace, scenario: Scenario, multi: bool) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    name = f"{scenario.target}-{scenario.transport}" + (
        f"-{scenario.label}" if scenario.label else ""
    )
    if args.out is not None:
        out: Path = args.out
        return out / name if multi else out
    return DEFAULT_OUT / f"{stamp}-{scenario.name}-{name}"


def _one_run(
    args: argparse.Namespace, scenario: Scenario, url: str | None, out: Path
) -> dict[str, Any]:
    result, records = execute(scenario, _config(args, scenario, url))
    write_result(out, result, records, plot=not args.no_plot)
    print(f"\n== {scenario.name} -> {scenario.target}/{scenario.transport}  ({out})")
    print(format_summary(result))
    return result


def cmd_run(args: argparse.Namespace) -> int:
    base = _scenario(args)
    targets = _targets(args.target, base.target)
    urls = _urls(args.url, targets)
    for target in targets:
        _check_url(target, base.transport, urls.get(target))
        _config(args, with_overrides(base, target=target), None)  # key check before any run
    results = []
    for target in targets:
        scenario = with_overrides(base, target=target)
        out = _out_dir(args, scenario, multi=len(targets) > 1)
        results.append(_one_run(args, scenario, urls.get(target), out))
    if len(results) > 1:
        ref = next((i for i, t in enumerate(targets) if t == "direct-triton"), 0)
        table = overhead_table(results, reference=ref)
        print("\n" + format_overhead(table))
        parent = args.out or DEFAULT_OUT
        parent.mkdir(parents=True, exist_ok=True)
        (parent / "overhead.json").write_bytes(orjson.dumps(table, option=orjson.OPT_INDENT_2))
    return EXIT_PASS if all(passed(r) for r in results) else EXIT_SLA_FAIL


def cmd_capacity(args: argparse.Namespace) -> int:
    target = _targets(args.target, load_scenario(args.scenario).target)
    if len(target) != 1:
        raise UsageError("capacity searches one target at a time")
    base = _scenario(args, target=target[0], duration_s=args.step_duration, ramp_s=args.step_ramp)
    url = _urls(args.url, target).get(target[0])
    _check_url(target[0], base.transport, url)
    root = args.out or DEFAULT_OUT / (
        datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + f"-capacity-{base.name}-{base.target}"
    )

    def evaluate(robots: int) -> Step:
        scenario = with_overrides(base, robots=robots, duration_s=step_duration_s(
            robots, base.control_hz, base.duration_s, base.ramp_s, args.min_step_requests))
        out = root / f"robots-{robots:05d}"
        result = _one_run(args, scenario, url, out)
        return Step(robots, passed(result), step_row(robots, result, str(out)))

    start = args.start or base.robots
    resolution = args.resolution or max(1, start // 20)
    best, steps = search_capacity(evaluate, start, max(args.max_robots, start), resolution)
    print("\n" + format_steps(steps, best))
    doc = {
        "scenario": base.model_dump(mode="json"),
        "capacity_robots": best,
        "resolution": resolution,
        "steps": [s.row for s in steps],
    }
    root.mkdir(parents=True, exist_ok=True)
    (root / "capacity.json").write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    return EXIT_PASS if best else EXIT_SLA_FAIL


def cmd_report(args: argparse.Namespace) -> int:
    result, scenario, records = load_result(args.result)
    sla = scenario.sla
    if args.budget_ms is not None or args.quantile is not None:
        sla = SLA(
            quantile_within_budget=args.quantile or sla.quantile_within_budget,
            budget_ms=args.budget_ms or sla.budget_ms,
            hold_counts_as_miss=sla.hold_counts_as_miss,
        )
    result["summary"] = summarize_records(scenario, records, sla)
    if args.write:
        write_result(
            Path(args.result if args.result.is_dir() else args.result.parent),
            result,
            records,
            plot=True,
        )
    print(format_summary(result))
    return EXIT_PASS if passed(result) else EXIT_SLA_FAIL


def cmd_compare(args: argparse.Namespace) -> int:
    results = [load_result(p)[0] for p in args.results]
    if not 0 <= args.reference < len(results):
        raise UsageError("--reference out of range")
    table = overhead_table(results, reference=args.reference)
    print(format_overhead(table))
    if args.json:
        args.json.write_bytes(orjson.dumps(table, option=orjson.OPT_INDENT_2))
    return EXIT_PASS


def cmd_hedging(args: argparse.Namespace) -> int:
    cmp = straggler_comparison(load_result(args.off)[0], load_result(args.on)[0])
    print(format_straggler(cmp))
    if args.json:
        args.json.write_bytes(orjson.dumps(cmp, option=orjson.OPT_INDENT_2))
    return EXIT_PASS


COMMANDS = {
    "run": cmd_run,
    "capacity": cmd_capacity,
    "report": cmd_report,
    "compare": cmd_compare,
    "hedging": cmd_hedging,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (UsageError, ScenarioError, ManifestError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except (OSError, KeyError, ValueError) as err:  # unreadable result files and the like
        print(f"error: {type(err).__name__}: {err}", file=sys.stderr)
        return EXIT_USAGE
    except TargetUnavailable as err:
        print(f"target unavailable: {err}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except httpx.HTTPError as err:  # the metrics scrape around a run
        print(f"metrics endpoint unavailable: {err}", file=sys.stderr)
        return EXIT_UNAVAILABLE
