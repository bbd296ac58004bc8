"""Results on disk: `result.json` (config + run info + summary), `records.jsonl` (every request,
raw) and `latency.png`. The summary is always recomputable from the raw records
(`python -m loadtest report DIR`), so nothing in it has to be taken on trust.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from loadtest.records import Record, columns, read_records, write_records
from loadtest.scenario import SLA, Scenario
from loadtest.stats import summarize

SCHEMA = "robot-policy-router/loadtest-result/v1"
RESULT_FILE = "result.json"
RECORDS_FILE = "records.jsonl"
PLOT_FILE = "latency.png"


def summarize_records(
    scenario: Scenario, records: list[Record], sla: SLA | None = None
) -> dict[str, Any]:
    """Summary over the measured window: requests scheduled after the ramp, before the end."""
    sla = sla or scenario.sla
    cols = columns(records)
    summary = summarize(cols, sla, scenario.ramp_s, scenario.duration_s, scenario.deadline_ms)
    measured = [r for r in records if r.scheduled_s >= scenario.ramp_s]
    summary["hidden_task_share_sent"] = (
        sum(r.hidden for r in measured) / len(measured) if measured else None
    )
    summary["sla"] = sla.model_dump()
    return summary


def build_result(
    scenario: Scenario,
    run: dict[str, Any],
    records: list[Record],
    metrics_delta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "scenario": scenario.model_dump(mode="json"),
        "run": run,
        "summary": summarize_records(scenario, records),
        "metrics_delta": metrics_delta,
        "records_file": RECORDS_FILE,
    }


def write_result(out_dir: Path, result: dict[str, Any], records: list[Record], plot: bool) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    write_records(out_dir / RECORDS_FILE, records)
    (out_dir / RESULT_FILE).write_bytes(
        orjson.dumps(result, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
    )
    if plot:
        from loadtest.plot import plot_latency  # matplotlib import is slow: only when plotting

        scenario = Scenario.model_validate(result["scenario"])
        run = result.get("run", {})
        title = (
            f"{scenario.name} -> {run.get('target', scenario.target)}/"
            f"{run.get('transport', scenario.transport)}: {scenario.robots} robots x "
            f"{scenario.control_hz:g} Hz" + (f" [{scenario.label}]" if scenario.label else "")
        )
        plot_latency(columns(records), scenario.sla, out_dir / PLOT_FILE, title, scenario.ramp_s)


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2%}"


def result_path(path: Path) -> Path:
    return path / RESULT_FILE if path.is_dir() else path


def load_result(path: Path) -> tuple[dict[str, Any], Scenario, list[Record]]:
    """Read a result (directory or result.json) and its raw records."""
    file = result_path(path)
    result: dict[str, Any] = orjson.loads(file.read_bytes())
    scenario = Scenario.model_validate(result["scenario"])
    records = read_records(file.parent / result.get("records_file", RECORDS_FILE))
    return result, scenario, records


def passed(result: dict[str, Any]) -> bool:
    return bool(result["summary"]["overall"]["verdict"]["pass"])


def format_summary(result: dict[str, Any]) -> str:
    """Human-readable table: one row per route plus the overall row and the verdict."""
    s = result["summary"]
    sla = s["sla"]
    header = (
        f"{'route':<32}{'requests':>9}{'ok':>8}{'rate/s':>9}{'p50':>8}{'p90':>8}{'p99':>8}"
        f"{'p99.9':>8}{'max':>8}{'in budget':>11}"
    )
    lines = [header, "-" * len(header)]
    rows = [*s["routes"].items(), ("OVERALL", s["overall"])]
    for name, g in rows:
        lat = g["latency_ms"]
        lines.append(
            f"{name:<32}{g['requests']:>9}{g['ok']:>8}{cell(g['achieved_rate_hz'], 9, 1)}"
            + "".join(cell(lat[k], 8, 2) for k in ("p50", "p90", "p99", "p99.9", "max"))
            + cell(g["fraction_within_budget"], 11, 5)
        )
    o = s["overall"]
    lag = s["generator_lag"]
    lines += [
        f"latency (ms) from scheduled send; percentiles: {s['percentile_method']}",
        f"errors by kind: {o['errors_by_kind'] or 'none'}; fallbacks: {o['fallbacks']}",
        f"hold share {_share(o.get('hold_share'))}, shed share {_share(o.get('shed_share'))}, "
        f"late but flagged deadline_met: {o.get('late_but_flagged_met', 'n/a')}",
        f"generator lag p99 {cell(lag['p99_ms'], 0, 2).strip()} ms"
        + (
            f"  ** generator sent late (p99 > {lag['late_threshold_ms']:g} ms): latencies include "
            "client-side delay **"
            if lag["late"]
            else ""
        ),
        f"SLA {sla['quantile_within_budget']:g} within {sla['budget_ms']:g} ms: "
        f"{'PASS' if o['verdict']['pass'] else 'FAIL'} ({o['verdict']['reason']})",
    ]
    return "\n".join(lines)


def cell(value: float | None, width: int, digits: int) -> str:
    """Right-aligned table cell that always keeps one space before it, however wide the value."""
    text = "-" if value is None else f"{value:.{digits}f}"
    return " " + text.rjust(width - 1)
