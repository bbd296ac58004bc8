"""The benchmark page's straggler section: hedging off vs on, next to the same plan with no
straggler at all (which bounds what hedging can reach)."""

from __future__ import annotations

from typing import Any

from loadtest.bench.doc_cost import latency_table
from loadtest.bench.fmt import missing as _missing
from loadtest.bench.fmt import num, pct


def task_rows(st: dict[str, Any]) -> list[str]:
    """How hard the straggler bit: its task's requests only."""
    t = st.get("straggler_task")
    if not t:
        return []
    off, on = t["off"], t["on"]
    name = f"`{off['task']}` requests"
    spec = st["fault"]["policy_model"].removeprefix("policy_")
    reached = {k: st["rows"][k]["routes"].get(spec, 0) for k in ("off", "on")}
    return [
        f"| {name} (measured window) | {off['requests']} | {on['requests']} |",
        f"| {name} answered by `{spec}` itself | {reached['off']} | {reached['on']} |",
        f"| {name}: fell back | {pct(off['fallback_share'])} | {pct(on['fallback_share'])} |",
        f"| {name}: answered `hold` | {pct(off['hold_share'])} | {pct(on['hold_share'])} |",
        f"| {name}: missed the budget | {pct(off['over_budget_share'])} | "
        f"{pct(on['over_budget_share'])} |",
        f"| {name}: p99 ms | {num(off['p99_ms'])} | {num(on['p99_ms'])} |",
    ]


def straggler_section(s: dict[str, Any]) -> list[str]:
    st = s.get("straggler")
    lines = ["", "## Straggler: hedging off vs on", ""]
    if not st:
        return [*lines, _missing(s, "straggler")]
    f, c = st["fault"], st["comparison"]
    up, hp = c["upstream_per_request"], st["hedges_per_request"]
    lines += [
        f"{st['robots']} robots x 50 Hz (half the router's capacity, kept within 2 to 10 "
        "robots: above capacity the runs would measure overload, not hedging). "
        f"`{f['policy_model']}` (the `{f['task']}` specialist) delays {pct(f['delay_prob'])} of "
        f"its executions by {f['delay_ms']:g} ms (its fault file). Fault-injected policies run "
        "two instances, yet requests sent just after a delayed call mostly wait for it "
        "(measured on direct Triton: docs/benchmarks/raw/race-fallback-20261204), and a run "
        "of timeouts opens the specialist's circuit: the `answered by ... itself` row says how "
        "much of its traffic it kept. Scenario `straggler` (declared tasks, 20 ms deadline, "
        "SLA 99% within 20 ms); the router's contract reloaded between the runs "
        f"(`routing.hedging.enabled`; hedge delay: {st.get('hedge_delay_ms')}).",
        "", *latency_table([r for r in (st.get("reference"), st["rows"]["off"],
                                        st["rows"]["on"]) if r], ratios=False), "",
        "| | hedging off | hedging on |", "|---|---:|---:|",
        f"| upstream calls per request | {num(up['off'], 4)} | {num(up['on'], 4)} |",
        f"| hedges per request (`router_hedges_total`) | {num(hp['off'], 4)} | "
        f"{num(hp['on'], 4)} |",
        f"| fallbacks | {st['rows']['off']['fallbacks']} | {st['rows']['on']['fallbacks']} |",
        *task_rows(st),
        "",
        f"p99 on/off: **{num(c['p99_ratio_on_over_off'], 3)}**, p99.9 on/off: "
        f"{num(c['p999_ratio_on_over_off'], 3)}; extra upstream requests per request: "
        f"**{pct(c['extra_upstream_per_request'], 2)}** (from "
        "`router_upstream_duration_seconds_count` scraped before and after each run).",
    ]
    lines += _reachable(st, c)
    lines += [f"Warning: {w}" for w in c.get("warnings", [])]
    return lines


def _reachable(st: dict[str, Any], c: dict[str, Any]) -> list[str]:
    """Whether halving was possible at all: hedging cannot take p99 below the p99 of the same
    plan with no straggler (the first run)."""
    best, ref = st.get("best_possible_ratio"), st.get("reference")
    if best is None or ref is None:
        return []
    verdict = ("so halving p99 is not reachable by any hedging on this host: the tail that is "
               "left is the router's and Triton's own, not the straggler's" if best > 0.5 else
               "so halving p99 was reachable")
    return ["", f"With no straggler at all (the same plan, first run), p99 is "
            f"{num(ref['latency_ms'].get('p99'))} ms, {num(best, 3)} of the hedging-off p99: "
            f"the best on/off ratio hedging could reach; {verdict}."]
