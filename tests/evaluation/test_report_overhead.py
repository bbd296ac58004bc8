"""report.md's evaluation-overhead section: the evaluation's own time per step next to the
stack's round trip, from the episode records alone."""

from __future__ import annotations

from pathlib import Path

from eval_testkit import constructed_run, episode

from evaluation.records import EpisodeResult
from evaluation.report import build
from evaluation.report_overhead import overhead, overhead_section


def timed(e: EpisodeResult, harness: list[float], overran: int, pid: int) -> EpisodeResult:
    return e.model_copy(update={"harness_ms": harness, "pid": pid,
                                "overran": [i < overran for i in range(len(harness))]})


def test_overhead_is_kept_apart_from_the_round_trip(tmp_path: Path) -> None:
    meta, _ = constructed_run(tmp_path, n=2)
    # rtt 5..14 ms (eval_testkit), harness 0.5 ms on 9 steps of 10 and 3 ms on one.
    harness = [0.5] * 9 + [3.0]
    eps = [timed(episode(arm="router", steps=10, index=i), harness, overran=i, pid=100 + i)
           for i in range(2)]
    o = overhead("router", eps)
    assert (o.steps, o.processes) == (20, 2)
    assert o.harness_p50_ms == 0.5 and round(o.harness_p99_ms, 3) == 3.0
    assert o.rtt_p50_ms == 9.5 and o.overran == 1 / 20
    section = "\n".join(overhead_section(meta, eps))
    assert "| router | 20 | 9.50 | 14.00 | 0.50 | 3.00 | 5.0% | 2 |" in section
    assert "| all arms | 20 |" in section and "| generalist |" not in section  # no steps
    assert "Control period: 20 ms" in section


def test_a_run_without_the_overhead_says_so(tmp_path: Path) -> None:
    constructed_run(tmp_path, n=2)
    build(tmp_path)
    text = (tmp_path / "report.md").read_text()
    section = text.split("## Evaluation overhead", 1)[1].split("## ", 1)[0]
    assert "Not recorded in this run" in section
    assert "## Task × arm matrix" in text and "## What the router did" in text
