"""One evaluation run end to end: stack up, every arm through the router, calibration loop,
report, stack down. Episodes are appended to episodes.jsonl as they finish, so an interrupted
run still leaves its raw results."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import secrets
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from tqdm import tqdm

from evaluation import contracts as cx
from evaluation import latency_terms
from evaluation.arms import Arm
from evaluation.meta import ArmMeta, RunMeta, parse_metrics, write_meta
from evaluation.plan import (
    RunPlan,
    calibration_configurations,
    check_disjoint,
    configuration_ids,
    episode_specs,
    evaluation_configurations,
    schedule,
)
from evaluation.records import EpisodeResult, append_jsonl, read_jsonl
from evaluation.report import EPISODES_FILE, META_FILE, Report, build, closed_loop_rows
from evaluation.robots import RobotPool, RouterLink
from evaluation.runner import RunSettings
from evaluation.stack import OwnStack, RouterEndpoint, RunningStack, reload_contract
from evaluation.stack import scrape_metrics as scrape
from evaluation.tables import matrix
from policies.serving.manifest import load_artifacts


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def _load() -> list[float]:
    # Other work on the machine shapes latency here; the report says how busy it was.
    return [round(v, 2) for v in os.getloadavg()]


def _contract_info(base: dict[str, Any]) -> dict[str, Any]:
    specialist_for = {p["tasks"][0]: p["name"] for p in base["policies"]
                      if p["kind"] == "specialist" and len(p["tasks"]) == 1}
    return {
        "success_targets": {t["name"]: float(t["success_target"]) for t in base["tasks"]},
        "generalist": next(p["name"] for p in base["policies"] if p["kind"] == "generalist"),
        "specialist_for": specialist_for,
        "ops_cost": {p["name"]: float(p["ops_cost"]) for p in base["policies"]},
    }


def _contract_json(endpoint: RouterEndpoint) -> dict[str, Any]:
    reply = httpx.get(f"{endpoint.http_url}/v1/contract", timeout=5.0,
                      headers={"Authorization": f"Bearer {endpoint.robot_key}"})
    reply.raise_for_status()
    data: dict[str, Any] = reply.json()
    return data


def verify_calibration(endpoint: RouterEndpoint, contract: Path) -> str:
    """Reload the closed-loop contract into a router and read back what it serves."""
    if endpoint.admin_key is None:
        return "not checked: no admin key"
    before = _contract_json(endpoint)
    reload_contract(endpoint.http_url, endpoint.admin_key, contract)
    after = _contract_json(endpoint)
    return (f"router went from contract {before['spec']['version']} (table source "
            f"{before['calibration']['source']!r}) to {after['spec']['version']} (table source "
            f"{after['calibration']['source']!r}, {len(after['calibration']['rows'])} rows) "
            "after POST /v1/admin/contract/reload")


class Session:
    def __init__(self, plan: RunPlan) -> None:
        self.plan = plan
        self.base = cx.load_base(plan.contract)
        self.info = _contract_info(self.base)
        self.tag = secrets.token_hex(3)
        self.contracts_dir = plan.out / "contracts"
        self.run_dir = plan.out / "run"
        self.meta = self._meta()
        self.hold = tuple(float(v) for v in self.base["routing"]["hold_action"])
        self._scrapes: dict[str, str] = {}
        self._versions: dict[str, str] = {}
        self._wall: dict[str, float] = {}
        self._router_start: dict[str, float] = {}
        self._wins: dict[str, list[int]] = {}

    def _meta(self) -> RunMeta:
        artifacts = load_artifacts(self.plan.artifacts)
        deadline = float(self.base["default_deadline_ms"])
        return RunMeta(
            command=self.plan.command, started=_now(),
            panel=self.plan.panel.name, tasks=list(self.plan.panel.tasks),
            episodes_per_cell=self.plan.episodes, robots=self.plan.robots,
            transport=self.plan.transport, control_hz=self.plan.control_hz,
            deadline_ms=deadline, max_steps=self.plan.max_steps,
            rounds=max(1, min(self.plan.rounds, self.plan.episodes)),
            base_contract=str(self.plan.contract), base_contract_version=self.base["version"],
            reference_table=self.base["calibration"]["table"],
            stack="own" if self.plan.running is None else self.plan.running.http_url,
            cpu_count=os.cpu_count() or 0, load_start=_load(),
            redis=False, model_versions={p.entry.name: p.version for p in artifacts.policies},
            **self.info,
        )

    @contextlib.contextmanager
    def _stack(self) -> Iterator[OwnStack | RunningStack]:
        if self.plan.running is not None:
            original = self.plan.running.original_contract()
            try:
                yield self.plan.running
            finally:
                if self.plan.running.admin_key:
                    reload_contract(self.plan.running.http_url, self.plan.running.admin_key,
                                    original)
            return
        stack = OwnStack(self.run_dir, self.plan.artifacts, self.plan.use_redis,
                         self.plan.triton_grpc, self.plan.triton_fault_dir)
        try:
            stack.start()
            self.meta.redis = stack.has_redis
            yield stack
        finally:
            stack.stop()

    def run(self) -> Report:
        plan, started = self.plan, time.perf_counter()
        plan.out.mkdir(parents=True, exist_ok=True)
        (plan.out / EPISODES_FILE).unlink(missing_ok=True)
        configs = self._configurations()
        total = len(plan.arms) * plan.episodes * len(plan.panel.tasks)
        try:
            # The robot processes start first: they import Meta-World and build their envs
            # while the stack comes up.
            with RobotPool(plan.robots, configs, plan.out) as pool, self._stack() as stack:
                served = self._latency_terms(stack)
                contracts = {a.name: cx.derive_contract(self.base, a, self.contracts_dir, served)
                             for a in plan.arms}
                with contextlib.ExitStack() as routers:
                    endpoints = self._start_routers(stack, routers, contracts)
                    pool.wait_ready()
                    self.meta.setup_s = round(time.perf_counter() - started, 1)
                    with tqdm(total=total, unit="ep", desc="episodes", dynamic_ncols=True) as bar:
                        for arm, indices in schedule(plan.arms, plan.episodes, plan.rounds):
                            self._run_block(stack, arm, indices, endpoints.get(arm.name),
                                            contracts[arm.name], pool, bar)
                    for name, endpoint in endpoints.items():
                        self._scrapes[name] = scrape(endpoint.http_url)
                self._record_arms(contracts)
                write_meta(plan.out / META_FILE, self.meta)
                self._calibration_loop(stack)
        finally:
            self.meta.finished = _now()
            self.meta.load_end = _load()
            self.meta.total_s = round(time.perf_counter() - started, 1)
            write_meta(plan.out / META_FILE, self.meta)
        return build(plan.out)

    def _latency_terms(self, stack: OwnStack | RunningStack) -> dict[str, float]:
        """Every route's serving latency through this run's Triton, measured before any router
        starts; its p90 is each derived contract's latency prior for the route."""
        if not isinstance(stack, OwnStack):
            return {}  # a running stack's Triton is not ours to measure; its contract stands
        measured = asyncio.run(latency_terms.measure(self.plan.artifacts, stack.triton_http,
                                                     stack.triton_grpc))
        self.meta.served_latency_ms = {
            route: {"p50": r.p50_ms, "p90": r.p90_ms, "p99": r.p99_ms}
            for route, r in measured.items()}
        return latency_terms.p90s(measured)

    def _configurations(self) -> dict[str, Any]:
        """The run's configurations per task, checked disjoint from the calibration table's and
        recorded (both seeds, every identity) before any episode runs."""
        plan = self.plan
        configs = {t: evaluation_configurations(plan.panel, t, plan.episodes, plan.config_seed)
                   for t in plan.panel.tasks}
        ids = {t: configuration_ids(c) for t, c in configs.items()}
        calibration = {t: configuration_ids(calibration_configurations(plan.panel, t))
                       for t in plan.panel.tasks}
        check_disjoint(ids, calibration)
        self.meta.config_seed = plan.config_seed
        self.meta.calibration_config_seed = plan.panel.eval_config_seed
        self.meta.config_ids, self.meta.calibration_config_ids = ids, calibration
        return configs

    def _start_routers(self, stack: OwnStack | RunningStack, routers: contextlib.ExitStack,
                       contracts: dict[str, Path]) -> dict[str, RouterEndpoint]:
        """Own stack: one router per arm, alive for the whole run, so its state (latency
        estimates, feedback counts behind the stale-calibration flag) spans the arm's blocks.
        A running stack has one router: it is switched by contract reload per block."""
        if not isinstance(stack, OwnStack):
            return {}
        endpoints = {}
        for arm in self.plan.arms:
            t0 = time.perf_counter()
            endpoints[arm.name] = routers.enter_context(stack.router(contracts[arm.name],
                                                                     arm.name))
            self._router_start[arm.name] = round(time.perf_counter() - t0, 1)
        return endpoints

    def _run_block(self, stack: OwnStack | RunningStack, arm: Arm, indices: range,
                   endpoint: RouterEndpoint | None, contract: Path, pool: RobotPool,
                   bar: tqdm[Any]) -> None:
        plan, faults, slow = self.plan, stack.faults, arm.perturbation.slow_route
        if slow and faults is None:
            raise RuntimeError(f"arm {arm.name} needs Triton's fault dir (--triton-fault-dir)")
        wins = self._wins.setdefault(arm.name, [0, 0])

        def done(result: EpisodeResult) -> None:
            append_jsonl(plan.out / EPISODES_FILE, result)
            wins[0] += int(result.success)
            wins[1] += 1
            bar.update(1)
            bar.set_postfix_str(f"{arm.name}: {wins[0]}/{wins[1]} ok")

        t0 = time.perf_counter()
        serving = (contextlib.nullcontext(endpoint) if endpoint is not None
                   else stack.router(contract, arm.name))
        with serving as ep:
            if slow and faults is not None:
                faults.set(f"policy_{slow}", arm.perturbation.slow_delay_ms,
                           arm.perturbation.slow_prob)
            settings = RunSettings(float(self.base["default_deadline_ms"]), plan.control_hz,
                                   plan.max_steps, self.hold, plan.transport,
                                   ep.contract_version)
            specs = [s for s in episode_specs(plan, arm, self.tag) if s.config_index in indices]
            try:
                pool.run(RouterLink(ep.http_url, ep.grpc_target, ep.robot_key), settings, specs,
                         done)
            finally:
                if faults is not None:
                    faults.clear()
            self._versions[arm.name] = ep.contract_version
            if endpoint is None:  # a shared router: its counters so far, after this block
                self._scrapes[arm.name] = scrape(ep.http_url)
        self._wall[arm.name] = self._wall.get(arm.name, 0.0) + time.perf_counter() - t0

    def _record_arms(self, contracts: dict[str, Path]) -> None:
        metrics_dir = self.plan.out / "metrics"
        metrics_dir.mkdir(exist_ok=True)
        for arm in self.plan.arms:
            text = self._scrapes.get(arm.name, "")
            (metrics_dir / f"{arm.name}.prom").write_text(text)
            derived = cx.load_base(contracts[arm.name])
            self.meta.arms.append(ArmMeta(
                name=arm.name, family=arm.family, declare_task=arm.declare_task,
                perturbation=dataclasses.asdict(arm.perturbation), description=arm.describe(),
                contract=str(contracts[arm.name].relative_to(self.plan.out)),
                contract_version=self._versions.get(arm.name, ""),
                calibration_table=derived["calibration"]["table"],
                route_tasks={k: list(v) for k, v in cx.policy_tasks(derived).items()},
                wall_s=round(self._wall.get(arm.name, 0.0), 1),
                router_start_s=self._router_start.get(arm.name, 0.0),
                metrics=parse_metrics(text),
            ))

    def _calibration_loop(self, stack: OwnStack | RunningStack) -> None:
        episodes = read_jsonl(self.plan.out / EPISODES_FILE)
        names = [a.name for a in self.plan.arms]
        rows = closed_loop_rows(matrix(episodes, self.meta.tasks, names), self.meta)
        if not rows:
            return
        table, contract = cx.write_closed_loop(self.base, self.meta.panel, rows, self.plan.out,
                                               self.tag)
        loop: dict[str, Any] = {"table": str(table.relative_to(self.plan.out)),
                                "contract": str(contract.relative_to(self.plan.out)),
                                "rows": len(rows)}
        if isinstance(stack, OwnStack):
            base = cx.derive_contract(self.base, Arm("deployed", "router"), self.contracts_dir)
            with stack.router(base, "calibration") as endpoint:
                loop["verified"] = verify_calibration(endpoint, contract)
        self.meta.calibration_loop = loop
        (self.plan.out / "calibration_loop.json").write_text(json.dumps(loop, indent=2))
