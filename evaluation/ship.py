"""The decision drives the deployment: a finished run's smallest policy set becomes the panel's
shipped contract, with the latency priors measured in that run and what a user gives up.

    python -m evaluation ship results/eval/mt10-50 --out deploy/contracts/mt10.yaml

Policies outside the set are removed from the contract (Triton may still serve them; the router
will not route to them). The router keeps exactly one generalist per contract: when the set is
specialists only, the generalist stays as the fallback for unknown or low-confidence tasks and
the header says so. Paths stay relative to the contract's folder, as in the hand-written ones.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from evaluation.report import Report, build
from evaluation.tables import Cell


def _given_up(report: Report, removed: list[str]) -> list[str]:
    """Per task whose specialist leaves the contract: what the closed loop measured for it."""
    cells = {(c.task, c.arm): c for c in report.cells}
    lines = []
    for task, route in report.meta.specialist_for.items():
        if route not in removed:
            continue
        spec: Cell | None = cells.get((task, "specialist"))
        gen: Cell | None = cells.get((task, "generalist"))
        if spec is None or gen is None:
            continue
        lines.append(f"{task}: specialist {spec.successes}/{spec.episodes} vs generalist "
                     f"{gen.successes}/{gen.episodes} in closed loop; no specialist fallback")
    return lines


def shipped_contract(report: Report, base_path: Path) -> tuple[dict[str, Any], list[str]]:
    raw: dict[str, Any] = yaml.safe_load(base_path.read_text())
    out = copy.deepcopy(raw)
    chosen = set(report.decision.policy_set)
    generalist = report.meta.generalist
    keep = chosen | {generalist}  # the router's one generalist, whatever the set
    out["policies"] = [p for p in raw["policies"] if p["name"] in keep]
    removed = [p["name"] for p in raw["policies"] if p["name"] not in keep]
    served = report.meta.served_latency_ms
    for policy in out["policies"]:
        if policy["name"] in served:
            policy["expected_latency_ms"] = round(served[policy["name"]]["p90"], 3)
    if not any(p["kind"] == "specialist" for p in out["policies"]):
        out["routing"]["fallback_order"] = ["generalist", "hold"]
    out["version"] = f"{raw['panel']}-shipped-{report.meta.started[:10]}"
    d = report.decision
    notes = [f"policy set chosen: {', '.join(d.policy_set) or 'none'}"
             + ("" if generalist in chosen else f" (+ {generalist}, the required fallback)"),
             f"latency considered in the choice: {d.latency_considered}",
             f"tasks no set covers: {', '.join(d.uncovered) or 'none'}",
             f"routes removed: {', '.join(removed) or 'none'}"]
    notes += [f"given up: {line}" for line in _given_up(report, removed)]
    return out, notes


class NothingToShip(ValueError):
    """The run's decision covers no set of the contract's tasks: nothing can be shipped."""


def write(result: Path, out: Path, base: Path | None = None) -> Path:
    report = build(result)
    if report.decision.uncovered:
        raise NothingToShip(
            f"{result}: no policy set meets the contract on "
            f"{', '.join(report.decision.uncovered)}; {out} left unchanged")
    base = base or Path(report.meta.base_contract)
    contract, notes = shipped_contract(report, base)
    header = [
        f"# Deployment contract for `{contract['panel']}`, shipped from the evaluation's decision.",
        f"# Made by: python -m evaluation ship {result} --out {out}",
        f"# from the run started {report.meta.started} ({report.meta.episodes_per_cell} "
        f"episodes per cell, configurations of MT1 seed {report.meta.config_seed}).",
        "# expected_latency_ms: each route's p90 through Triton measured at the start of that run.",
        *(f"# - {n}" for n in notes),
        f"# Rule: {report.decision.rule}",
    ]
    out.write_text("\n".join(header) + "\n" + yaml.safe_dump(contract, sort_keys=False,
                                                              width=100))
    return out
