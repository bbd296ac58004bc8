"""A/B of `deadline_met` with and without the event loop's lag in the reply margin
(`ROUTER_MET_COUNTS_LOOP_LAG`): one benchmark stack, the router restarted per round (ABAB),
13 robots x 50 Hz over HTTP and gRPC for 20 s each; writes OUT/ab.json.

    .venv/bin/python scripts/ab_met_loop_lag.py results/ab-met
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from loadtest.bench.stack import ROBOT_KEY, BenchStack, settle

ROUNDS = ("false", "true", "false", "true")
KEYS = ("requests", "late_but_flagged_met", "server_reported_deadline_miss",
        "fraction_within_budget", "hold_share", "shed_share")


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    stack = BenchStack(out / "stack", router_env={"ROUTER_MAX_QUEUE_AGE_MS": "10"})
    rows: list[dict[str, Any]] = []
    with stack:
        for rnd, flag in enumerate(ROUNDS):
            stack.router_env["ROUTER_MET_COUNTS_LOOP_LAG"] = flag
            stack.restart_router(workers=1)
            settle(2)
            for transport, url in (("http", stack.router_url), ("grpc", stack.router_grpc)):
                d = out / f"{rnd}-{flag}-{transport}"
                subprocess.run([
                    sys.executable, "-m", "loadtest", "run", "loadtest/scenarios/default.yaml",
                    "--target", "router", "--transport", transport, "--url", url,
                    "--robots", "13", "--duration", "20", "--ramp", "3", "--api-key", ROBOT_KEY,
                    "--manifest", str(stack.manifest), "--out", str(d), "--quiet", "--no-plot",
                ], capture_output=True, check=False)
                overall = json.loads((d / "result.json").read_text())["summary"]["overall"]
                row = {"round": rnd, "loop_lag_in_margin": flag, "transport": transport,
                       **{k: overall[k] for k in KEYS},
                       "p50": overall["latency_ms"]["p50"], "p99": overall["latency_ms"]["p99"]}
                rows.append(row)
                print(row, flush=True)
                settle(2)
    (out / "ab.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
