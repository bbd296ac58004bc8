"""report.md's "Evaluation overhead": the evaluation's own time per control step, apart from the
stack's round trip, so a latency figure can be told to be the stack's and not the harness's."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from evaluation.meta import RunMeta
from evaluation.records import EpisodeResult
from evaluation.stats import percentile


@dataclass(frozen=True)
class Overhead:
    name: str
    steps: int  # steps with the evaluation's time recorded
    rtt_p50_ms: float  # robot-measured round trip of replied steps (the matrix's latency)
    rtt_p99_ms: float
    harness_p50_ms: float  # client-side work per step outside the round trip
    harness_p99_ms: float
    overran: float  # share of ticks whose work + round trip ran past the control period
    processes: int  # distinct robot processes that ran these episodes


def overhead(name: str, episodes: Sequence[EpisodeResult]) -> Overhead:
    timed = [e for e in episodes if e.harness_ms]
    harness = [v for e in timed for v in e.harness_ms]
    overran = [v for e in timed for v in e.overran]
    rtts = [v for e in timed for v in e.replied_latencies()]
    return Overhead(
        name=name, steps=len(harness),
        rtt_p50_ms=percentile(rtts, 50), rtt_p99_ms=percentile(rtts, 99),
        harness_p50_ms=percentile(harness, 50), harness_p99_ms=percentile(harness, 99),
        overran=sum(overran) / len(overran) if overran else math.nan,
        processes=len({e.pid for e in timed if e.pid}),
    )


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f}"


def overhead_section(meta: RunMeta, episodes: Sequence[EpisodeResult]) -> list[str]:
    rows = [overhead(a.name, [e for e in episodes if e.arm == a.name]) for a in meta.arms]
    total = overhead("all arms", episodes)
    if not total.steps:
        return ["Not recorded in this run (its episodes were written before the evaluation "
                "kept its own time per step)."]
    period = f"{1000 / meta.control_hz:g} ms" if meta.control_hz > 0 else "none (unpaced)"
    table = [[o.name, o.steps, _ms(o.rtt_p50_ms), _ms(o.rtt_p99_ms), _ms(o.harness_p50_ms),
              _ms(o.harness_p99_ms), "-" if math.isnan(o.overran) else f"{100 * o.overran:.1f}%",
              o.processes] for o in [*rows, total] if o.steps]
    return [
        "Each robot runs in its own process (its own env, transport, event loop and trace "
        "file), so no robot's simulation runs while another robot's reply waits. The round "
        "trip is the stack's, as in the matrix; the evaluation's own time is the rest of each "
        "control step: observation encoding, the Meta-World step, bookkeeping and trace "
        f"writing. Control period: {period}; an overrun tick (its work plus round trip past "
        "the period) starts the next tick at once, without catch-up.", "",
        "| arm | steps | round trip p50 ms | round trip p99 ms | evaluation p50 ms "
        "| evaluation p99 ms | ticks overrun | robot processes |",
        "|---|---|---|---|---|---|---|---|",
        *("| " + " | ".join(str(v) for v in row) + " |" for row in table),
    ]
