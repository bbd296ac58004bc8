"""A small closed-loop run through the real stack: Meta-World robots -> real router processes
(one per arm) -> the session's real tritonserver, with a real redis-server. Checks the result
folder and that every episode's MCAP trace reads back step for step."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import pytest

from evaluation.arms import ArmSettings, build_arms
from evaluation.orchestrate import Session
from evaluation.plan import RunPlan
from evaluation.records import read_jsonl
from evaluation.traces import read_trace
from policies.panel import get_panel

pytestmark = [pytest.mark.slow, pytest.mark.triton]
STEPS = 25


def run(triton: Any, contract: Path, out: Path, arms: list[str], transport: str,
        robots: int = 2) -> Any:
    plan = RunPlan(
        panel=get_panel("ci"), arms=build_arms(arms, ArmSettings(), "specialist_reach_v3"),
        episodes=1, robots=robots, transport=transport, control_hz=50.0, max_steps=STEPS,
        contract=contract, artifacts=triton.artifacts, out=out, command="pytest",
        triton_grpc=triton.grpc_url, triton_fault_dir=triton.fault_dir,
    )
    return Session(plan).run()


def test_closed_loop_http_two_arms(triton: Any, served_contract: Path, tmp_path: Path) -> None:
    out = tmp_path / "result"
    report = run(triton, served_contract, out, ["generalist", "router_hidden"], "http")
    episodes = read_jsonl(out / "episodes.jsonl")
    assert len(episodes) == 2 * 3
    for name in ("matrix.csv", "confusion.csv", "failures.jsonl", "report.md",
                 "plots/success_heatmap.png", "plots/confusion_matrix.png",
                 "plots/latency_cdf.png", "metrics/router_hidden.prom"):
        assert (out / name).is_file(), name
    with (out / "matrix.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == 2 * 3

    # Every robot is its own process: one pid per robot, none of them the test's.
    pids: dict[str, set[int]] = {}
    for e in episodes:
        pids.setdefault(e.robot_id, set()).add(e.pid)
    assert all(len(p) == 1 for p in pids.values())
    per_robot = [p for ps in pids.values() for p in ps]
    assert len(set(per_robot)) == len(per_robot) and os.getpid() not in per_robot
    for e in episodes:
        assert e.eval_error is None and 1 <= e.steps <= STEPS
        assert e.feedback.get("status") == 202, e.feedback  # the router took the feedback
        assert len(e.harness_ms) == len(e.overran) == e.steps
        trace = read_trace(out / e.trace)
        assert trace.episode["episode_id"] == e.episode_id
        assert len(trace.steps) == e.steps
        assert trace.summary["success"] == e.success
        routes = [s["router"]["route"] for s in trace.steps]
        assert routes == [r for r in e.routes]
        assert all(len(s["observation"]["state"]) == 39 for s in trace.steps)
        assert all(len(s["action"]["applied_action"]) == 4 for s in trace.steps)
        replied = [s["router"] for s in trace.steps if s["router"]["status"] == "ok"]
        if e.arm == "router_hidden":
            assert replied and all(r["declared_task"] is None for r in replied)
            assert all(r["inferred_task"] for r in replied)  # the classifier's task
        else:
            assert all(r["route"] in ("generalist", "hold") for r in replied)
    assert report.meta.arm("router_hidden").metrics["router_requests_total"]
    assert "closed_loop" in report.meta.calibration_loop["verified"]
    text = (out / "report.md").read_text()
    assert text.rstrip().endswith(report.decision.lines[-1])
    assert "| all arms | " in text.split("## Evaluation overhead", 1)[1].split("## ", 1)[0]


def test_closed_loop_grpc_slow_specialist(triton_faults: Any, served_contract: Path,
                                          tmp_path: Path) -> None:
    out = tmp_path / "result"
    report = run(triton_faults, served_contract, out, ["slow_specialist"], "grpc", robots=3)
    episodes = read_jsonl(out / "episodes.jsonl")
    assert len(episodes) == 3
    assert all(e.statuses.get("ok", 0) > 0 for e in episodes)  # gRPC replies came back
    assert not list(triton_faults.fault_dir.glob("policy_*.json"))  # the fault was cleared
    assert report.meta.arms[0].perturbation["slow_route"] == "specialist_reach_v3"
    for e in episodes:
        assert len(read_trace(out / e.trace).steps) == e.steps
