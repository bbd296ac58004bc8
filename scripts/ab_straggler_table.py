"""The markdown table of an `ab_straggler_batching.sh` output folder, one block per version-round.

Besides the bench's own numbers it counts, from each run's client records, how the straggling
requests ended: won by a hedge, answered after a timed-out primary, or held.
Usage: .venv/bin/python scripts/ab_straggler_table.py results/ab-straggler3
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

HEADER = ("| version-round | run | p50 ms | p99 ms | p99.9 ms | within 20 ms | upstream/request "
          "| hedges/request | hedge wins | timeout then generalist | timeout then hold "
          "| p99 on/off |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")


def endings(records: Path) -> Counter[str]:
    """How requests that did not take their first route ended (client records)."""
    out: Counter[str] = Counter()
    if not records.exists():
        return out
    for line in records.read_text().splitlines():
        rec = json.loads(line)
        if rec.get("fallback") == "hedge":
            out["hedge"] += 1
        elif rec.get("fallback") == "timeout":
            out["hold" if rec.get("route") == "hold" else "generalist"] += 1
    return out


def block(name: str, summary: dict[str, Any], run_dir: Path) -> list[str]:
    s = summary["straggler"]
    comp = s["comparison"]

    def row(label: str, r: dict[str, Any], key: str | None) -> str:
        lat = r["latency_ms"]
        cells = [name, label, f"{lat['p50']:.2f}", f"{lat['p99']:.2f}", f"{lat['p99.9']:.2f}",
                 f"{100 * r['fraction_within_budget']:.2f}%"]
        if key is None:
            cells += ["-"] * 5 + [""]
        else:
            ends = endings(run_dir / "straggler" / f"hedging-{key}" / "records.jsonl")
            cells += [f"{comp['upstream_per_request'][key]:.4f}",
                      f"{s['hedges_per_request'][key] or 0:.4f}",
                      str(ends["hedge"]), str(ends["generalist"]), str(ends["hold"]),
                      f"{comp['p99_ratio_on_over_off']:.2f}" if key == "on" else ""]
        return "| " + " | ".join(cells) + " |"

    return [row("no straggler", s["reference"], None),
            row("hedging off", s["rows"]["off"], "off"),
            row("hedging on", s["rows"]["on"], "on")]


def main(out: Path) -> None:
    print(HEADER)
    for run_dir in sorted(p for p in out.iterdir() if (p / "summary.json").exists()):
        summary = json.loads((run_dir / "summary.json").read_text())
        if "straggler" not in summary:  # a run still going, or one that failed
            continue
        print("\n".join(block(run_dir.name, summary, run_dir)))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
