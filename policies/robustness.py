"""Perturbations crossed with policy family, in process (issue 10, item 6; no Triton).

    python -m policies.robustness --artifacts build/models/mt10 --episodes 30 --out DIR \
        [--workers 2] [--perturbations none,obs_noise,action_delay,ood_placement,mass_x2] \
        [--policies generalist,specialist] [--tasks reach-v3,...] [--max-steps 500]

For every task, the generalist (true task one-hot) and the task's own specialist run N held-out
configurations (`eval_configurations`, the offline matrix's) under each perturbation, batched
as in `offline_eval`. `none` runs the same configurations, so each perturbed cell is compared
with it pair by pair (exact McNemar, Newcombe's paired interval). The scripted expert runs the
env perturbations (none, OOD placement, mass) as a reference: it shows whether a perturbed
scene is still solvable at all. What the perturbations do: `policies/perturb.py`.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.stats import paired_comparison
from policies.jsonio import read_json
from policies.offline_eval import EXPERT_POLICY, CellPolicy, EvalSpec, step_active
from policies.panel import MAX_EPISODE_STEPS, PANELS, Panel, eval_configurations, make_env, task_id
from policies.perturb import (
    ENV_PERTURBATIONS,
    PERTURBATIONS,
    Controller,
    MassChange,
    Perturbation,
    PerturbSettings,
    Placement,
    episode_seed,
    manipulated_body,
    ood_placement,
    scale_mass,
)
from policies.robustness_report import (
    ConfigSet,
    Family,
    OodPlacement,
    PairedDrop,
    RobustnessReport,
    RobustnessRow,
    TaskNote,
    write_outputs,
)
from policies.train import NormStats
from router_service.intervals import wilson_interval

FAMILIES: tuple[Family, ...] = ("generalist", "specialist")
ENV_MODIFYING = frozenset({"ood_placement", "mass_x2"})  # these need envs of their own


@dataclass(frozen=True)
class Job:
    panel: Panel
    episodes: int
    max_steps: int = MAX_EPISODE_STEPS
    perturbations: tuple[Perturbation, ...] = PERTURBATIONS
    families: tuple[Family, ...] = FAMILIES
    expert: bool = True
    settings: PerturbSettings = field(default_factory=PerturbSettings)


def model_name(family: Family, task: str) -> str:
    return {"generalist": "generalist", "specialist": f"specialist_{task_id(task)}",
            "expert": EXPERT_POLICY}[family]


def run_episodes(envs: list[Any], policy: CellPolicy, controller: Controller,
                 max_steps: int) -> list[bool]:
    """`offline_eval.run_cell` with the controller between the env and the policy."""
    obs = np.stack([env.reset()[0] for env in envs])
    active = np.ones(len(envs), dtype=bool)
    success = np.zeros(len(envs), dtype=bool)
    for _ in range(max_steps):
        idx = np.flatnonzero(active)
        if len(idx) == 0:
            break
        actions = controller.apply(policy.act(controller.observe(obs[idx], idx)), idx)
        step_active(envs, idx, actions, obs, active, success)
    return [bool(s) for s in success]


def _prepare(envs: list[Any], task: str, perturbation: str, settings: PerturbSettings,
             note: TaskNote) -> str:
    """Apply an env perturbation to every env; '' when it applies, else why it does not."""
    if perturbation == "ood_placement":
        placements: list[Placement] = [ood_placement(env, task, settings) for env in envs]
        beyond = [b for p in placements for b in p.beyond_m]
        note.ood_part = placements[0].part
        note.ood_axes = ["xyz"[a % 3] for a in placements[0].axes]
        note.ood_beyond_m = (min(beyond), max(beyond))
        note.ood_flipped_configs = sum(p.flipped > 0 for p in placements)
        note.ood_goal_widened_configs = sum(p.goal_widened for p in placements)
        note.ood_placements = [OodPlacement(index=i, before=list(p.original), after=list(p.placed))
                               for i, p in enumerate(placements)]
    elif perturbation == "mass_x2":
        body = manipulated_body(envs[0], task)
        if body is None:
            note.mass_na = f"{task} manipulates nothing (success is the gripper at the goal)"
            return note.mass_na
        changes: list[MassChange] = [scale_mass(env, body, settings.mass_scale) for env in envs]
        note.mass_bodies = list(changes[0].bodies)
        note.mass_before_kg, note.mass_after_kg = (list(changes[0].before_kg),
                                                   list(changes[0].after_kg))
    return ""


def evaluate_task(models_dir: Path, job: Job, task: str) -> tuple[TaskNote, list[RobustnessRow]]:
    started = time.perf_counter()
    norm = NormStats.from_json(read_json(models_dir / "norm_stats.json"))
    spec = EvalSpec(job.panel, job.episodes, job.max_steps, include_expert=False)
    configs = eval_configurations(job.panel, task, job.episodes)
    config_set = ConfigSet(seed=job.panel.eval_config_seed, indices=list(range(len(configs))))
    note, rows = TaskNote(task=task), []
    clean: list[Any] = []  # none, obs_noise and action_delay share the unmodified envs
    for n, perturbation in enumerate(job.perturbations):
        shared = perturbation not in ENV_MODIFYING
        envs = clean if shared and clean else [make_env(task, c) for c in configs]
        clean = envs if shared else clean
        why_not = _prepare(envs, task, perturbation, job.settings, note)
        families = job.families + (("expert",) if job.expert and perturbation in
                                   ENV_PERTURBATIONS else ())
        for family in families:
            name = model_name(family, task)
            outcomes: list[bool] = []
            if not why_not:
                seeds = [episode_seed(task, name, perturbation, i) for i in config_set.indices]
                policy = CellPolicy(name, models_dir, norm, spec, task)
                controller = Controller(perturbation, job.settings, seeds)
                outcomes = run_episodes(envs, policy, controller, job.max_steps)
            rows.append(_row(task, family, name, perturbation, why_not, config_set, outcomes))
        if not shared or not any(p not in ENV_MODIFYING for p in job.perturbations[n + 1:]):
            for env in envs:  # ~25 MB each: keep only the set a later perturbation reuses
                env.close()
            clean = clean if not shared else []
    for env in clean:
        env.close()
    print(f"[robustness] {task}: {len(rows)} cells in {time.perf_counter() - started:.1f} s",
          flush=True)  # progress of a long run, one line per task
    return note, rows


def _row(task: str, family: Family, name: str, perturbation: Perturbation, why_not: str,
         configs: ConfigSet, outcomes: list[bool]) -> RobustnessRow:
    n, k = len(outcomes), sum(outcomes)
    lo, hi = wilson_interval(k, n)
    return RobustnessRow(
        task=task, family=family, policy=name, perturbation=perturbation,
        applicable=not why_not, note=why_not, episodes=n, successes=k,
        rate=round(k / n, 4) if n else None,
        ci95=(round(lo, 4), round(hi, 4)) if n else None,
        configs=configs, outcomes=outcomes)


def pair_with_none(rows: list[RobustnessRow]) -> None:
    """Fill `versus_none` for every applicable perturbed row whose `none` row ran."""
    reference = {(r.task, r.policy): r for r in rows if r.perturbation == "none"}
    for row in rows:
        base = reference.get((row.task, row.policy))
        if row.perturbation == "none" or not row.applicable or base is None:
            continue
        c = paired_comparison(list(zip(row.configs.indices, row.outcomes, strict=True)),
                              list(zip(base.configs.indices, base.outcomes, strict=True)))
        row.versus_none = PairedDrop(
            both=c.both, only_perturbed=c.only_a, only_none=c.only_b, neither=c.neither,
            diff=round(c.diff, 4), diff_ci95=(round(c.lo, 4), round(c.hi, 4)),
            mcnemar_p=round(c.p_value, 6))


def mark_expert_solved(rows: list[RobustnessRow]) -> None:
    """A policy's successes on the configurations the expert solved under the same perturbation:
    separates "the policy breaks" from "the perturbed scene cannot be solved"."""
    expert = {(r.task, r.perturbation): r for r in rows if r.family == "expert" and r.applicable}
    for row in rows:
        ref = expert.get((row.task, row.perturbation))
        if row.family == "expert" or ref is None or ref.configs != row.configs:
            continue
        solved = [ok for ok, e in zip(row.outcomes, ref.outcomes, strict=True) if e]
        row.on_expert_solved = (sum(solved), len(solved))


def run(models_dir: Path, job: Job, tasks: tuple[str, ...], workers: int = 1
        ) -> tuple[list[TaskNote], list[RobustnessRow]]:
    if workers > 1 and len(tasks) > 1:
        with ProcessPoolExecutor(min(workers, len(tasks)), mp_context=get_context("spawn")) as pool:
            per_task = list(pool.map(evaluate_task, [models_dir] * len(tasks),
                                     [job] * len(tasks), tasks))
    else:
        per_task = [evaluate_task(models_dir, job, t) for t in tasks]
    rows = [r for _, task_rows in per_task for r in task_rows]
    pair_with_none(rows)
    mark_expert_solved(rows)
    return [n for n, _ in per_task], rows


def load_panel(models_dir: Path) -> Panel:
    """The artifacts' panel with its held-out seed (a known panel's, else the default)."""
    manifest = read_json(models_dir / "manifest.json")
    name, tasks = str(manifest["panel"]), tuple(str(t) for t in manifest["tasks"])
    known = PANELS.get(name)
    return known if known is not None and known.tasks == tasks else Panel(name, tasks)


def _csv_list(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--artifacts", type=Path, required=True)
    parser.add_argument("--episodes", type=int, default=30)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--perturbations", type=_csv_list, default=list(PERTURBATIONS))
    parser.add_argument("--policies", type=_csv_list, default=list(FAMILIES))
    parser.add_argument("--tasks", type=_csv_list, default=None, help="default: the panel's")
    parser.add_argument("--max-steps", type=int, default=MAX_EPISODE_STEPS)
    parser.add_argument("--noise-std", type=float, default=PerturbSettings.noise_std)
    parser.add_argument("--delay-steps", type=int, default=PerturbSettings.delay_steps)
    parser.add_argument("--no-expert", action="store_true", help="skip the expert reference")
    args = parser.parse_args(argv)
    panel = load_panel(args.artifacts)
    bad = [p for p in args.perturbations if p not in PERTURBATIONS] + [
        f for f in args.policies if f not in FAMILIES] + [
        t for t in (args.tasks or []) if t not in panel.tasks]
    if bad:
        parser.error(f"unknown perturbation, policy family or task: {bad}")
    job = Job(panel, args.episodes, args.max_steps, tuple(args.perturbations),
              tuple(args.policies), not args.no_expert,
              PerturbSettings(noise_std=args.noise_std, delay_steps=args.delay_steps))
    started = time.perf_counter()
    notes, rows = run(args.artifacts, job, tuple(args.tasks or panel.tasks), args.workers)
    wall = round(time.perf_counter() - started, 1)
    command = shlex.join(["python", "-m", "policies.robustness",
                          *(sys.argv[1:] if argv is None else argv)])
    report = RobustnessReport(
        panel=panel.name, artifacts=str(args.artifacts),
        created=datetime.now(UTC).isoformat(timespec="seconds"), command=command,
        wall_s=wall, episodes=job.episodes, max_steps=job.max_steps,
        settings=job.settings, tasks=notes, rows=rows)
    write_outputs(args.out, report)
    print(f"[robustness] {len(rows)} rows in {wall:.1f} s -> {args.out}", flush=True)


if __name__ == "__main__":
    main()
