"""PNG plots of the report, from the same tables: success heatmap (task × arm), router confusion
(true task × task acted on, per arm that hid the task), latency CDF per route."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a display
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import FixedLocator, NullFormatter, ScalarFormatter

from evaluation.stats import ecdf
from evaluation.tables import Cell

MS_TICKS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)


def success_heatmap(path: Path, cells: Sequence[Cell], tasks: Sequence[str],
                    arms: Sequence[str]) -> None:
    grid = np.full((len(tasks), len(arms)), np.nan)
    by = {(c.task, c.arm): c for c in cells}
    for i, t in enumerate(tasks):
        for j, a in enumerate(arms):
            if (t, a) in by:
                grid[i, j] = by[t, a].success_rate
    fig, ax = plt.subplots(figsize=(1.3 * len(arms) + 3, 0.55 * len(tasks) + 2))
    image = ax.imshow(grid, vmin=0, vmax=1, cmap="RdYlGn", aspect="auto")
    for i, t in enumerate(tasks):
        for j, a in enumerate(arms):
            if (t, a) in by:
                c = by[t, a]
                ax.text(j, i, f"{c.success_rate:.0%}\n[{c.ci95_lo:.0%},{c.ci95_hi:.0%}]",
                        ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(arms)), arms, rotation=35, ha="right")
    ax.set_yticks(range(len(tasks)), tasks)
    ax.set_title("Closed-loop success rate (95% Wilson interval)")
    fig.colorbar(image, ax=ax, fraction=0.03)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def confusion_matrix(path: Path, rows: Sequence[dict[str, object]], tasks: Sequence[str],
                     arms: Sequence[str]) -> None:
    """One panel per arm; rows are true tasks, columns the task the router acted on."""
    arms = [a for a in arms if any(r["arm"] == a for r in rows)] or ["(none)"]
    fig, axes = plt.subplots(1, len(arms), figsize=(3.2 * len(arms) + 1.5,
                                                    0.5 * len(tasks) + 2.5), squeeze=False)
    index = {t: i for i, t in enumerate(tasks)}
    for ax, arm in zip(axes[0], arms, strict=True):
        grid = np.zeros((len(tasks), len(tasks)))
        for r in rows:
            if r["arm"] == arm and r["true_task"] in index and r["routed_task"] in index:
                grid[index[str(r["true_task"])], index[str(r["routed_task"])]] = float(
                    str(r["share"]))
        ax.imshow(grid, vmin=0, vmax=1, cmap="Blues")
        for i in range(len(tasks)):
            for j in range(len(tasks)):
                ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if grid[i, j] > 0.6 else "black")
        ax.set_xticks(range(len(tasks)), tasks, rotation=40, ha="right", fontsize=7)
        ax.set_yticks(range(len(tasks)), tasks, fontsize=7)
        ax.set_xlabel("task the router acted on")
        ax.set_title(arm, fontsize=9)
    axes[0][0].set_ylabel("true task")
    fig.suptitle("Router confusion (share of the true task's steps)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def latency_cdf(path: Path, panels: dict[str, dict[str, list[float]]], deadline_ms: float
                ) -> None:
    """`panels`: title -> route -> robot-measured round trips (ms)."""
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.2), squeeze=False)
    for ax, (title, by_route) in zip(axes[0], panels.items(), strict=True):
        for route, values in sorted(by_route.items()):
            if values:
                xs, ys = ecdf(values)
                ax.step(xs, ys, where="post", label=f"{route} (n={len(values)})")
        ax.axvline(deadline_ms, color="red", linestyle="--", linewidth=1,
                   label=f"deadline {deadline_ms:g} ms")
        ax.set_xscale("log")
        # Plain millisecond ticks: matplotlib's default 2×10^0-style minor labels overlap.
        ax.xaxis.set_major_locator(FixedLocator(MS_TICKS))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("round trip seen by the robot (ms, log)")
        ax.set_ylabel("fraction of steps ≤ x")
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
