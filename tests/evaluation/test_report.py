"""The result folder of a constructed run: files, their columns, and numbers traced back to the
episodes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from eval_testkit import TASKS, constructed_run

from evaluation.attribution import LABELS
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
    records = [json.loads(line) for line in (built / "failures.jsonl").read_text().splitlines()]
    assert len(records) == 6 * len(TASKS) * 2  # two failures per cell
    assert {r["label"] for r in records} <= set(LABELS)
    by_arm: dict[str, set[str]] = {}
    for r in records:
        by_arm.setdefault(r["arm"], set()).add(r["label"])
        assert r["evidence"] and r["trace"].endswith(".mcap")
    assert by_arm["router_hidden"] == {"router_error"}
    assert by_arm["action_delay"] == {"controller_mismatch"}
    assert by_arm["stale_calibration"] == {"stale_calibration"}
    assert by_arm["generalist"] == {"evaluation_error", "model_error"}
    assert by_arm["router"] == {"deadline_miss", "model_error"}


def test_report_ends_with_the_computed_decision(built: Path) -> None:
    text = (built / "report.md").read_text()
    decision = text.split("## Decision", 1)[1]
    assert "## " not in decision  # the last section
    # 80% everywhere for every arm: the generalist meets pick-place (80%) and peg (70%) but not
    # reach (90%), and neither does the specialist, so reach is uncovered.
    assert "uncovered: reach-v3" in decision
    assert "does not beat the generalist anywhere" in decision
    assert "router_calibration_stale` = 1 at the arm's end for 1" in text
    for label in LABELS:
        assert f"**{label}**" in text


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
