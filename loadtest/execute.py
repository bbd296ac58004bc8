"""One complete run: plan, target, optional metrics scrape, open-loop run, result document."""

from __future__ import annotations

import asyncio
import os
import platform
import secrets
import sys
from collections.abc import Coroutine
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from loadtest import prom
from loadtest.observations import observation_pool
from loadtest.records import Record
from loadtest.report import build_result
from loadtest.runner import RunResult, gc_quiet, run_plan
from loadtest.scenario import Scenario
from loadtest.schedule import Plan, build_plan
from loadtest.targets import Target, TargetOptions, make_target

LoopKind = Literal["auto", "asyncio", "uvloop"]
T = TypeVar("T")


@dataclass(frozen=True)
class RunConfig:
    options: TargetOptions = field(default_factory=TargetOptions)
    metrics_url: str | None = None  # scraped before and after: counter deltas go in the result
    progress_every_s: float | None = 2.0
    loop: LoopKind = "auto"


def pick_loop(kind: LoopKind, transport: str) -> LoopKind:
    # grpc.aio is supported on the default asyncio loop; HTTP clients gain from uvloop.
    if kind != "auto":
        return kind
    if transport in ("grpc", "grpc-stream", "kserve-grpc"):
        return "asyncio"
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def run_coroutine(coro: Coroutine[Any, Any, T], loop: LoopKind) -> T:
    if loop == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(coro)
    return asyncio.run(coro)


async def _run(scenario: Scenario, plan: Plan, target: Target, cfg: RunConfig) -> RunResult:
    await target.start()
    try:
        await target.preflight()
        return await run_plan(
            plan=plan,
            target=target,
            max_outstanding=scenario.max_outstanding,
            drain_timeout_s=scenario.client_timeout_ms / 1000.0 + 2.0,
            progress_every_s=cfg.progress_every_s,
        )
    finally:
        await target.close()


def execute(scenario: Scenario, cfg: RunConfig) -> tuple[dict[str, Any], list[Record]]:
    pool = observation_pool(scenario.obs_dim, scenario.seed, scenario.observations)
    plan = build_plan(scenario, len(pool))
    options = cfg.options
    if options.run_id == "lt":  # fresh ids per run: router episode state must not carry over
        options = TargetOptions(
            options.url, options.api_key, options.manifest, f"lt{secrets.token_hex(3)}"
        )
    target = make_target(scenario, plan, pool, options)
    headers = {"authorization": f"Bearer {options.api_key}"} if options.api_key else None
    before = prom.scrape(cfg.metrics_url, headers) if cfg.metrics_url else None
    loop = pick_loop(cfg.loop, scenario.transport)
    with gc_quiet():
        result = run_coroutine(_run(scenario, plan, target, cfg), loop)
    metrics = None
    if cfg.metrics_url and before is not None:
        after = prom.scrape(cfg.metrics_url, headers)
        deltas = prom.diff_counters(before, after, prefix="router_")
        metrics = {
            "url": cfg.metrics_url,
            "upstream_requests": prom.sum_delta(deltas, "router_upstream_duration_seconds_count"),
            "router_requests": prom.sum_delta(deltas, "router_requests_total"),
            "series": [
                asdict(d) for d in deltas if d.delta != 0 and not d.name.endswith("_bucket")
            ],
        }
    run = {
        "target": scenario.target,
        "target_impl": target.name,
        "transport": scenario.transport,
        "url": getattr(target, "url", options.url),
        "run_id": options.run_id,
        "label": scenario.label,
        "started_utc": datetime.fromtimestamp(result.started_unix, UTC).isoformat(),
        "elapsed_s": result.elapsed_s,
        "planned_requests": len(plan),
        # Answered (any status), ramp included: what a server's CPU over the run is divided by.
        "completed": sum(1 for r in result.records if r.done_s is not None),
        "unfinished_at_drain": result.unfinished,
        "event_loop": loop,
        "generator": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "argv": sys.argv,
        },
    }
    return build_result(scenario, run, result.records, metrics), result.records
