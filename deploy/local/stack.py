"""`make up`: the whole stack on this machine, for real, until Ctrl-C.

Starts tritonserver (build/model_repository/<panel>, from `make repository`), redis-server when
installed (else the router's embedded store), the router (HTTP + gRPC) and Prometheus when
installed; prints the endpoints and a curl example. A component that dies is restarted with
backoff (deploy/local/supervisor.py, counts in .run/supervisor.json) while the others keep
serving. Every port is checked free before anything starts; Ctrl-C or SIGTERM stops everything
in reverse order and returns only once every process has exited and every port is free.

    python -m deploy.local.stack up [--no-redis] [--no-prometheus] [--contract PATH]
    python -m deploy.local.stack exec [options] -- COMMAND...   # e.g. a load test
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from deploy.local.local_stack import LocalStack, StackOptions
from deploy.local.ports import PortBusy
from deploy.local.process import ManagedProcess, http_ok
from deploy.local.triton import TritonPorts

RUN_DIR = Path(".run")
# Development keys for a local stack only; any real deployment sets its own (see README).
DEV_ROBOT_KEY = "dev-robot-key"
DEV_ADMIN_KEY = "dev-admin-key"
# Triton waits this long for in-flight requests on SIGTERM (default 30 s, during which it keeps
# ports 8000-8002 and its models "live"); local requests finish in milliseconds. Explicit model
# control (all loaded at start) lets an operator unload and reload one model while serving.
TRITON_ARGS = ("--exit-timeout-secs=3", "--model-control-mode=explicit", "--load-model=*")


def stack_router(stack: LocalStack, contract: Path, http_port: int, grpc_port: int
                 ) -> ManagedProcess:
    return stack.router(
        contract=contract, http_port=http_port, grpc_port=grpc_port,
        log_path=stack.run_dir / "router.log",
        robot_keys=os.environ.get("ROUTER_API_KEYS", DEV_ROBOT_KEY),
        admin_key=os.environ.get("ROUTER_ADMIN_KEY", DEV_ADMIN_KEY),
        drain_s=float(os.environ.get("ROUTER_DRAIN_S", "1")),  # Ctrl-C: 1 s not ready, serving
        ready_path="/healthz")


def example_key(keys: str) -> str:
    """A robot key for the printed example: the first of a comma list or of the JSON form."""
    text = keys.strip()
    if text.startswith("{"):
        return next(iter(json.loads(text)), DEV_ROBOT_KEY)
    return text.split(",")[0]


def curl_example(http_port: int, key: str) -> str:
    state = ", ".join(["0.0"] * 39)
    return (
        f"curl -s http://127.0.0.1:{http_port}/v1/act \\\n"
        f"  -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\\n"
        f"  -d '{{\"robot_id\": \"robot-1\", \"episode_id\": \"ep-1\", \"task\": \"reach-v3\", "
        f"\"deadline_ms\": 20, \"observation\": {{\"state\": [{state}]}}}}'"
    )


def stack_options(args: argparse.Namespace) -> StackOptions:
    return StackOptions(
        run_dir=args.run_dir, repository=args.repository,
        triton_ports=TritonPorts(args.triton_http_port, args.triton_grpc_port,
                                 args.triton_metrics_port),
        triton_args=TRITON_ARGS, redis=not args.no_redis, redis_port=args.redis_port,
        supervise=True)


@contextmanager
def running_stack(args: argparse.Namespace) -> Iterator[LocalStack]:
    """Start every component, supervised; stop them all (reverse order) on exit."""
    stack = LocalStack(stack_options(args))
    extra = {"router HTTP": args.http_port, "router gRPC": args.grpc_port}
    prometheus = not args.no_prometheus and shutil.which("prometheus") is not None
    if prometheus:
        extra["Prometheus"] = 9090
    stack.start(extra_ports=extra)  # PortBusy: one line, before anything starts
    try:
        stack.add(stack_router(stack, args.contract, args.http_port, args.grpc_port))
        prometheus_url = None
        if prometheus:
            from deploy.local.prometheus import local_prometheus

            stack.add(local_prometheus(args.run_dir / "prometheus",
                                       router=(f"127.0.0.1:{args.http_port}",),
                                       triton=(f"127.0.0.1:{stack.triton_ports.metrics}",)))
            prometheus_url = "http://127.0.0.1:9090"
        key = example_key(os.environ.get("ROUTER_API_KEYS", DEV_ROBOT_KEY))
        ports = stack.triton_ports
        print("\nStack is up:")
        print(f"  Triton      HTTP http://127.0.0.1:{ports.http}  gRPC 127.0.0.1:{ports.grpc}  "
              f"metrics http://127.0.0.1:{ports.metrics}/metrics")
        redis = stack.redis_url or "(not installed: router uses its embedded store)"
        print(f"  Redis       {redis}")
        print(f"  Router      HTTP http://127.0.0.1:{args.http_port}  "
              f"gRPC 127.0.0.1:{args.grpc_port}  metrics /metrics")
        if prometheus_url:
            print(f"  Prometheus  {prometheus_url}")
        print(f"\nTry:\n{curl_example(args.http_port, key)}\n", flush=True)
        yield stack
        print("\nstopping ...", flush=True)
    finally:
        stack.stop()
    busy = stack.wait_ports_free(extra)
    if busy:
        print(f"still busy after stopping: {', '.join(busy)}", file=sys.stderr)


def up(args: argparse.Namespace) -> int:
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        with running_stack(args):
            print("Ctrl-C stops everything.", flush=True)
            stop.wait()
    except PortBusy as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("stopped: every process has exited and every port is free", flush=True)
    return 0


def exec_with_stack(args: argparse.Namespace) -> int:
    """Run a command against the local stack: the running one if the router answers on its
    port, else one started for the command and stopped after it."""
    command = [c for c in args.cmd if c != "--"]
    if not command:
        print("exec: give a command after --", file=sys.stderr)
        return 1
    if http_ok(f"http://127.0.0.1:{args.http_port}/readyz"):
        print(f"using the stack already running on port {args.http_port}", flush=True)
        return subprocess.call(command)
    try:
        with running_stack(args):
            return subprocess.call(command)
    except PortBusy as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the local stack")
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("up", help="serve until Ctrl-C")
    run = sub.add_parser("exec", help="run a command against the stack (started if not up)")
    run.add_argument("cmd", nargs=argparse.REMAINDER)
    for p in (cmd, run):
        p.add_argument("--panel", default="ci", help="picks deploy/contracts/<panel>.yaml")
        p.add_argument("--contract", type=Path, help="deployment contract (overrides --panel)")
        p.add_argument("--repository", type=Path,
                       help="Triton model repository (default build/model_repository/<panel>)")
        p.add_argument("--http-port", type=int, default=8080)
        p.add_argument("--grpc-port", type=int, default=50051)
        p.add_argument("--redis-port", type=int, default=6379)
        p.add_argument("--run-dir", type=Path, default=RUN_DIR, help="logs and state")
        p.add_argument("--triton-http-port", type=int, default=8000)
        p.add_argument("--triton-grpc-port", type=int, default=8001)
        p.add_argument("--triton-metrics-port", type=int, default=8002)
        p.add_argument("--no-redis", action="store_true")
        p.add_argument("--no-prometheus", action="store_true")
    args = parser.parse_args(argv)
    args.contract = args.contract or Path(f"deploy/contracts/{args.panel}.yaml")
    args.repository = args.repository or Path(f"build/model_repository/{args.panel}")
    if not (args.repository / "preprocess" / "config.pbtxt").is_file():
        print(f"error: no model repository at {args.repository}: run `make repository "
              f"PANEL={args.panel}` (make up does it)", file=sys.stderr)
        return 2
    return up(args) if args.command == "up" else exec_with_stack(args)


if __name__ == "__main__":
    raise SystemExit(main())
