"""Copy a finished run's report into the docs, traces left out (they stay in the result folder):

    python -m evaluation publish results/eval/ci-20 docs/results/ci
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

from evaluation.meta import read_meta
from evaluation.report import EPISODES_FILE, META_FILE

FILES = ("report.md", "matrix.csv", "confusion.csv", "routes.csv", "failures.jsonl",
         "calibration_closed_loop.json", META_FILE)


def publish(result: Path, dest: Path, note: str = "") -> list[Path]:
    meta = read_meta(result / META_FILE)
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for name in FILES:
        if (result / name).is_file():
            written.append(Path(shutil.copy2(result / name, dest / name)))
    if (result / "contracts").is_dir():  # what each arm was served under (small YAML files)
        shutil.copytree(result / "contracts", dest / "contracts", dirs_exist_ok=True)
        written.append(dest / "contracts")
    (dest / "plots").mkdir(exist_ok=True)
    for png in sorted((result / "plots").glob("*.png")):
        written.append(Path(shutil.copy2(png, dest / "plots" / png.name)))
    # The raw per-episode records behind every number, compressed (per-step lists inside).
    with (result / EPISODES_FILE).open("rb") as src, \
            gzip.open(dest / f"{EPISODES_FILE}.gz", "wb") as out:
        shutil.copyfileobj(src, out)
    written.append(dest / f"{EPISODES_FILE}.gz")
    readme = dest / "README.md"
    readme.write_text("\n".join([
        f"# Closed-loop evaluation of the `{meta.panel}` panel",
        "",
        f"Produced on {meta.started[:10]} (run from {meta.started} to {meta.finished}, "
        f"{meta.total_s:.0f} s) from the repository root by:",
        "",
        "```",
        meta.command.replace("python ", ".venv/bin/python ", 1),
        "```",
        "",
        f"then copied here with `python -m evaluation publish {result} {dest}`.",
        "",
        *([note, ""] if note else []),
        "- `report.md`: the report (setup, matrix, router confusion, perturbations, stale "
        "calibration, failure attribution with its rules, calibration loop, decision)",
        "- `matrix.csv` (task × arm), `confusion.csv` (true task × task acted on), "
        "`routes.csv`, `failures.jsonl` (one label and its evidence per failed episode)",
        "- `episodes.jsonl.gz`: the raw per-episode results; `run.json`: settings, contracts "
        "and router metrics per arm; `calibration_closed_loop.json`: the closed-loop table",
        "- MCAP traces (one per episode) stay in the result folder "
        f"(`{result}/traces`); read them with `python -m evaluation.traces`.",
        "",
    ]))
    written.append(readme)
    return written
