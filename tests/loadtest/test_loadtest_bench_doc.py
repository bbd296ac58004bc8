"""The benchmark page and target verdicts, from a constructed summary (no server, no run), and
the grouping of py-spy's collapsed stacks."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from loadtest.bench.doc import render
from loadtest.bench.profile import (
    EVENT_LOOP,
    THREADS,
    decision_log_lines,
    parse_collapsed,
    summarise,
)
from loadtest.bench.targets import evaluate

LAT = {"p50": 2.0, "p90": 3.0, "p99": 5.0, "p99.9": 8.0, "max": 9.0, "mean": 2.2}


def row(name: str, scale: float, **kw: Any) -> dict[str, Any]:
    base = {
        "name": name, "robots": 5, "control_hz": 50, "offered_rate_hz": 250.0,
        "achieved_rate_hz": 250.0, "requests": 12500, "ok": 12500, "errors": 0,
        "errors_by_kind": {}, "fallbacks": 0, "fraction_within_budget": 0.9995,
        "latency_ms": {k: v * scale for k, v in LAT.items()}, "sla_pass": True,
        "routes": {"specialist_reach_v3": 12500}, "generator_lag_p99_ms": 0.8,
        "generator_late": False, "result_dir": f"overhead/{name}",
    }
    return base | kw


def step(robots: int, passed: bool) -> dict[str, Any]:
    return {"robots": robots, "offered_rate_hz": robots * 50.0, "achieved_rate_hz": robots * 50.0,
            "p50_ms": 2.0, "p99_ms": 9.0 if passed else 40.0, "p99.9_ms": 12.0,
            "fraction_within_budget": 0.9999 if passed else 0.97, "errors": 0,
            "generator_lag_p99_ms": 1.0, "generator_late": not passed, "pass": passed,
            "result_dir": f"capacity/x/robots-{robots:05d}"}


def capacity(robots: int) -> dict[str, Any]:
    return {"robots": robots, "req_per_s": robots * 50.0, "control_hz": 50,
            "resolution_robots": 1, "step_s": 15, "steps": [step(robots, True),
                                                            step(robots + 1, False)],
            "capacity_json": "capacity/x/capacity.json"}


PROFILE_TEXT = "\n".join([
    "<module> (runpy.py:1);run (uvicorn/main.py:1);Runner.run (asyncio/runners.py:1) 30",
    "Thread._bootstrap (threading.py:1);Thread.run (threading.py:2) 5",
    "Starlette.__call__ (starlette/applications.py:1);act (router_service/http_api/act.py:3);"
    "ActEngine.act (router_service/engine.py:9);TritonUpstream.infer "
    "(router_service/upstream.py:4);InferInput.__init__ (tritonclient/grpc/_infer_input.py:1) 40",
    "Starlette.__call__ (starlette/applications.py:1);act (router_service/http_api/act.py:3);"
    "parse_body (router_service/http_api/schemas.py:2);BaseModel.model_validate_json "
    "(pydantic/main.py:1) 15",
    "Starlette.__call__ (starlette/applications.py:1);ActEngine.act (router_service/engine.py:9);"
    "DecisionLog.append (router_service/decision_log.py:5);dumps (json/__init__.py:1) 10",
    "not a stack line",
])


def summary() -> dict[str, Any]:
    stacks = parse_collapsed(PROFILE_TEXT)
    prof = summarise(stacks, 100, 10) | {
        "command": "py-spy record --pid 1 --nonblocking", "raw": "profile/router.collapsed.txt",
        "load": row("router-http under py-spy", 2.0, robots=3)}
    cmp = {
        "latency_ms_off": LAT, "latency_ms_on": LAT, "p99_ratio_on_over_off": 0.7,
        "p999_ratio_on_over_off": 0.6, "upstream_per_request": {"off": 1.0, "on": 1.03},
        "extra_upstream_per_request": 0.03, "warnings": ["the route mix differs"],
    }
    task_stats = {"task": "pick-place-v3", "requests": 900, "fallback_share": 0.1,
                  "hold_share": 0.0, "over_budget_share": 0.05, "p99_ms": 19.0}
    return {
        "command": "python -m loadtest.bench --out results/bench/X --doc docs/benchmarks.md",
        "out": "results/bench/X", "quick": False, "raw_copy": "docs/benchmarks/raw/X",
        "machine": {"date_utc": "2026-11-24T01:02:03+00:00", "nproc": 2,
                    "sched_affinity_cpus": 2, "cpu_model": "AMD EPYC", "memory_gib": 23.5,
                    "kernel": "6.1", "python": "3.11.7", "git_commit": "abc123",
                    "git_dirty": True, "load_average_before": [0.5, 0.7, 1.0],
                    "load_average_after": [1.9, 1.5, 1.2],
                    "other_processes_before": {"python -m evaluation": 0}},
        "wait": {"waited_s": 600, "quiet": True, "polls": []},
        "sla": {"quantile_within_budget": 0.999, "budget_ms": 20.0, "hold_counts_as_miss": True,
                "deadline_ms": 20.0, "control_hz": 50.0},
        "capacity": {"direct-grpc": capacity(10), "router-http": capacity(6),
                     "router-grpc": capacity(8)},
        # router HTTP: p50 1.4x (met), p99 2.5x (missed); router gRPC 1.2x / 1.5x
        "overhead": {"robots": 5, "rate_hz": 250.0, "reference": "direct-grpc", "rows": [
            row("direct-grpc", 1.0, ratio_to_direct=dict.fromkeys(LAT, 1.0)),
            row("router-http", 1.4, ratio_to_direct={"p50": 1.4, "p90": 1.5, "p99": 2.5,
                                                     "p99.9": 2.0, "max": 2.0}),
            row("router-grpc", 1.2, ratio_to_direct={"p50": 1.2, "p90": 1.2, "p99": 1.5,
                                                     "p99.9": 1.4, "max": 1.3}),
        ]},
        "profile": prof,
        "baseline": {"robots": 10, "rows": [
            row("baseline proxy (shared httpx client)", 30.0, fraction_within_budget=0.41,
                errors=300, errors_by_kind={"deadline": 300}),
            row("router (HTTP)", 2.0),
        ]},
        "straggler": {"robots": 3, "hedge_delay_ms": 8.0,
                      "fault": {"policy_model": "policy_specialist_pick_place_v3",
                                "task": "pick-place-v3", "delay_ms": 100.0, "delay_prob": 0.03},
                      "comparison": cmp, "hedges_per_request": {"off": 0.0, "on": 0.03},
                      "straggler_task": {"off": task_stats, "on": task_stats},
                      "rows": {"off": row("hedging off", 3.0), "on": row("hedging on", 2.0)},
                      "reference": row("no straggler (hedging off)", 1.8),
                      "best_possible_ratio": 0.6},
        # CPU per request: HTTP 1.2x the floor at 400/s (missed), gRPC 0.9x (met); at 1,000/s
        # the gRPC row is missing (not measured)
        "cpu": {"rates_robots": [8, 20], "rows": [
            row("floor", 1.0, robots=8, cpu_ms_per_request=0.8),
            # the gRPC transport alone: a reference, never a router run (its 7 late answers
            # are not the router's)
            row("grpc-floor", 0.5, robots=8, cpu_ms_per_request=0.4, late_but_flagged_met=7),
            row("router-http", 1.3, robots=8, cpu_ms_per_request=0.96, late_but_flagged_met=2,
                late_but_flagged_met_by_ms={"p50": 0.4, "max": 1.25},
                hold_share=0.001, shed_share=0.0),
            row("router-grpc", 1.1, robots=8, cpu_ms_per_request=0.72, late_but_flagged_met=0),
            row("floor", 1.0, robots=20, cpu_ms_per_request=0.7),
            row("router-http", 1.3, robots=20, cpu_ms_per_request=0.5, late_but_flagged_met=1),
        ]},
        "workers": {"capacity": {"router-http": capacity(9)},
                    "cpu": [row("router-http (2 workers)", 1.0, robots=8,
                                cpu_ms_per_request=1.1)]},
        "errors": [{"step": "overhead_light", "error": "StepFailed: exited 3\nmore"}],
        "commands": [{"step": "capacity-direct-grpc", "command": "python -m loadtest capacity x"}],
    }


def test_targets_are_judged_from_the_summary() -> None:
    verdicts = {t["name"]: t for t in evaluate(summary())}
    assert verdicts["router (HTTP) p50 vs direct"]["met"] is False  # 1.4 > 1.3
    assert verdicts["router (HTTP) p99 vs direct"]["met"] is False
    assert verdicts["router (gRPC) p50 vs direct"]["met"] is True  # 1.2 <= 1.2
    assert verdicts["router (gRPC) p99 vs direct"]["met"] is False  # 1.5 > 1.3
    assert verdicts["router (WebSocket) p50 vs direct"]["met"] is None  # not in this summary
    assert verdicts["router (HTTP) capacity vs direct"]["measured"] == 0.6
    assert verdicts["router (HTTP) capacity vs direct"]["met"] is False
    assert verdicts["router (gRPC) capacity vs direct"]["met"] is False  # 80% < 100%
    cpu_http = verdicts["router (HTTP) CPU/request at 400/s"]
    assert cpu_http["measured"] == 0.96 / 0.8 and cpu_http["met"] is False
    assert verdicts["router (gRPC) CPU/request at 400/s"]["met"] is True
    assert verdicts["router (HTTP) CPU/request at 1,000/s"]["met"] is True
    assert verdicts["router (gRPC) CPU/request at 1,000/s"]["met"] is None
    late = verdicts["answers late at the client but flagged deadline_met (all runs)"]
    assert late["measured"] == 3 and late["met"] is False
    assert verdicts["straggler: p99 hedging on / off"]["met"] is False  # 0.7 > 0.5
    assert verdicts["straggler: extra upstream requests per request"]["met"] is True


def test_missing_measurements_are_not_met() -> None:
    s = summary()
    del s["straggler"], s["overhead"], s["cpu"]
    verdicts = {t["name"]: t["met"] for t in evaluate(s)}
    assert verdicts["straggler: p99 hedging on / off"] is None
    assert verdicts["router (HTTP) p50 vs direct"] is None
    assert verdicts["router (gRPC) p50 vs direct"] is None
    assert verdicts["answers late at the client but flagged deadline_met (all runs)"] is None


def test_page_has_command_machine_tables_and_plain_verdicts() -> None:
    s = summary()
    s["targets"] = evaluate(s)
    page = render(s)
    assert page.startswith("# Benchmarks")
    assert "2026-11-24" in page and s["command"] in page
    assert "AMD EPYC" in page and "`abc123` (with uncommitted changes)" in page
    assert "[0.5, 0.7, 1.0]" in page and "[1.9, 1.5, 1.2]" in page
    assert "0.999 of requests answered OK within 20 ms" in page
    # capacity: robots, req/s, share of direct
    assert "| router (HTTP) | 6 | 300 | 60.0% |" in page
    # overhead ratios and a plainly stated miss
    assert "| &nbsp;&nbsp;x direct | | 1.40x | 1.50x | 2.50x |" in page
    assert "| router (HTTP) p99 vs direct | <= 1.5x direct p99 | 2.50x | **MISSED** |" in page
    assert "Missed in this run: router (HTTP) p50 vs direct, router (HTTP) p99 vs direct" in page
    # CPU per request against the floor, workers, honesty per run
    assert "| 400/s | router (HTTP) | 0.960 | 1.20x |" in page
    assert "| 400/s | gRPC transport alone: grpc.aio server, fixed answer | 0.400 | 0.50x |" in page
    assert "| cpu | gRPC transport alone" not in page
    assert "| router (HTTP) | 6 | 9 |" in page
    assert "| cpu | router (HTTP) | 8 | 2 | 0.40 / 1.25 | 0.80 | 0.10% | 0.00% |" in page
    # baseline fraction within budget, straggler numbers, profile groups, the failed step
    assert "41.00%" in page
    assert "p99 on/off: **0.700**" in page and "**3.00%**" in page
    assert "| no straggler (hedging off) |" in page
    assert "0.600 of the hedging-off p99" in page and "not reachable by any hedging" in page
    assert "Warning: the route mix differs" in page
    assert "answered by `specialist_pick_place_v3` itself | 0 | 0 |" in page
    assert "tritonclient/grpc (upstream call) | 40.0%" in page
    assert "overhead_light: StepFailed: exited 3" in page
    assert "docs/benchmarks/raw/X" in page


def test_quick_runs_are_marked_and_failed_steps_say_so() -> None:
    s = summary()
    s["quick"] = True
    s["errors"] = [{"step": "capacity", "error": "StepFailed: target unavailable"}]
    del s["capacity"]
    page = render(s | {"targets": evaluate(s)})
    assert "Smoke run (`--quick`)" in page
    assert "_Not measured: StepFailed: target unavailable_" in page


def test_render_does_not_modify_the_summary() -> None:
    s = summary()
    before = copy.deepcopy(s)
    render(s)
    assert s == before


def test_profile_groups_cut_the_bootstrap_and_use_the_innermost_known_frame() -> None:
    p = summarise(parse_collapsed(PROFILE_TEXT), rate_hz=100, duration_s=10)
    assert p["samples"] == 100
    assert p["busy_share_of_wall"] == 0.1
    self_share = {g["name"]: g["share"] for g in p["groups_self"]}
    assert self_share[EVENT_LOOP] == 0.30  # stack ends in the loop's runner: uvloop's C code
    assert self_share[THREADS] == 0.05
    assert self_share["tritonclient/grpc (upstream call)"] == 0.40
    assert self_share["JSON/pydantic parsing and encoding"] == 0.15
    assert self_share["decision log"] == 0.10  # json.dumps under the decision log counts there
    total = {g["name"]: g["share"] for g in p["groups_total"]}
    assert total["scoring, routing, forwarding"] == 0.50  # engine frames in two stacks
    assert p["top_self"][0]["name"].startswith("InferInput.__init__")
    assert all("router_service/" in r["name"] for r in p["top_total_router"])


def test_engine_lines_that_build_the_decision_log_entry_count_as_decision_log(
    tmp_path: Path,
) -> None:
    engine = tmp_path / "engine.py"
    engine.write_text(
        "def act(self):\n"
        "    route = 1\n"
        "    self.rt.decision_log.append({\n"
        "        'state': orjson.dumps(state),\n"
        "    })\n"
        "    return route\n"
    )
    lines = decision_log_lines(engine)
    assert lines == frozenset({3, 4, 5})
    text = (
        "ActEngine.act (router_service/engine.py:4) 7\n"
        "ActEngine.act (router_service/engine.py:2) 3\n"
    )
    p = summarise(parse_collapsed(text), rate_hz=100, duration_s=1, log_lines=lines)
    self_share = {g["name"]: g["share"] for g in p["groups_self"]}
    assert self_share == {"decision log": 0.7, "scoring, routing, forwarding": 0.3}
    assert p["top_self"][0]["name"] == "ActEngine.act (router_service/engine.py:4)"


def test_the_grpc_profile_has_its_own_section_and_a_failed_one_says_so() -> None:
    s = summary()
    assert "### gRPC" not in render(s)  # a run from before the gRPC profile: no empty section
    grpc = copy.deepcopy(s["profile"])
    grpc["load"] = row("router-grpc under py-spy", 2.0, robots=5)
    page = render(s | {"profile_grpc": grpc})
    http_at, grpc_at = page.index("### HTTP"), page.index("### gRPC (unary `Act`)")
    assert http_at < grpc_at
    assert "while it served 5 robots x 50 Hz over gRPC" in page[grpc_at:]
    failed = s | {"errors": [{"step": "profile_grpc", "error": "RuntimeError: no router"}]}
    assert "_Not measured: RuntimeError: no router_" in render(failed)


def test_a_capacity_step_names_the_routers_shed_reasons() -> None:
    s = summary()
    s["capacity"]["router-grpc"]["steps"][1] |= {
        "errors": 9, "shed_by_reason": {"queue_age": 7.0, "concurrency": 2.0, "inflight": 0.0}}
    s["targets"] = evaluate(s)
    page = render(s)
    assert "| 9 (shed: concurrency 2, queue_age 7) |" in page
