"""Capacity of direct Triton and the router (gRPC, HTTP) alone, with the benchmark's scenario and
at least 3,000 requests per step (`--min-step-requests`): a quicker check than `make bench`.

    .venv/bin/python scripts/capacity_check.py OUT SCENARIO   # SCENARIO: a bench run's bench.yaml
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from loadtest.bench.stack import ROBOT_KEY, BenchStack, settle


def main(out: Path, scenario: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    stack = BenchStack(out / "stack")
    result: dict[str, Any] = {}
    with stack:
        paths = {"direct-grpc": ["--target", "direct", "--transport", "grpc",
                                 "--url", stack.triton_grpc],
                 "router-grpc": ["--target", "router", "--transport", "grpc",
                                 "--url", stack.router_grpc],
                 "router-http": ["--target", "router", "--transport", "http",
                                 "--url", stack.router_url]}
        for name, flags in paths.items():
            d = out / name
            subprocess.run([
                sys.executable, "-m", "loadtest", "capacity", str(scenario), *flags,
                "--start", "4", "--max-robots", "512", "--resolution", "1",
                "--step-duration", "15", "--step-ramp", "3", "--min-step-requests", "3000",
                "--api-key", ROBOT_KEY, "--manifest", str(stack.manifest), "--out", str(d),
                "--quiet", "--no-plot"], capture_output=True, check=False)
            doc = json.loads((d / "capacity.json").read_text())
            result[name] = {"capacity_robots": doc["capacity_robots"], "steps": [
                {k: s[k] for k in ("robots", "duration_s", "requests",
                                   "fraction_within_budget", "pass")} for s in doc["steps"]]}
            print(name, result[name], flush=True)
            settle(3)
    (out / "capacity.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
