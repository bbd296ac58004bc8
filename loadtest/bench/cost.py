"""What each request costs the router, from the router processes' own CPU counters, and what a
second worker process buys: the benchmark's steps for issue 9.

CPU is read from `/proc/<pid>/stat` (utime + stime) of the router process and its children
(the workers, when `ROUTER_WORKERS` > 1) before and after a run, divided by the requests the
run completed; the same for the floor proxy, a minimal FastAPI endpoint forwarding each
request with one unary gRPC call (`loadtest/floor_proxy.py`), and for the gRPC transport alone
(`loadtest/grpc_floor.py`, answers at once), measured in the same run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from loadtest.bench.runs import load_json, run_row
from loadtest.bench.stack import settle
from loadtest.bench.targets import FLOOR, GRPC_FLOOR

CPU_RATES_ROBOTS = (8, 20)  # x 50 Hz: 400 and 1,000 requests/s, the rates the issue quotes
SESSION_PATHS = ("router-http", "router-grpc", "router-ws", "router-grpc-stream",
                 "router-openpi", "router-kserve-http", "router-kserve-grpc")
_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """`pid` and every descendant (uvicorn's workers are children of the supervisor)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` and its descendants (those alive now)."""
    total = 0.0
    for p in process_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) * _TICK_S  # utime, stime
    return total


def measured_run(b: Any, name: str, pid: int, flags: list[str], robots: int, d: Path
                 ) -> dict[str, Any]:
    """One run with the server's CPU read around it; the row gains `cpu_ms_per_request`."""
    before = cpu_seconds(pid)
    b.run(name, ["run", str(b.scenario), *flags, "--robots", str(robots), "--duration",
                 str(b.timing.cpu_s), *b.flags(d, plot=False)], d)
    used = cpu_seconds(pid) - before
    result = load_json(d / "result.json")
    row = run_row(result, name, b.out, d)
    completed = result["run"].get("completed") or row["requests"]
    row |= {"cpu_s": round(used, 3), "completed": completed,
            "cpu_ms_per_request": round(used / completed * 1000, 4) if completed else None}
    return row


def cpu_per_request(b: Any) -> dict[str, Any]:
    """Router CPU per request at 400 and 1,000 requests/s over each transport, next to the
    floor proxy at the same rates."""
    pid = b.stack.router_pid
    if pid is None:
        raise RuntimeError("router not running")
    rows = []
    with b.stack.floor_proxy() as (url, floor_pid), b.stack.grpc_floor() as (g_url, g_pid):
        for robots in CPU_RATES_ROBOTS:
            d = b.out / "cpu" / f"floor-{robots}"
            rows.append(measured_run(b, FLOOR, floor_pid, ["--target", "baseline", "--url",
                                                             url], robots, d))
            settle(b.timing.settle_s)
            d = b.out / "cpu" / f"grpc-floor-{robots}"
            rows.append(measured_run(b, GRPC_FLOOR, g_pid, [
                "--target", "router", "--transport", "grpc", "--url", g_url], robots, d))
            settle(b.timing.settle_s)
            for path in SESSION_PATHS:
                d = b.out / "cpu" / f"{path}-{robots}"
                rows.append(measured_run(b, path, pid, b.target_flags(path), robots, d))
                settle(b.timing.settle_s)
    return {"rates_robots": list(CPU_RATES_ROBOTS), "rows": rows}


def workers(b: Any, capacity: Any) -> dict[str, Any]:
    """The router restarted with 2 worker processes: its HTTP and gRPC capacity, and CPU per
    request at 400 requests/s, next to the 1-worker numbers of the same run."""
    out: dict[str, Any] = {}
    b.stack.restart_router(workers=2)
    try:
        settle(b.timing.settle_s)
        out["capacity"] = capacity(b, ("router-http", "router-grpc"), folder="capacity-2w")
        pid = b.stack.router_pid
        out["cpu"] = [measured_run(b, f"{path} (2 workers)", pid, b.target_flags(path),
                                   CPU_RATES_ROBOTS[0], b.out / "cpu-2w" / path)
                      for path in ("router-http", "router-grpc")]
    finally:
        b.stack.restart_router(workers=1)
    return out
