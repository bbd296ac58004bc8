"""The result folder of a constructed run: files, their columns, and numbers traced back to the
episodes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from eval_testkit import TASKS, constructed_run

from evaluation.attribution import LABELS
from evaluation.counterfactual import COUNTERFACTUAL_LABELS
from evaluation.decision import DECISION_RULE
from evaluation.meta import read_meta, write_meta
from evaluation.report import build, matrix_text
from evaluation.tables import CONFUSION_COLUMNS, MATRIX_COLUMNS

REQUIRED_MATRIX = {"task", "arm", "episodes", "successes", "success_rate", "ci95_lo", "ci95_hi",
                   "p50_latency_ms", "p99_latency_ms", "deadline_miss_rate", "fallback_rate"}
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("run")
    constructed_run(folder, n=10)
    build(folder)
    return folder


@pytest.fixture(scope="module")
def built_reference_ok(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference arm solves every configuration; the run records its configuration seeds."""
    folder = tmp_path_factory.mktemp("run_ref")
    meta, _ = constructed_run(folder, n=10, reference_ok=True)
    meta.config_seed, meta.calibration_config_seed = 2000, 1000
    meta.config_ids = {t: [f"{t}:e{i}" for i in range(10)] for t in TASKS}
    meta.calibration_config_ids = {t: [f"{t}:c{i}" for i in range(50)] for t in TASKS}
    write_meta(folder / "run.json", meta)
    build(folder)
    return folder


@pytest.fixture(scope="module")
def built_rules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """No specialist arm: no counterfactual reference, so the symptom rules are used."""
    folder = tmp_path_factory.mktemp("run_rules")
    constructed_run(folder, n=10, skip=("specialist",))
    build(folder)
    return folder


def failures(folder: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (folder / "failures.jsonl").read_text().splitlines()]


def labels_by_arm(folder: Path) -> dict[str, set[str]]:
    by_arm: dict[str, set[str]] = {}
    for r in failures(folder):
        by_arm.setdefault(str(r["arm"]), set()).add(str(r["label"]))
    return by_arm


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open() as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def test_files_exist(built: Path) -> None:
    for name in ("matrix.csv", "confusion.csv", "routes.csv", "failures.jsonl", "report.md"):
        assert (built / name).is_file(), name
    for plot in ("success_heatmap", "confusion_matrix", "latency_cdf"):
        assert (built / "plots" / f"{plot}.png").read_bytes().startswith(PNG)


def test_matrix_columns_and_numbers(built: Path) -> None:
    columns, rows = read_csv(built / "matrix.csv")
    assert tuple(columns) == MATRIX_COLUMNS and set(columns) >= REQUIRED_MATRIX
    assert len(rows) == 6 * len(TASKS)  # arm × task
    cell = next(r for r in rows if r["arm"] == "router" and r["task"] == "reach-v3")
    assert (int(cell["episodes"]), int(cell["successes"])) == (10, 8)
    assert float(cell["success_rate"]) == 0.8
    assert float(cell["ci95_lo"]) == pytest.approx(0.4902, abs=1e-4)
    assert float(cell["ci95_hi"]) == pytest.approx(0.9433, abs=1e-4)
    # One of the ten episodes had 30 of 100 steps late.
    assert float(cell["deadline_miss_rate"]) == pytest.approx(30 / 1000)
    # rtt = 5 + (step % 10): p50 over all replied steps is 9.5 ms.
    assert float(cell["p50_latency_ms"]) == pytest.approx(9.5)


def test_confusion_counts_the_hidden_arm(built: Path) -> None:
    columns, rows = read_csv(built / "confusion.csv")
    assert tuple(columns) == CONFUSION_COLUMNS
    wrong = [r for r in rows if r["arm"] == "router_hidden" and r["true_task"] == "reach-v3"
             and r["routed_task"] == "pick-place-v3"]
    assert len(wrong) == 1 and int(wrong[0]["steps"]) == 100  # 2 episodes × 50 steps


def test_failures_one_label_each(built: Path) -> None:
    records = failures(built)
    assert len(records) == 6 * len(TASKS) * 2  # two failures per cell
    assert {r["label"] for r in records} <= set(COUNTERFACTUAL_LABELS)
    assert {r["method"] for r in records} == {"counterfactual"}
    for r in records:
        assert r["evidence"] and str(r["trace"]).endswith(".mcap")
    # Every arm, the reference included, fails on the same two configurations: counterfactually
    # neither the hidden task's misroutes nor the late steps nor the perturbation made the
    # difference, so all of it is the models' (the symptom rules would blame the router).
    by_arm = labels_by_arm(built)
    assert by_arm["generalist"] == {"evaluation_error", "model_error"}
    for arm in ("specialist", "router", "router_hidden", "action_delay", "stale_calibration"):
        assert by_arm[arm] == {"model_error"}, arm
    subs = {r["subcategory"] for r in records if r["arm"] == "generalist"
            and r["label"] == "model_error"}
    assert subs == {"control"}  # 60 of 100 steps at the bounds


def test_counterfactual_labels_with_a_successful_reference(built_reference_ok: Path) -> None:
    by_arm = labels_by_arm(built_reference_ok)
    assert "specialist" not in by_arm
    assert by_arm["router_hidden"] == {"router_error"}
    assert by_arm["action_delay"] == {"controller_mismatch"}
    assert by_arm["stale_calibration"] == {"stale_calibration"}
    assert by_arm["generalist"] == {"evaluation_error", "model_error"}  # its policy, by contract
    # Config n-1 was late; config n-2 failed with nothing recorded that differs: not guessed.
    assert by_arm["router"] == {"deadline_miss", "unattributed"}
    late = next(r for r in failures(built_reference_ok)
                if r["arm"] == "router" and r["label"] == "deadline_miss")
    evidence = late["evidence"]
    assert isinstance(evidence, dict)
    assert evidence["reference_episode"] == f"specialist.{late['task']}.009"
    assert evidence["factors"] == ["deadline_miss"]


def test_rules_fallback_without_a_reference_arm(built_rules: Path) -> None:
    records = failures(built_rules)
    assert {r["method"] for r in records} == {"rules"}
    assert {r["label"] for r in records} <= set(LABELS)
    by_arm = labels_by_arm(built_rules)
    assert by_arm["router_hidden"] == {"router_error"}
    assert by_arm["action_delay"] == {"controller_mismatch"}
    assert by_arm["stale_calibration"] == {"stale_calibration"}
    assert by_arm["generalist"] == {"evaluation_error", "model_error"}
    assert by_arm["router"] == {"deadline_miss", "model_error"}
    text = (built_rules / "report.md").read_text()
    assert "Method: **rule-based fallback** (no clean reference arm (no `specialist` arm" in text
    for label in LABELS:
        assert f"**{label}**" in text


def test_report_says_which_attribution_method(built: Path, built_reference_ok: Path) -> None:
    for folder in (built, built_reference_ok):
        text = (folder / "report.md").read_text()
        assert "Method: **counterfactual** (counterfactual against arm `specialist`" in text
        for label in COUNTERFACTUAL_LABELS:
            assert f"**{label}**" in text
    assert "Model errors by sub-category" in (built / "report.md").read_text()


def test_report_records_the_configuration_seeds(built: Path, built_reference_ok: Path) -> None:
    text = (built_reference_ok / "report.md").read_text()
    assert ("MT1 seed 2000 for this evaluation, seed 1000 for the calibration table" in text
            and "30 evaluation configurations checked against all 150" in text)
    assert "seed not recorded in run.json" in (built / "report.md").read_text()
    assert read_meta(built_reference_ok / "run.json").config_seed == 2000


def test_perturbations_are_paired_by_configuration(built: Path) -> None:
    text = (built / "report.md").read_text()
    section = text.split("## Perturbations against the router arm", 1)[1].split("## ", 1)[0]
    assert "exact two-sided McNemar" in section
    # action_delay and router fail on the same two configurations: no discordant pair.
    assert "| action_delay | reach-v3 | 80% | 80% | +0 [-" in section
    assert "0/0, p = 1 |" in section


def test_report_ends_with_the_computed_decision(built: Path) -> None:
    text = (built / "report.md").read_text()
    decision = text.split("## Decision", 1)[1]
    assert "## " not in decision  # the last section
    # 80% everywhere for every arm, from 10 episodes: the point estimate reaches the 80% and
    # 70% targets, but the 95% lower bound (49%) reaches none, so every task is uncovered.
    assert "uncovered: reach-v3, pick-place-v3, peg-insert-side-v3" in decision
    assert "95% lower bound 49.0% < target 70%" in decision
    assert "does not beat the generalist anywhere" in decision
    assert f"Decision rule: {DECISION_RULE}" in decision
    assert "router_calibration_stale` = 1 at the arm's end for 1" in text


def test_matrix_text_lists_every_cell(built: Path) -> None:
    _, rows = read_csv(built / "matrix.csv")
    from evaluation.report import rebuild

    report = rebuild(built)
    text = matrix_text(report.cells)
    assert len(text.splitlines()) == len(rows) + 2


def test_publish_copies_the_report_without_traces(built: Path, tmp_path: Path) -> None:
    from evaluation.publish import publish

    dest = tmp_path / "docs"
    publish(built, dest)
    for name in ("report.md", "matrix.csv", "confusion.csv", "failures.jsonl",
                 "episodes.jsonl.gz", "plots/success_heatmap.png", "README.md"):
        assert (dest / name).is_file(), name
    readme = (dest / "README.md").read_text()
    assert "python -m evaluation run --constructed" in readme and "2026-01-01" in readme
    assert not list(dest.rglob("*.mcap"))


def test_router_against_generalist_is_paired_in_the_decision(built: Path) -> None:
    decision = (built / "report.md").read_text().split("## Decision", 1)[1]
    assert decision.count("paired by configuration, exact McNemar p = 1") == len(TASKS)
