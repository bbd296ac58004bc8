"""Latency terms measured, not hand-set: each route's ensemble through the running Triton.

    python -m evaluation.latency_terms --artifacts build/models/mt10 --triton 127.0.0.1:8000

Sequential calls of one row with the router's own upstream (KServe v2 HTTP, binary tensors), so
the number is what the router would see on an idle route: preprocess, policy and postprocess
plus Triton's ensemble scheduling, not the bare ONNX compute of the card's `latency`. The result
goes into each policy's model card (`serving_latency`) and its p90 becomes the route's
`expected_latency_ms` in the contracts the evaluation derives (the router's own estimator then
takes over from live samples).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from policies.card import ModelCard, ServingLatencyRecord
from policies.jsonio import read_json, write_json
from policies.serving.manifest import load_artifacts
from router_service.upstream import TritonUpstream, Upstream
from router_service.upstream_http import TritonHttpUpstream

WARMUP_CALLS = 30  # connections, Triton's stubs and ORT's first runs


def upstream_for(triton_http: str | None, triton_grpc: str) -> tuple[Upstream, str]:
    """The router's default upstream (HTTP) when Triton's HTTP address is known, else gRPC."""
    if triton_http:
        return TritonHttpUpstream(triton_http), "KServe v2 HTTP"
    return TritonUpstream(triton_grpc), "KServe v2 gRPC"


async def _measure_route(upstream: Upstream, protocol: str, route: str, obs_dim: int,
                         n_tasks: int | None, calls: int) -> ServingLatencyRecord:
    obs = np.zeros((1, obs_dim), dtype=np.float32)
    conditioning = None
    if n_tasks is not None:
        conditioning = np.zeros((1, n_tasks), dtype=np.float32)
        conditioning[0, 0] = 1.0
    for _ in range(WARMUP_CALLS):
        await upstream.infer(route, obs, conditioning, 2.0)
    samples = np.empty(calls)
    for i in range(calls):
        start = time.perf_counter_ns()
        await upstream.infer(route, obs, conditioning, 2.0)
        samples[i] = (time.perf_counter_ns() - start) / 1e6
    p50, p90, p99 = (round(float(v), 4) for v in np.percentile(samples, [50, 90, 99]))
    return ServingLatencyRecord(
        runtime=f"Triton ensemble via {protocol} (the router's upstream class), sequential",
        calls=calls, batch_size=1, p50_ms=p50, p90_ms=p90, p99_ms=p99,
        measured=datetime.now(UTC).isoformat(timespec="seconds"),
        load_average=[round(v, 2) for v in os.getloadavg()])


async def measure(artifacts_dir: Path, triton_http: str | None, triton_grpc: str = "",
                  calls: int = 300) -> dict[str, ServingLatencyRecord]:
    """route -> its measured serving latency, for every policy the artifacts serve."""
    artifacts = load_artifacts(artifacts_dir)
    m = artifacts.manifest
    upstream, protocol = upstream_for(triton_http, triton_grpc)
    try:
        out = {}
        for policy in artifacts.policies:
            n_tasks = len(m.tasks) if policy.entry.kind == "generalist" else None
            out[policy.entry.name] = await _measure_route(
                upstream, protocol, policy.entry.name, m.obs_dim, n_tasks, calls)
        return out
    finally:
        await upstream.close()


def write_cards(artifacts_dir: Path, measured: dict[str, ServingLatencyRecord]) -> None:
    for route, record in measured.items():
        path = artifacts_dir / route / "model_card.json"
        card = ModelCard.model_validate(read_json(path))
        write_json(path, card.model_copy(update={"serving_latency": record}))


def p90s(measured: dict[str, ServingLatencyRecord]) -> dict[str, float]:
    return {route: record.p90_ms for route, record in measured.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evaluation.latency_terms", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifacts", type=Path, required=True)
    parser.add_argument("--triton", default="127.0.0.1:8000", help="Triton's HTTP host:port")
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args(argv)
    measured = asyncio.run(measure(args.artifacts, args.triton, calls=args.calls))
    write_cards(args.artifacts, measured)
    for route, record in measured.items():
        print(f"{route:40s} p50 {record.p50_ms:7.3f} ms  p90 {record.p90_ms:7.3f} ms  "
              f"p99 {record.p99_ms:7.3f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
