"""Latency PNG: latency over time, CDF and tail (1 - CDF) per route, with the budget marked."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: no display on CI or on the load box

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

from loadtest.records import Columns
from loadtest.scenario import SLA


def plot_latency(cols: Columns, sla: SLA, path: Path, title: str, ramp_s: float = 0.0) -> None:
    """Time series over the whole run (ramp shaded); CDF and tail over the measured window only,
    so they show the same requests as the summary."""
    fig, (ax_t, ax_cdf, ax_tail) = plt.subplots(1, 3, figsize=(17, 5))
    routes = sorted(set(cols.route[cols.ok].tolist()))
    measured = cols.scheduled_s >= ramp_s
    for route in routes:
        mask = cols.ok & (cols.route == route)
        ax_t.scatter(
            cols.scheduled_s[mask],
            cols.latency_ms[mask],
            s=2,
            alpha=0.5,
            label=route,
            rasterized=True,
        )
        srt = np.sort(cols.latency_ms[mask & measured])
        if srt.size == 0:
            continue
        frac = np.arange(1, srt.size + 1) / srt.size  # empirical CDF, step at each observation
        ax_cdf.step(srt, frac, where="post", label=f"{route} (n={srt.size})")
        tail = 1.0 - frac + 1.0 / srt.size  # P(latency >= x): stays > 0 for the log axis
        ax_tail.step(srt, tail, where="post", label=route)
    failed = ~cols.ok
    if failed.any():
        top = np.nanmax(cols.latency_ms) if np.isfinite(cols.latency_ms).any() else sla.budget_ms
        ax_t.scatter(
            cols.scheduled_s[failed],
            np.full(int(failed.sum()), max(top, sla.budget_ms) * 1.5),
            marker="x",
            s=8,
            color="red",
            label=f"errors ({int(failed.sum())})",
        )
    for ax in (ax_cdf, ax_tail):
        ax.axvline(
            sla.budget_ms, color="black", ls="--", lw=1, label=f"budget {sla.budget_ms:g} ms"
        )
        ax.set_xscale("log")
        ax.set_xlabel("latency from scheduled send (ms)")
        ax.grid(True, which="both", alpha=0.3)
    ax_t.axhline(sla.budget_ms, color="black", ls="--", lw=1)
    if ramp_s > 0:
        ax_t.axvspan(0, ramp_s, color="grey", alpha=0.15, label="ramp (not in summary)")
    ax_t.set_yscale("log")
    ax_t.set_xlabel("scheduled send time (s)")
    ax_t.set_ylabel("latency (ms)")
    ax_t.set_title("latency over time")
    ax_cdf.set_ylabel("fraction of OK responses <= x")
    ax_cdf.set_title("CDF per route")
    ax_tail.set_yscale("log")
    ax_tail.axhline(
        1.0 - sla.quantile_within_budget,
        color="grey",
        ls=":",
        lw=1,
        label=f"1 - {sla.quantile_within_budget:g}",
    )
    ax_tail.set_ylabel("fraction of OK responses >= x")
    ax_tail.set_title("tail")
    for ax in (ax_t, ax_cdf, ax_tail):
        for axis in (ax.xaxis, ax.yaxis):
            if axis.get_scale() == "log":  # plain numbers, not 2x10^1
                axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
                axis.set_major_formatter(FormatStrFormatter("%g"))
                axis.set_minor_formatter(NullFormatter())
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, markerscale=3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
