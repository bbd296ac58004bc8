"""Records and output files of `policies.robustness`: robustness.{json,csv,md}."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from policies.jsonio import write_json
from policies.perturb import PERTURBATIONS, Perturbation, PerturbSettings

Family = Literal["generalist", "specialist", "expert"]
CSV_COLUMNS = ("task", "family", "policy", "perturbation", "applicable", "episodes",
               "successes", "rate", "ci95_lo", "ci95_hi", "diff_vs_none", "diff_lo", "diff_hi",
               "mcnemar_p", "config_seed", "config_indices", "note")


class ConfigSet(BaseModel):
    seed: int  # MT1 benchmark seed of the held-out configurations
    indices: list[int]  # positions in that benchmark's task list


class PairedDrop(BaseModel):
    """A row against `none` for the same policy on the same configurations."""

    both: int
    only_perturbed: int
    only_none: int
    neither: int
    diff: float  # rate(perturbed) - rate(none): negative is a drop
    diff_ci95: tuple[float, float]  # Newcombe's paired interval
    mcnemar_p: float  # exact, two-sided


class RobustnessRow(BaseModel):
    task: str
    family: Family
    policy: str  # the ONNX model, or `expert`
    perturbation: Perturbation
    applicable: bool
    note: str = ""  # why a cell is n/a
    episodes: int
    successes: int
    rate: float | None
    ci95: tuple[float, float] | None  # Wilson
    configs: ConfigSet
    outcomes: list[bool]  # success per configuration, in `configs.indices` order
    versus_none: PairedDrop | None = None
    on_expert_solved: tuple[int, int] | None = None  # successes, configs the expert solved here


class OodPlacement(BaseModel):
    index: int  # configuration index
    before: list[float]  # the task's reset vector (object xyz [, goal xyz])
    after: list[float]


class TaskNote(BaseModel):
    """Exactly what the env perturbations did on one task."""

    task: str
    ood_part: str = ""  # object | goal: what was placed out of range
    ood_axes: list[str] = []
    ood_beyond_m: tuple[float, float] | None = None  # min, max distance outside the box
    ood_flipped_configs: int = 0  # configurations sent to the far side to stay solvable
    ood_goal_widened_configs: int = 0
    ood_placements: list[OodPlacement] = []
    mass_bodies: list[str] = []
    mass_before_kg: list[float] = []
    mass_after_kg: list[float] = []
    mass_na: str = ""


class RobustnessReport(BaseModel):
    panel: str
    artifacts: str
    created: str
    command: str
    wall_s: float
    episodes: int
    max_steps: int
    settings: PerturbSettings
    tasks: list[TaskNote]
    rows: list[RobustnessRow]


def describe(p: str, s: PerturbSettings) -> str:
    return {
        "none": "unperturbed reference (same configurations)",
        "obs_noise": f"N(0, {s.noise_std:g}²) on all 39 raw observation values (m on positions)",
        "action_delay": f"action applied {s.delay_steps} step(s) late; zeros before the first",
        "ood_placement": f"placement pushed {s.ood_margin:g} m to h + {s.ood_margin:g} m outside "
                         "the demos' box on each varying horizontal axis",
        "mass_x2": f"manipulated body's mass and inertia × {s.mass_scale:g}",
    }[p]


def _pct(rate: float | None) -> str:
    return "n/a" if rate is None else f"{100 * rate:.1f}%"


def _cell(r: RobustnessRow | None) -> str:
    if r is None or not r.applicable:
        return "–" if r is None else "n/a"
    text = f"{r.successes}/{r.episodes} ({_pct(r.rate)})"
    solved = r.on_expert_solved
    return text if solved is None or solved[1] == r.episodes else (
        f"{text}; {solved[0]}/{solved[1]} where the expert succeeds")


def _drop(r: RobustnessRow | None) -> str:
    if r is None or r.versus_none is None:
        return "–"
    v = r.versus_none
    return (f"{100 * v.diff:+.1f} pp [{100 * v.diff_ci95[0]:+.1f}, {100 * v.diff_ci95[1]:+.1f}]"
            f", p={v.mcnemar_p:.3g}")


def _mean(values: list[float]) -> str:
    return f"{100 * sum(values) / len(values):.1f}%" if values else "–"


def markdown(report: RobustnessReport) -> str:
    by = {(r.task, r.family, r.perturbation): r for r in report.rows}
    tasks = [n.task for n in report.tasks]
    seed = report.rows[0].configs.seed if report.rows else 0
    lines = [
        f"# Perturbations × policy family, panel `{report.panel}` (in process)", "",
        f"- Command: `{report.command}`", f"- Wall time: {report.wall_s:.1f} s",
        f"- {report.episodes} episodes per cell on held-out configurations MT1 seed {seed}, "
        f"indices 0–{report.episodes - 1}; at most {report.max_steps} steps per episode.",
        "- Δ: perturbed minus `none` for the same policy on the same configurations, in "
        "percentage points, Newcombe paired 95% interval, exact McNemar p.",
        "- Panel mean: the mean of the per-task rates (n/a cells left out).",
        "- Where the expert fails some configurations under a perturbation, a cell also gives "
        "the policy's successes on the configurations the expert solved.", ""]
    for p in PERTURBATIONS:
        if not any(r.perturbation == p for r in report.rows):
            continue
        lines += [f"## `{p}`: {describe(p, report.settings)}", "",
                  "| task | generalist | Δ | specialist | Δ | expert |",
                  "|---|---|---|---|---|---|"]
        for t in tasks:
            g, s, e = (by.get((t, f, p)) for f in ("generalist", "specialist", "expert"))
            lines.append(
                f"| {t} | {_cell(g)} | {_drop(g)} | {_cell(s)} | {_drop(s)} | {_cell(e)} |")
        means = []
        for f in ("generalist", "specialist", "expert"):
            rows = [r for r in report.rows if r.family == f and r.perturbation == p
                    and r.applicable and r.rate is not None]
            diffs = [r.versus_none.diff for r in rows if r.versus_none is not None]
            means.append((_mean([r.rate for r in rows if r.rate is not None]),
                          f"{100 * sum(diffs) / len(diffs):+.1f} pp" if diffs else "–"))
        lines += [f"| **panel mean** | {means[0][0]} | {means[0][1]} | {means[1][0]} | "
                  f"{means[1][1]} | {means[2][0]} |", ""]
    lines += ["## What the env perturbations did, per task", "",
              "| task | OOD: placed, axes | outside the box (m) | far side | goal clip widened "
              "| mass: bodies, kg |", "|---|---|---|---|---|---|"]
    for n in report.tasks:
        beyond = f"{n.ood_beyond_m[0]:.3f}–{n.ood_beyond_m[1]:.3f}" if n.ood_beyond_m else "–"
        mass = n.mass_na or ", ".join(
            f"{b} {x:g} → {y:g}" for b, x, y in zip(n.mass_bodies, n.mass_before_kg,
                                                    n.mass_after_kg, strict=True)) or "–"
        placed = f"{n.ood_part} {'/'.join(n.ood_axes)}" if n.ood_part else "–"
        lines.append(f"| {n.task} | {placed} | {beyond} | {n.ood_flipped_configs} | "
                     f"{n.ood_goal_widened_configs} | {mass} |")
    return "\n".join(lines) + "\n"


def write_outputs(folder: Path, report: RobustnessReport) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "robustness.json", report)
    with (folder / "robustness.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for r in report.rows:
            v = r.versus_none
            writer.writerow([
                r.task, r.family, r.policy, r.perturbation, r.applicable, r.episodes,
                r.successes, "" if r.rate is None else r.rate, *(r.ci95 or ("", "")),
                *((v.diff, *v.diff_ci95, v.mcnemar_p) if v else ("", "", "", "")),
                r.configs.seed, " ".join(map(str, r.configs.indices)), r.note])
    (folder / "robustness.md").write_text(markdown(report))
