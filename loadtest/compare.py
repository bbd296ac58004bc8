"""Comparisons between finished runs (pure functions over result documents).

- overhead: the same scenario against several targets (router, direct Triton, baseline proxy);
  latency percentiles of each as ratios to a reference run (direct Triton by default).
- straggler / hedging: the same straggler scenario with the router's hedging off and on; the p99
  ratio (on / off) and the extra upstream requests hedging cost, from the router's
  `router_upstream_duration_seconds_count` deltas scraped around each run.
"""

from __future__ import annotations

from typing import Any

from loadtest.report import cell

KEYS = ("p50", "p90", "p99", "p99.9", "max")


def _lat(result: dict[str, Any], key: str) -> float | None:
    value = result["summary"]["overall"]["latency_ms"].get(key)
    return None if value is None else float(value)


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def run_name(result: dict[str, Any]) -> str:
    run = result.get("run", {})
    label = run.get("label") or result["scenario"].get("label")
    name = f"{run.get('target', '?')}/{run.get('transport', '?')}"
    return f"{name} [{label}]" if label else name


def overhead_table(results: list[dict[str, Any]], reference: int = 0) -> dict[str, Any]:
    """Percentiles of every run and their ratio to `results[reference]`."""
    ref = results[reference]
    rows = []
    for res in results:
        o = res["summary"]["overall"]
        rows.append(
            {
                "run": run_name(res),
                "scenario": res["scenario"]["name"],
                "requests": o["requests"],
                "latency_ms": {k: _lat(res, k) for k in KEYS},
                "ratio_to_reference": {k: _ratio(_lat(res, k), _lat(ref, k)) for k in KEYS},
                "fraction_within_budget": o["fraction_within_budget"],
                "sla_pass": o["verdict"]["pass"],
            }
        )
    return {"reference": run_name(ref), "rows": rows}


def format_overhead(table: dict[str, Any]) -> str:
    head = f"{'run':<34}{'requests':>9}" + "".join(f"{k:>9}" for k in KEYS) + f"{'in budget':>11}"
    lines = [head, "-" * len(head)]
    for row in table["rows"]:
        lat, ratio = row["latency_ms"], row["ratio_to_reference"]
        lines.append(
            f"{row['run']:<34}{row['requests']:>9}"
            + "".join(cell(lat[k], 9, 2) for k in KEYS)
            + (
                ""
                if row["fraction_within_budget"] is None
                else f"{row['fraction_within_budget']:>11.5f}"
            )
        )
        lines.append(f"{'  x reference':<34}{'':>9}" + "".join(cell(ratio[k], 9, 2) for k in KEYS))
    lines.append(f"ratios are to: {table['reference']} (latency ms from scheduled send)")
    return "\n".join(lines)


def hold_share(result: dict[str, Any]) -> float:
    """Share of measured requests answered `hold`: no policy ran, so no upstream latency."""
    n = result["summary"]["overall"]["requests"]
    held = result["summary"]["routes"].get("hold", {}).get("requests", 0)
    return float(held) / n if n else 0.0


def route_mix_distance(a: dict[str, Any], b: dict[str, Any]) -> float:
    """Total variation distance between the two runs' shares of requests per route (0..1)."""

    def shares(res: dict[str, Any]) -> dict[str, float]:
        n = res["summary"]["overall"]["requests"] or 1
        return {r: g["requests"] / n for r, g in res["summary"]["routes"].items()}

    sa, sb = shares(a), shares(b)
    return 0.5 * sum(abs(sa.get(r, 0.0) - sb.get(r, 0.0)) for r in set(sa) | set(sb))


def _upstream_per_request(result: dict[str, Any]) -> tuple[float | None, int]:
    metrics = result.get("metrics_delta") or {}
    sent = int(result["run"].get("planned_requests", 0))  # metrics count the ramp too
    up = metrics.get("upstream_requests")
    if up is None or sent == 0:
        return None, sent
    return float(up) / sent, sent


def straggler_comparison(off: dict[str, Any], on: dict[str, Any]) -> dict[str, Any]:
    """Hedging on vs off: p99 ratio (< 1 means hedging cut the tail) and the upstream cost."""
    up_off, n_off = _upstream_per_request(off)
    up_on, n_on = _upstream_per_request(on)
    warnings = []
    if off["scenario"]["name"] != on["scenario"]["name"]:
        warnings.append("runs come from different scenarios")
    if up_off is None or up_on is None:
        warnings.append("no router metrics delta in one run: pass --metrics-url to `run`")
    mix = route_mix_distance(off, on)
    if mix > 0.2:
        warnings.append(
            f"the route mix differs between the runs (total variation {mix:.2f}): the router "
            "chose other policies, so the ratio is not hedging alone"
        )
    for name, res in (("off", off), ("on", on)):
        if hold_share(res) > 0.05:  # e.g. open circuits left over from an earlier run
            warnings.append(
                f"{hold_share(res):.0%} of the '{name}' run was answered `hold`: its latencies "
                "are not upstream latencies, so the ratio says little about hedging"
            )
    extra = None if up_off is None or up_on is None else up_on - up_off
    m_off = (off.get("metrics_delta") or {}).get("upstream_requests")
    m_on = (on.get("metrics_delta") or {}).get("upstream_requests")
    return {
        "off": run_name(off),
        "on": run_name(on),
        "latency_ms_off": {k: _lat(off, k) for k in KEYS},
        "latency_ms_on": {k: _lat(on, k) for k in KEYS},
        "p99_ratio_on_over_off": _ratio(_lat(on, "p99"), _lat(off, "p99")),
        "p999_ratio_on_over_off": _ratio(_lat(on, "p99.9"), _lat(off, "p99.9")),
        "hold_share": {"off": hold_share(off), "on": hold_share(on)},
        "route_mix_distance": route_mix_distance(off, on),
        "fraction_within_budget": {
            "off": off["summary"]["overall"]["fraction_within_budget"],
            "on": on["summary"]["overall"]["fraction_within_budget"],
        },
        "upstream_requests": {"off": m_off, "on": m_on},
        "requests_sent": {"off": n_off, "on": n_on},
        "upstream_per_request": {"off": up_off, "on": up_on},
        # hedges per client request: what hedging costs Triton, normalised for run length
        "extra_upstream_per_request": extra,
        "extra_upstream_requests": None if extra is None else extra * n_on,
        "warnings": warnings,
    }


def format_straggler(cmp: dict[str, Any]) -> str:
    def f(x: float | None, d: int = 2) -> str:
        return "-" if x is None else f"{x:.{d}f}"

    lat_off, lat_on = cmp["latency_ms_off"], cmp["latency_ms_on"]
    lines = [
        f"hedging off: {cmp['off']}",
        f"hedging on : {cmp['on']}",
        f"p99   off {f(lat_off['p99'])} ms  on {f(lat_on['p99'])} ms  "
        f"ratio on/off {f(cmp['p99_ratio_on_over_off'], 3)}",
        f"p99.9 off {f(lat_off['p99.9'])} ms  on {f(lat_on['p99.9'])} ms  "
        f"ratio on/off {f(cmp['p999_ratio_on_over_off'], 3)}",
        f"upstream per request off {f(cmp['upstream_per_request']['off'], 4)}  "
        f"on {f(cmp['upstream_per_request']['on'], 4)}  "
        f"extra per request {f(cmp['extra_upstream_per_request'], 4)}  "
        f"(~{f(cmp['extra_upstream_requests'], 0)} extra upstream requests in the 'on' run)",
    ]
    lines += [f"warning: {w}" for w in cmp["warnings"]]
    return "\n".join(lines)
