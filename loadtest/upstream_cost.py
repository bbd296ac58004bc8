"""Client CPU per Triton call through each of the router's upstreams, against a running Triton:
the measurement behind the router's default (KServe v2 HTTP on raw keep-alive connections
rather than grpc.aio, unary or on one `ModelStreamInfer` stream). Sequential calls, one row
(and a batch of 8), the router's own upstream classes on uvloop, CPU from `getrusage` of this
process; with `--server-pid`, also Triton's (that process and its backend stubs, /proc).

    python -m loadtest.upstream_cost --http 127.0.0.1:8000 --grpc 127.0.0.1:8001 \\
        --model specialist_reach_v3 --calls 1000 --server-pid "$(pgrep -x tritonserver)" \\
        --out upstream-cost.json
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np
import orjson
import uvloop

from loadtest.bench.cost import cpu_seconds
from router_service.upstream import TritonUpstream, Upstream
from router_service.upstream_http import TritonHttpUpstream
from router_service.upstream_stream import TritonStreamUpstream


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure(upstream: Upstream, model: str, calls: int, rows: int,
                  server_pid: int | None = None) -> dict[str, float]:
    obs = np.zeros((rows, 39), dtype=np.float32)
    for _ in range(50):  # connections, channel and Triton's stubs warm
        await upstream.infer(model, obs, None, 1.0)
    server = cpu_seconds(server_pid) if server_pid else 0.0
    cpu, wall = _cpu_s(), time.perf_counter()
    for _ in range(calls):
        await upstream.infer(model, obs, None, 1.0)
    cpu, wall = _cpu_s() - cpu, time.perf_counter() - wall
    out = {"rows": rows, "calls": calls, "cpu_ms_per_call": cpu / calls * 1000,
           "wall_ms_per_call": wall / calls * 1000}
    if server_pid:
        out["server_cpu_ms_per_call"] = (cpu_seconds(server_pid) - server) / calls * 1000
    return out


async def run(args: argparse.Namespace) -> dict[str, object]:
    out: dict[str, object] = {"model": args.model, "calls": args.calls, "results": {}}
    results: dict[str, list[dict[str, float]]] = {}
    for name, upstream in (("http", TritonHttpUpstream(args.http)),
                           ("grpc", TritonUpstream(args.grpc)),
                           ("grpc-stream", TritonStreamUpstream(args.grpc))):
        results[name] = [await measure(upstream, args.model, args.calls, rows, args.server_pid)
                         for rows in (1, 8)]
        await upstream.close()
    out["results"] = results
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtest.upstream_cost", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--http", default="127.0.0.1:8000")
    p.add_argument("--grpc", default="127.0.0.1:8001")
    p.add_argument("--model", default="specialist_reach_v3")
    p.add_argument("--calls", type=int, default=1000)
    p.add_argument("--server-pid", type=int, help="tritonserver's pid: its CPU per call too")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    doc = uvloop.run(run(args))
    text = orjson.dumps(doc, option=orjson.OPT_INDENT_2)
    if args.out:
        args.out.write_bytes(text)
    print(text.decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
