from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path

import pytest

from policies.offline_eval import (
    COMBINED_POLICY,
    CSV_COLUMNS,
    CellOutcome,
    policy_names,
    tables,
    wilson_interval,
    write_matrix,
)


# Reference values from solving (k/n - p)^2 = z^2 p (1 - p) / n for p independently.
@pytest.mark.parametrize(
    ("successes", "n", "low", "high"),
    [
        (0, 30, 0.0, 0.11351),
        (30, 30, 0.88649, 1.0),
        (15, 30, 0.33154, 0.66846),
        (27, 30, 0.74379, 0.96540),
        (1, 1, 0.20654, 1.0),
    ],
)
def test_wilson_interval_known_values(successes: int, n: int, low: float, high: float) -> None:
    lo, hi = wilson_interval(successes, n)
    assert lo == pytest.approx(low, abs=1e-4)
    assert hi == pytest.approx(high, abs=1e-4)


def test_wilson_interval_properties() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    for k in range(31):
        lo, hi = wilson_interval(k, 30)
        assert 0.0 <= lo <= k / 30 <= hi <= 1.0
        mirror_lo, mirror_hi = wilson_interval(30 - k, 30)
        assert lo == pytest.approx(1 - mirror_hi) and hi == pytest.approx(1 - mirror_lo)


def test_policy_names_cover_the_cross_product() -> None:
    assert policy_names(("a-v3", "b-v3")) == [
        "generalist",
        "specialist_a_v3",
        "specialist_b_v3",
        COMBINED_POLICY,
    ]


def test_matrix_files_have_the_documented_columns(tmp_path: Path) -> None:
    outcomes = [
        CellOutcome("reach-v3", "generalist", 30, 29),
        CellOutcome("reach-v3", "specialist_reach_v3", 30, 30),
        CellOutcome("reach-v3", "expert", 30, 30),
    ]
    matrix, expert = tables("tiny", outcomes)
    write_matrix(tmp_path, matrix)

    document = json.loads((tmp_path / "offline_matrix.json").read_text())
    assert set(document) == {"panel", "source", "created", "rows"}
    assert document["panel"] == "tiny" and document["source"] == "offline"
    datetime.fromisoformat(document["created"])
    assert [r["policy"] for r in document["rows"]] == ["generalist", "specialist_reach_v3"]
    row = document["rows"][0]
    assert set(row) == {"task", "policy", "episodes", "successes", "rate", "ci95"}
    assert row["episodes"] == 30 and row["successes"] == 29
    assert row["rate"] == pytest.approx(29 / 30, abs=1e-4) and len(row["ci95"]) == 2
    assert [r.policy for r in expert.rows] == ["expert"]

    with (tmp_path / "offline_matrix.csv").open() as handle:
        rows = list(csv.reader(handle))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert rows[1][:4] == ["reach-v3", "generalist", "30", "29"]
    assert float(rows[1][5]) == pytest.approx(row["ci95"][0])


def test_off_diagonal_cells_are_subsampled_the_rest_kept(ci_artifacts: Path) -> None:
    """panel30's recipe: a specialist on another task gets only the first few configurations;
    the diagonal, the generalist and the classifier-conditioned generalist keep every one."""
    from dataclasses import replace

    from policies.offline_eval import EvalSpec, evaluate_task
    from policies.panel import get_panel

    panel = replace(get_panel("ci"), off_diagonal_episodes=2)
    spec = EvalSpec(panel, episodes_per_cell=3, max_steps=5, include_expert=False)
    episodes = {o.policy: o.episodes for o in evaluate_task(ci_artifacts, spec, "reach-v3")}
    assert episodes.pop("specialist_reach_v3") == 3
    assert episodes.pop("generalist") == 3 and episodes.pop(COMBINED_POLICY) == 3
    assert episodes == {"specialist_pick_place_v3": 2, "specialist_peg_insert_side_v3": 2}
