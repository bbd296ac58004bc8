"""The performance targets (issue 9), judged from a benchmark summary (pure functions).

- at half the direct capacity: router over HTTP p50 <= 1.3x and p99 <= 1.5x direct Triton;
  over gRPC and WebSocket p50 <= 1.2x and p99 <= 1.3x;
- capacity through the router (HTTP and gRPC) at least the direct unary path's;
- router CPU per request at most the floor proxy's, at 400 and at 1,000 requests/s;
- no answer late at the client yet flagged `deadline_met: true`, in any run;
- straggler: hedging on at least halves p99 for <= 5% extra upstream requests.
A target whose measurement is missing is reported as not measured (`met: None`), never as met.
"""

from __future__ import annotations

from typing import Any

CAPACITY_MIN_SHARE = 1.0
HEDGE_P99_MAX_RATIO = 0.5
HEDGE_MAX_EXTRA = 0.05
# path -> (transport name, p50 limit, p99 limit, primary)
LATENCY_TARGETS = {
    "router-http": ("HTTP", 1.3, 1.5, True),
    "router-grpc": ("gRPC", 1.2, 1.3, True),
    "router-ws": ("WebSocket", 1.2, 1.3, True),
}
CAPACITY_PATHS = {"router-http": "HTTP", "router-grpc": "gRPC"}
# CPU rows that are not a router: the floor proxy, and the gRPC transport alone
FLOOR, GRPC_FLOOR = "floor", "grpc-floor"
REFERENCE_ROWS = frozenset({FLOOR, GRPC_FLOOR})
CPU_PATHS = {"router-http": "HTTP", "router-grpc": "gRPC", "router-ws": "WebSocket",
             "router-grpc-stream": "gRPC stream"}


def _target(name: str, goal: str, measured: float | None, limit: float, at_most: bool,
            unit: str = "x", primary: bool = True) -> dict[str, Any]:
    met = None if measured is None else (measured <= limit if at_most else measured >= limit)
    return {"name": name, "goal": goal, "measured": measured, "unit": unit, "met": met,
            "primary": primary}


def _row(rows: list[dict[str, Any]], name: str, robots: int | None = None
         ) -> dict[str, Any] | None:
    return next((r for r in rows if r["name"] == name
                 and (robots is None or r["robots"] == robots)), None)


def _latency(summary: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    rows = (summary.get("overhead") or {}).get("rows", [])
    for path, (transport, p50, p99, primary) in LATENCY_TARGETS.items():
        ratio = (_row(rows, path) or {}).get("ratio_to_direct") or {}
        out.append(_target(f"router ({transport}) p50 vs direct", f"<= {p50:g}x direct p50",
                           ratio.get("p50"), p50, True, primary=primary))
        out.append(_target(f"router ({transport}) p99 vs direct", f"<= {p99:g}x direct p99",
                           ratio.get("p99"), p99, True, primary=primary))
    return out


def _capacity(summary: dict[str, Any]) -> list[dict[str, Any]]:
    capacity = summary.get("capacity") or {}
    direct = (capacity.get("direct-grpc") or {}).get("req_per_s")
    out = []
    for path, transport in CAPACITY_PATHS.items():
        cap = (capacity.get(path) or {}).get("req_per_s")
        share = None if cap is None or not direct else cap / direct
        out.append(_target(f"router ({transport}) capacity vs direct", ">= direct capacity",
                           share, CAPACITY_MIN_SHARE, False, unit="share"))
    return out


def _cpu(summary: dict[str, Any]) -> list[dict[str, Any]]:
    cpu = summary.get("cpu") or {}
    rows = cpu.get("rows", [])
    out = []
    for robots in cpu.get("rates_robots", []):
        floor = (_row(rows, FLOOR, robots) or {}).get("cpu_ms_per_request")
        for path, transport in CPU_PATHS.items():
            mine = (_row(rows, path, robots) or {}).get("cpu_ms_per_request")
            ratio = None if mine is None or not floor else mine / floor
            out.append(_target(f"router ({transport}) CPU/request at {robots * 50:,}/s",
                               "<= the floor proxy's", ratio, 1.0, True,
                               primary=path in ("router-http", "router-grpc")))
    return out


def _honesty(summary: dict[str, Any]) -> list[dict[str, Any]]:
    late = [r.get("late_but_flagged_met") for key in ("overhead", "cpu")
            for r in (summary.get(key) or {}).get("rows", [])
            if r["name"] not in REFERENCE_ROWS]
    late += [r.get("late_but_flagged_met")
             for r in ((summary.get("straggler") or {}).get("rows") or {}).values()]
    counted = [x for x in late if x is not None]
    total = float(sum(counted)) if counted else None
    return [_target("answers late at the client but flagged deadline_met (all runs)", "0",
                    total, 0.0, True, unit="count")]


def evaluate(summary: dict[str, Any]) -> list[dict[str, Any]]:
    cmp = (summary.get("straggler") or {}).get("comparison") or {}
    return [*_latency(summary), *_capacity(summary), *_cpu(summary), *_honesty(summary),
            _target("straggler: p99 hedging on / off", "<= 0.5 (p99 at least halved)",
                    cmp.get("p99_ratio_on_over_off"), HEDGE_P99_MAX_RATIO, True),
            _target("straggler: extra upstream requests per request", "<= 5%",
                    cmp.get("extra_upstream_per_request"), HEDGE_MAX_EXTRA, True,
                    unit="share")]


def verdict_word(met: bool | None) -> str:
    return {True: "met", False: "MISSED", None: "not measured"}[met]
