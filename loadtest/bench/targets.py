"""The issue's performance targets, judged from a benchmark summary (pure functions).

- router p50 <= 1.5x direct Triton p50 and p99 <= 2x direct p99, at half the direct capacity;
- capacity through the router >= 70% of direct Triton's;
- straggler: hedging on at least halves p99 for <= 5% extra upstream requests.
A target whose measurement is missing is reported as not measured (`met: None`), never as met.
"""

from __future__ import annotations

from typing import Any

P50_MAX_RATIO = 1.5
P99_MAX_RATIO = 2.0
CAPACITY_MIN_SHARE = 0.70
HEDGE_P99_MAX_RATIO = 0.5
HEDGE_MAX_EXTRA = 0.05

ROUTER_PATHS = {"router-http": "HTTP", "router-grpc": "gRPC"}


def _target(name: str, goal: str, measured: float | None, limit: float, at_most: bool,
            unit: str = "x", primary: bool = True) -> dict[str, Any]:
    met = None if measured is None else (measured <= limit if at_most else measured >= limit)
    return {"name": name, "goal": goal, "measured": measured, "unit": unit, "met": met,
            "primary": primary}


def _row(overhead: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((r for r in overhead.get("rows", []) if r["name"] == name), None)


def evaluate(summary: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    overhead = summary.get("overhead") or {}
    capacity = summary.get("capacity") or {}
    direct_cap = (capacity.get("direct-grpc") or {}).get("req_per_s")
    for path, transport in ROUTER_PATHS.items():
        primary = path == "router-http"  # robots call the router over HTTP by default
        row = _row(overhead, path)
        if row is not None or primary:
            ratio = (row or {}).get("ratio_to_direct") or {}
            out.append(_target(f"router ({transport}) p50 vs direct", "<= 1.5x direct p50",
                               ratio.get("p50"), P50_MAX_RATIO, True, primary=primary))
            out.append(_target(f"router ({transport}) p99 vs direct", "<= 2x direct p99",
                               ratio.get("p99"), P99_MAX_RATIO, True, primary=primary))
        cap = (capacity.get(path) or {}).get("req_per_s") if path in capacity else None
        if path in capacity or primary:
            share = None if cap is None or not direct_cap else cap / direct_cap
            out.append(_target(f"router ({transport}) capacity vs direct", ">= 70% of direct",
                               share, CAPACITY_MIN_SHARE, False, unit="share",
                               primary=primary))
    cmp = (summary.get("straggler") or {}).get("comparison") or {}
    out.append(_target("straggler: p99 hedging on / off", "<= 0.5 (p99 at least halved)",
                       cmp.get("p99_ratio_on_over_off"), HEDGE_P99_MAX_RATIO, True))
    out.append(_target("straggler: extra upstream requests per request", "<= 5%",
                       cmp.get("extra_upstream_per_request"), HEDGE_MAX_EXTRA, True,
                       unit="share"))
    return out


def verdict_word(met: bool | None) -> str:
    return {True: "met", False: "MISSED", None: "not measured"}[met]
