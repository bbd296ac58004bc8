"""Constructed episodes and runs for the evaluation tests (no simulator, no servers)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from evaluation.arms import Arm, Perturbation
from evaluation.contracts import TableRow, row_from_counts, table_json
from evaluation.meta import ArmMeta, MetricSample, RunMeta, write_meta
from evaluation.records import NO_REPLY, EpisodeResult, write_jsonl

TASKS = ("reach-v3", "pick-place-v3", "peg-insert-side-v3")
SPECIALIST = {t: "specialist_" + t.replace("-", "_") for t in TASKS}
ROUTE_TASKS: dict[str, tuple[str, ...]] = {"generalist": TASKS,
                                           **{r: (t,) for t, r in SPECIALIST.items()}}


def episode(task: str = "reach-v3", arm: str = "router", success: bool = False,
            steps: int = 100, route: str | None = None, wrong_task_steps: int = 0,
            wrong_task: str | None = None, late_steps: int = 0, fallback_steps: int = 0,
            no_reply_steps: int = 0, rtt: float = 5.0, eval_error: str | None = None,
            feedback: dict[str, Any] | None = None, index: int = 0,
            declared: bool = True, saturated_steps: int = 0,
            fallback_route: str | None = None) -> EpisodeResult:
    """An episode whose per-step lists say exactly what the arguments say (the listed kinds of
    step come first, in the order no-reply, wrong-task, late, fallback; saturated steps are
    the first ones). Fallback steps are served by `fallback_route` (default: the same route)."""
    route = route or SPECIALIST[task]
    wrong_task = wrong_task or next(t for t in TASKS if t != task)
    routes, tasks, late, fallback, rtts = [], [], [], [], []
    for i in range(steps):
        replied = i >= no_reply_steps
        fell_back = replied and i < no_reply_steps + fallback_steps
        routes.append((fallback_route or route if fell_back else route) if replied
                      else NO_REPLY)
        wrong = no_reply_steps <= i < no_reply_steps + wrong_task_steps
        tasks.append((wrong_task if wrong else task) if replied else NO_REPLY)
        late.append(not replied or i < no_reply_steps + late_steps)
        fallback.append(replied and i < no_reply_steps + fallback_steps)
        rtts.append(rtt + (i % 10) if replied else -1.0)
    return EpisodeResult(
        arm=arm, task=task, config_index=index, episode_id=f"{arm}.{task}.{index:03d}",
        robot_id="robot-0", declared_task=task if declared else None, success=success,
        steps=steps, first_success_step=steps - 1 if success else None,
        eval_error=eval_error, rtt_ms=rtts, routes=routes, resolved_tasks=tasks, late=late,
        fallback=fallback, router_total_ms=[v / 2 if v >= 0 else -1.0 for v in rtts],
        saturated=[i < saturated_steps for i in range(steps)],
        statuses={"ok": steps - no_reply_steps, **({"shed": no_reply_steps}
                                                   if no_reply_steps else {})},
        feedback=feedback or {"status": 202, "calibration_stale": None},
        trace=f"traces/{arm}/{task}/{arm}.{task}.{index:03d}.mcap",
    )


def reference_rows() -> list[TableRow]:
    rows = []
    for task in TASKS:
        rows.append(row_from_counts(task, "generalist", 30, 28))
        rows.append(row_from_counts(task, SPECIALIST[task], 30, 27))
    return rows


def write_table(path: Path, rows: list[TableRow], source: str = "offline") -> Path:
    path.write_text(json.dumps(table_json("ci", source, rows)))
    return path


def arm_meta(arm: Arm, table: Path, route_tasks: dict[str, tuple[str, ...]] | None = None,
             stale_pairs: tuple[tuple[str, str], ...] = ()) -> ArmMeta:
    return ArmMeta(
        name=arm.name, family=arm.family, declare_task=arm.declare_task,
        perturbation=dataclasses.asdict(arm.perturbation), description=arm.describe(),
        contract=f"contracts/{arm.name}.yaml", contract_version=f"ci-1-eval-{arm.name}",
        calibration_table=str(table),
        route_tasks={k: list(v) for k, v in (route_tasks or ROUTE_TASKS).items()},
        wall_s=12.0,
        metrics={"router_calibration_stale": [
            MetricSample(labels={"task": t, "policy": p}, value=1.0) for t, p in stale_pairs]},
    )


def run_meta(folder: Path, arms: list[ArmMeta], reference: Path, episodes: int) -> RunMeta:
    return RunMeta(
        command="python -m evaluation run --constructed", started="2026-01-01T00:00:00+00:00",
        finished="2026-01-01T00:10:00+00:00", panel="ci", tasks=list(TASKS),
        episodes_per_cell=episodes, robots=3, transport="http", control_hz=50.0,
        deadline_ms=20.0, max_steps=500, base_contract="deploy/contracts/ci.yaml",
        base_contract_version="ci-1",
        success_targets={"reach-v3": 0.9, "pick-place-v3": 0.8, "peg-insert-side-v3": 0.7},
        generalist="generalist", specialist_for=dict(SPECIALIST),
        ops_cost={"generalist": 0.0, **{r: 0.02 for r in SPECIALIST.values()}},
        reference_table=str(reference), stack="own", redis=True,
        model_versions={"generalist": "g1"}, arms=arms, setup_s=5.0, total_s=600.0,
    )


def constructed_run(folder: Path, n: int = 10, reference_ok: bool = False,
                    skip: tuple[str, ...] = ()) -> tuple[RunMeta, list[EpisodeResult]]:
    """Six arms × three tasks, with one failure of every rule-based label somewhere: every arm
    fails on configurations n-2 and n-1. With `reference_ok` the specialist arm (the
    counterfactual reference) succeeds everywhere and the stale-calibration arm's failures
    were routed to the generalist, so every counterfactual label shows up. `skip`: arms left
    out of the run."""
    folder.mkdir(parents=True, exist_ok=True)
    reference = write_table(folder / "reference.json", reference_rows())
    stale_table = write_table(folder / "stale.json", [
        row_from_counts(r.task, r.policy, r.episodes, r.episodes - r.successes)
        for r in reference_rows()])
    arms = [Arm("generalist", "generalist"), Arm("specialist", "specialist"),
            Arm("router", "router"), Arm("router_hidden", "router", declare_task=False),
            Arm("action_delay", "router", perturbation=Perturbation(action_delay_steps=3)),
            Arm("stale_calibration", "router",
                perturbation=Perturbation(stale_calibration=True))]
    arms = [a for a in arms if a.name not in skip]
    metas = [arm_meta(a, stale_table if a.perturbation.stale_calibration else reference,
                      stale_pairs=(("reach-v3", "generalist"),)
                      if a.perturbation.stale_calibration else ()) for a in arms]
    eps: list[EpisodeResult] = []
    for a in arms:
        for t in TASKS:
            route = "generalist" if a.family == "generalist" else SPECIALIST[t]
            for i in range(n):
                ok = i < n - 2 or (reference_ok and a.name == "specialist")
                kwargs: dict[str, Any] = {}
                if not ok and a.name == "router_hidden":
                    kwargs = {"wrong_task_steps": 50}
                elif not ok and a.name == "router" and i == n - 1:
                    kwargs = {"late_steps": 30}
                elif not ok and a.name == "generalist" and i == n - 1:
                    kwargs = {"eval_error": "step 3: ValueError: boom", "steps": 4}
                elif not ok and a.name == "generalist":
                    kwargs = {"saturated_steps": 60}  # pinned at its bounds: control
                elif not ok and reference_ok and a.name == "stale_calibration":
                    kwargs = {"route": "generalist"}  # the inverted table's pick
                eps.append(episode(t, a.name, ok, index=i, declared=a.declare_task,
                                   **{"route": route, **kwargs}))
    write_jsonl(folder / "episodes.jsonl", eps)
    meta = run_meta(folder, metas, reference, n)
    write_meta(folder / "run.json", meta)
    return meta, eps
