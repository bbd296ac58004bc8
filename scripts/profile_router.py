"""The benchmark's py-spy profile of the router alone, over one transport (quicker than
`make bench`): the bench's stack, scenario and `steps.profile_router`, at ROBOTS x 50 Hz.

    .venv/bin/python scripts/profile_router.py OUT router-grpc 6   # or router-http
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from loadtest.bench import profile, steps
from loadtest.bench.runs import LoadtestRunner, Timing
from loadtest.bench.stack import BenchStack


def main(out: Path, path: str, robots: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    stack = BenchStack(out / "stack")
    runner = LoadtestRunner(out)
    with stack:
        bench = steps.Bench(out, stack, Timing.full(), runner)
        steps.warmup(bench)
        summary = steps.profile_router(bench, robots, path)
    summary["commands"] = runner.commands
    (out / "profile-summary.json").write_text(json.dumps(summary, indent=1))
    print(profile.format_markdown(summary))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]))
