"""The Markdown benchmark page, rendered from one run's `summary.json` and nothing else.

Every number on the page is read from the summary, so the page and the raw results cannot
disagree; a section whose step failed says so instead of showing numbers from elsewhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loadtest.bench.doc_cost import (
    PATH_NAMES,
    cpu_section,
    honesty_section,
    latency_table,
    workers_section,
)
from loadtest.bench.doc_straggler import straggler_section
from loadtest.bench.fmt import missing as _missing
from loadtest.bench.fmt import num, pct
from loadtest.bench.profile import format_markdown
from loadtest.bench.targets import verdict_word

REPO = Path(__file__).resolve().parents[2]


def _measured(t: dict[str, Any]) -> str:
    m = t["measured"]
    if t["unit"] == "count":
        return "-" if m is None else f"{m:,.0f}"
    return pct(m) if t["unit"] == "share" else ("-" if m is None else f"{m:.2f}x")


def header(s: dict[str, Any]) -> list[str]:
    m = s["machine"]
    sla = s["sla"]
    lines = ["# Benchmarks: the router against direct Triton", ""]
    if s.get("quick"):
        lines += ["> **Smoke run (`--quick`)**: every step was shortened to seconds. These numbers "
                  "check the pipeline, they are not a benchmark.", ""]
    lines += [
        f"Run on **{m['date_utc'][:10]}** ({m['date_utc']}), generated from that run's "
        "`summary.json` by `loadtest/bench/doc.py`: every number on this page comes from that "
        "one run. Rerun the command to refresh it; do not edit the numbers by hand.",
        "",
        "```bash",
        s["command"],
        "```",
        "",
        f"SLA used throughout (the shipped default scenario): **{sla['quantile_within_budget']:g}"
        f" of requests answered OK within {sla['budget_ms']:g} ms** of their scheduled send "
        f"time (open loop, latency from the schedule; errors, sheds and `hold` answers count as "
        f"misses), robots at {sla['control_hz']:g} Hz with a {sla['deadline_ms']:g} ms deadline, "
        "every task declared (so the router sends each request to `specialist_<task>`, the "
        "ensemble the direct path calls). Capacity is in robots x "
        f"{sla['control_hz']:g} Hz = requests per second.",
        "",
        "## Machine",
        "",
        "| fact | value |",
        "|---|---|",
        f"| CPU | {m.get('cpu_model')} ({m.get('nproc')} cores visible, "
        f"{m.get('sched_affinity_cpus')} usable) |",
        f"| memory | {m.get('memory_gib')} GiB |",
        f"| kernel, Python | {m.get('kernel')}, {m.get('python')} |",
        f"| git commit | `{m.get('git_commit')}`"
        + (" (with uncommitted changes)" if m.get("git_dirty") else "") + " |",
        f"| load average before (1/5/15 min) | {m.get('load_average_before')} |",
        f"| load average after | {m.get('load_average_after')} |",
        f"| other processes before (pgrep -f) | {m.get('other_processes_before')} |",
        "",
        "Generator, router, Triton (python backend, CPU) and Redis all share these cores: "
        "each path's numbers include the load generator's own CPU use, and that use differs by "
        "transport (the HTTP generator, httpx, costs more CPU per request than the gRPC one, "
        "so an HTTP path competes with a heavier client than a gRPC path does).",
    ]
    wait = s.get("wait")
    if wait:
        state = ("quiet" if wait["quiet"] else
                 "**not quiet** (gave up waiting; the load above was present during the run)")
        lines += ["", f"Waited {wait['waited_s'] / 60:.1f} min for a quiet machine: {state}."]
    return lines


def targets_section(s: dict[str, Any]) -> list[str]:
    lines = ["", "## Targets (issue 9)", "", "| target | goal | measured | verdict |",
             "|---|---|---:|---|"]
    for t in s.get("targets", []):
        name = t["name"] if t["primary"] else f"{t['name']} (secondary)"
        lines.append(f"| {name} | {t['goal']} | {_measured(t)} | "
                     f"{'**' + verdict_word(t['met']) + '**' if t['met'] is not True else 'met'}"
                     " |")
    missed = [t["name"] for t in s.get("targets", []) if t["met"] is False]
    unmeasured = [t["name"] for t in s.get("targets", []) if t["met"] is None]
    lines.append("")
    lines.append("Missed in this run: " + ", ".join(missed) + "." if missed
                 else "No measured target was missed in this run.")
    if unmeasured:
        lines.append("Not measured: " + ", ".join(unmeasured) + ".")
    return lines


def capacity_section(s: dict[str, Any]) -> list[str]:
    cap = s.get("capacity")
    lines = ["", "## Capacity", ""]
    if not cap:
        return [*lines, _missing(s, "capacity")]
    direct = (cap.get("direct-grpc") or {}).get("req_per_s")
    lines += ["| path | robots x 50 Hz | requests/s | share of direct |", "|---|---:|---:|---:|"]
    for path, c in cap.items():
        share = c["req_per_s"] / direct if direct else None
        lines.append(f"| {PATH_NAMES.get(path, path)} | {c['robots']} | "
                     f"{num(c['req_per_s'], 0)} | {pct(share)} |")
    first = next(iter(cap.values()))
    least = first.get("min_step_requests")
    longer = (f", longer for small fleets so that each has at least {least:,} requests (at "
              "99.9%, 750 requests would tolerate no late answer at all)" if least else "")
    lines += ["", f"Search: fleet doubled from the start until a step failed, then bisected to "
              f"{first['resolution_robots']} robot(s); each step a fresh {first['step_s']:g} s "
              f"run (ramp excluded){longer}. Short steps are noisy near the knee: the steps are "
              "below.", ""]
    for path, c in cap.items():
        lines += [f"<details><summary>{PATH_NAMES.get(path, path)}: steps</summary>", "",
                  "| robots | offered/s | ok/s | p50 | p99 | p99.9 | within budget | errors "
                  "| generator lag p99 | verdict |", "|---:|---:|---:|---:|---:|---:|---:|---:|"
                  "---:|---|"]
        for st in sorted(c["steps"], key=lambda x: x["robots"]):
            lines.append(
                f"| {st['robots']} | {num(st['offered_rate_hz'], 0)} | "
                f"{num(st['achieved_rate_hz'], 0)} | {num(st['p50_ms'])} | {num(st['p99_ms'])} |"
                f" {num(st['p99.9_ms'])} | {pct(st['fraction_within_budget'], 2)} | "
                f"{_errors_cell(st)} | {num(st['generator_lag_p99_ms'])}"
                f"{' (late)' if st['generator_late'] else ''} | "
                f"{'PASS' if st['pass'] else 'FAIL'} |")
        lines += ["", "</details>", ""]
    return lines


def _errors_cell(step: dict[str, Any]) -> str:
    """A capacity step's errors, with the router's shed reasons where they were scraped."""
    sheds = {reason: n for reason, n in (step.get("shed_by_reason") or {}).items() if n}
    if not sheds:
        return str(step["errors"])
    return f"{step['errors']} (shed: " + ", ".join(
        f"{reason} {n:.0f}" for reason, n in sorted(sheds.items())) + ")"


def _overhead(s: dict[str, Any], key: str, title: str, why: str) -> list[str]:
    o = s.get(key)
    lines = ["", f"## {title}", ""]
    if not o:
        return [*lines, _missing(s, key)]
    lines += [f"{o['robots']} robots x 50 Hz = {num(o['rate_hz'], 0)} requests/s offered{why}. "
              "The same plan (seed, schedule, observations) against each path, back to back. "
              "Latency in ms from the scheduled send time, nearest-rank percentiles over OK "
              "answers; \"within budget\" counts every request (errors, sheds and `hold` answers "
              "are misses). The `openpi` and `KServe v2` rows are the third-party client "
              "protocols (issue 12, docs/clients/): the same router and engine behind another "
              "wire format, next to the native API.", "", *latency_table(o["rows"], ratios=True)]
    routes = [r for r in o["rows"] if r["name"].startswith("router")]
    for r in routes:
        mix = ", ".join(f"`{k}` {v}" for k, v in sorted(r["routes"].items()))
        lines.append(f"\nRoutes answered, {PATH_NAMES.get(r['name'], r['name'])}: {mix}.")
    return lines


def overhead_section(s: dict[str, Any]) -> list[str]:
    return _overhead(s, "overhead", "Router vs direct Triton at half the direct capacity",
                     " (the issue's comparison point)")


def optional(section: Any, key: str) -> Any:
    """A section only for runs that measured it (older or narrower runs)."""
    def render(s: dict[str, Any]) -> list[str]:
        return list(section(s)) if key in s or any(e["step"] == key for e in s.get("errors", []))\
            else []
    return render


def overhead_light_section(s: dict[str, Any]) -> list[str]:
    if not s.get("overhead_light"):
        return []
    return _overhead(s, "overhead_light", "Router vs direct Triton at half the router's capacity",
                     " (not a target: the router's latency cost without overload)")


def baseline_section(s: dict[str, Any]) -> list[str]:
    b = s.get("baseline")
    lines = ["", "## The hand-written proxy at 500 requests/s", ""]
    if not b:
        return [*lines, _missing(s, "baseline")]
    lines += [f"{b['robots']} robots x 50 Hz = 500 requests/s: a plain FastAPI endpoint that "
              "forwards to Triton's HTTP endpoint with httpx (`loadtest/baseline_proxy.py`), "
              "once with one shared client and once with a new client per request, next to the "
              "router at the same rate.", "", *latency_table(b["rows"], ratios=False)]
    return lines


def profile_section(s: dict[str, Any]) -> list[str]:
    lines = ["", "## Where the time goes in the router", ""]
    for key, transport in (("profile", "HTTP"), ("profile_grpc", "gRPC (unary `Act`)")):
        p = s.get(key)
        if key == "profile_grpc" and not p and "profile_grpc" not in _failed_steps(s):
            continue  # a run from before the gRPC profile, or one without the gRPC router
        lines += ["", f"### {transport}", ""]
        if not p:
            lines.append(_missing(s, key))
            continue
        load = p["load"]
        lines += [
            f"`{_short(p['command'])}` on the router process while it served {load['robots']} "
            f"robots x 50 Hz over {transport} (p99 {num(load['latency_ms']['p99'])} ms during "
            "sampling). Samples are grouped by the innermost frame of a known library or router "
            "module; event-loop plumbing calling into them counts with them.",
            "", format_markdown(p)]
    return lines


def _failed_steps(s: dict[str, Any]) -> set[str]:
    return {e["step"] for e in s.get("errors", [])}


def footer(s: dict[str, Any]) -> list[str]:
    lines = ["", "## Raw results", "",
             f"All raw results of this run (every `result.json`, `records.jsonl`, "
             f"`capacity.json`, the collapsed py-spy stacks, process logs) were written under "
             f"`{s['out']}` (git-ignored)."]
    if s.get("raw_copy"):
        href = s["raw_copy"].removeprefix("docs/")  # the page itself lives in docs/
        lines.append(f"`summary.json`, the `capacity.json` files, each run's `result.json` and "
                     f"the profile summary are copied into [`{s['raw_copy']}`]({href}).")
    if s.get("errors"):
        lines += ["", "Steps that failed:", ""]
        lines += [f"- {e['step']}: {e['error'].splitlines()[0]}" for e in s["errors"]]
    lines += ["", "Commands run (each a `python -m loadtest` subprocess):", ""]
    lines += [f"- {c['step']}: `{_short(c['command'])}`" for c in s.get("commands", [])]
    return lines


def _short(text: str) -> str:
    """Paths relative to the repository root (the benchmark runs its commands from there)."""
    return text.replace(f"{REPO}/", "")


def render(summary: dict[str, Any]) -> str:
    parts = [header, targets_section, capacity_section, overhead_section,
             optional(overhead_light_section, "overhead_light"), cpu_section, workers_section,
             honesty_section, optional(baseline_section, "baseline"), straggler_section,
             profile_section, footer]
    lines: list[str] = []
    for part in parts:
        lines += part(summary)
    return "\n".join(lines).rstrip() + "\n"
