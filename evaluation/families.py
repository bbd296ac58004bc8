"""The families side by side: every generalist (each width, the transformer) and the specialists,
offline for each training seed, and the closed-loop arms the decision rests on, with the seed's
headline comparison and the router against the best single family, paired.

    python -m evaluation families --closed-loop results/eval/mt10-50 \\
        --artifacts build/models/mt10 build/models/mt10-seed1 --out docs/results/mt10/families.md

Offline cells come from each build's `offline_matrix.json` (in process, the calibration
configurations); closed-loop cells from the run's episodes (held-out configurations).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from evaluation.meta import read_meta
from evaluation.records import EpisodeResult, read_jsonl
from evaluation.report import EPISODES_FILE, META_FILE
from evaluation.stats import PairedComparison, paired_comparison, wilson_interval
from policies.card import ModelCard
from policies.jsonio import read_json

FAMILY_ARMS = ("generalist", "generalist_large", "specialist")  # single-family arms
ROUTER_ARMS = ("router", "router_hidden", "router_large")


@dataclass(frozen=True)
class OfflineBuild:
    label: str  # "seed 0"
    cells: dict[tuple[str, str], tuple[int, int]]  # (task, policy) -> (successes, episodes)
    cards: dict[str, ModelCard]


def load_build(artifacts: Path) -> OfflineBuild:
    manifest = read_json(artifacts / "manifest.json")
    options = manifest.get("build_options", {})
    seed = options.get("train_seed")
    seed = options.get("seed", 0) if seed is None else seed
    rows = read_json(artifacts / "offline_matrix.json")["rows"]
    cards = {m["name"]: ModelCard.model_validate(read_json(artifacts / m["card"]))
             for m in manifest["models"]}
    return OfflineBuild(f"seed {seed}",
                        {(r["task"], r["policy"]): (int(r["successes"]), int(r["episodes"]))
                         for r in rows}, cards)


def generalist_columns(build: OfflineBuild) -> list[str]:
    """The generalists by size: MLP widths ascending, then the transformer."""
    names = [n for n, c in build.cards.items() if c.kind == "generalist"]
    return sorted(names, key=lambda n: (build.cards[n].parameter_count, n))


def _episodes_per_cell(build: OfflineBuild) -> int:
    return max((n for _k, n in build.cells.values()), default=0)


def _pct(k: int, n: int) -> str:
    return f"{k}/{n}" if n else "–"


def _rate(k: int, n: int) -> str:
    lo, hi = wilson_interval(k, n)
    return f"{k / n:.0%} [{lo:.0%}, {hi:.0%}]" if n else "–"


def _specialist(task: str) -> str:
    return "specialist_" + task.replace("-", "_")


def offline_section(builds: Sequence[OfflineBuild], tasks: Sequence[str]) -> list[str]:
    first = builds[0]
    columns = generalist_columns(first)
    head = [*columns, "its specialist"]
    lines = ["| model | " + " | ".join(head) + " |", "|---|" + "---|" * len(head)]
    lines.append("| parameters | " + " | ".join(
        [f"{first.cards[c].parameter_count:,}" for c in columns]
        + [f"{first.cards[_specialist(tasks[0])].parameter_count:,} each"]) + " |")
    lines.append("| ONNX batch-1 p50 ms | " + " | ".join(
        [f"{first.cards[c].latency.median_ms:.3f}" for c in columns]
        + [f"{first.cards[_specialist(tasks[0])].latency.median_ms:.3f}"]) + " |")
    lines += ["", f"Successes per task, {' / '.join(b.label for b in builds)}:", "",
              "| task | " + " | ".join(head) + " |", "|---|" + "---|" * len(head)]
    totals = {(b.label, c): [0, 0] for b in builds for c in [*columns, "specialist"]}
    for task in tasks:
        row = []
        for column in [*columns, "specialist"]:
            policy = _specialist(task) if column == "specialist" else column
            parts = []
            for b in builds:
                k, n = b.cells.get((task, policy), (0, 0))
                totals[b.label, column][0] += k
                totals[b.label, column][1] += n
                parts.append(_pct(k, n))
            row.append(" / ".join(parts))
        lines.append(f"| {task} | " + " | ".join(row) + " |")
    lines.append("| **average** | " + " | ".join(
        " / ".join(f"{k / n:.1%}" if n else "–" for k, n in
                   (totals[b.label, c] for b in builds)) for c in [*columns, "specialist"])
                 + " |")
    return lines


def closed_loop_section(episodes: Sequence[EpisodeResult], tasks: Sequence[str],
                        arms: Sequence[str]) -> list[str]:
    lines = ["| task | " + " | ".join(arms) + " |", "|---|" + "---|" * len(arms)]
    for task in tasks:
        cells = []
        for arm in arms:
            mine = [e for e in episodes if e.arm == arm and e.task == task]
            cells.append(_rate(sum(e.success for e in mine), len(mine)))
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    averages = []
    for arm in arms:
        mine = [e for e in episodes if e.arm == arm]
        averages.append(_rate(sum(e.success for e in mine), len(mine)))
    lines.append("| **all tasks** | " + " | ".join(averages) + " |")
    return lines


def pooled(episodes: Sequence[EpisodeResult], arm: str) -> list[tuple[tuple[str, int], bool]]:
    """(task, configuration) -> success: every arm ran the same configurations of every task."""
    return [((e.task, e.config_index), e.success) for e in episodes if e.arm == arm]


def _comparison_line(name: str, other: str, c: PairedComparison) -> str:
    return (f"- {name} vs {other}: {c.diff:+.1%} (95% paired interval {c.lo:+.1%} to "
            f"{c.hi:+.1%}; {c.only_a} configurations only {name} solved, {c.only_b} only "
            f"{other}; exact McNemar p = {c.p_value:.3g}): **{c.verdict}**")


def comparisons(episodes: Sequence[EpisodeResult], arms: Sequence[str]) -> list[str]:
    lines = []
    families = [a for a in FAMILY_ARMS if a in arms]
    rates = {a: sum(s for _, s in pooled(episodes, a)) / max(len(pooled(episodes, a)), 1)
             for a in families}
    if "generalist" in rates and "specialist" in rates:
        lines.append(f"- The seed's comparison (it expected about 80% for the generalist against "
                     f"more than 95% for each specialist): generalist {rates['generalist']:.1%} "
                     f"on average, specialists {rates['specialist']:.1%}"
                     + (f", large generalist {rates['generalist_large']:.1%}"
                        if "generalist_large" in rates else "") + ".")
        lines.append(_comparison_line("specialist", "generalist", paired_comparison(
            pooled(episodes, "specialist"), pooled(episodes, "generalist"))))
    if not rates:
        return lines
    best = max(rates, key=lambda a: rates[a])
    lines.append(f"- Best single family on average: **{best}** ({rates[best]:.1%}).")
    for router in (a for a in ROUTER_ARMS if a in arms):
        lines.append(_comparison_line(router, best, paired_comparison(
            pooled(episodes, router), pooled(episodes, best))))
    return lines


def render(closed_loop: Path, builds: Sequence[OfflineBuild], command: str) -> str:
    meta = read_meta(closed_loop / META_FILE)
    episodes = read_jsonl(closed_loop / EPISODES_FILE)
    arms = [a.name for a in meta.arms]
    served = meta.served_latency_ms
    lines = [f"# Policy families on `{meta.panel}`", "", "Made by:", "", "```", command, "```",
             "", "## Offline, in process (each training seed)", "",
             f"{_episodes_per_cell(builds[0])} calibration configurations per cell (MT1 seed "
             "1000), ONNX Runtime in process; the width sweep and the second seed are measured "
             "here only.", "",
             *offline_section(builds, meta.tasks), "",
             "## Closed loop through the router (held-out configurations)", "",
             f"{meta.episodes_per_cell} episodes per cell on MT1 seed {meta.config_seed} "
             f"configurations, {meta.robots} robot processes at {meta.control_hz:g} Hz, "
             f"{meta.deadline_ms:g} ms deadline; success rate with its Wilson 95% interval.", "",
             *closed_loop_section(episodes, meta.tasks, arms), ""]
    if served:
        lines += ["Serving latency measured through Triton at the start of the run (batch 1, "
                  "sequential; its p90 is each route's latency prior in the derived contracts):",
                  "", "| route | p50 ms | p90 ms | p99 ms |", "|---|---|---|---|",
                  *(f"| {r} | {v['p50']:.2f} | {v['p90']:.2f} | {v['p99']:.2f} |"
                    for r, v in served.items()), ""]
    lines += ["## Comparisons (paired over every task's configurations)", "",
              *comparisons(episodes, arms), ""]
    return "\n".join(lines)


def write(closed_loop: Path, artifacts: Sequence[Path], out: Path, command: str) -> Path:
    builds = [load_build(a) for a in artifacts]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(closed_loop, builds, command))
    json_path = out.with_suffix(".json")
    json_path.write_text(json.dumps({
        b.label: {f"{t}|{p}": list(v) for (t, p), v in b.cells.items()} for b in builds},
        indent=1))
    return out
