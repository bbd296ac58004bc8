"""`make up`: the whole stack on this machine, for real, until Ctrl-C.

Starts tritonserver (model_repository/), redis-server when installed (else the router's
embedded store), the router (HTTP + gRPC) and Prometheus when installed; prints the endpoints
and a curl example; stops everything it started, in reverse order, on Ctrl-C or SIGTERM, or
when any component dies.

    python -m deploy.local.stack up [--no-redis] [--no-prometheus] [--contract PATH]
    python -m deploy.local.stack exec [options] -- COMMAND...   # e.g. a load test
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from deploy.local.process import ManagedProcess, http_ok
from deploy.local.redis import redis_process
from deploy.local.triton import TritonPorts, triton_process

RUN_DIR = Path(".run")
# Development keys for a local stack only; any real deployment sets its own (see README).
DEV_ROBOT_KEY = "dev-robot-key"
DEV_ADMIN_KEY = "dev-admin-key"


def router_process(contract: Path, triton: TritonPorts, redis_url: str | None,
                   http_port: int, grpc_port: int) -> ManagedProcess:
    env = dict(os.environ)
    env.setdefault("ROUTER_API_KEYS", DEV_ROBOT_KEY)
    env.setdefault("ROUTER_ADMIN_KEY", DEV_ADMIN_KEY)
    env.update({
        "ROUTER_CONTRACT_PATH": str(contract),
        "ROUTER_TRITON_GRPC_URL": f"127.0.0.1:{triton.grpc}",
        "ROUTER_TRITON_HTTP_URL": f"127.0.0.1:{triton.http}",
        "ROUTER_HTTP_PORT": str(http_port),
        "ROUTER_GRPC_PORT": str(grpc_port),
    })
    env.pop("REDIS_URL", None)
    if redis_url:
        env["REDIS_URL"] = redis_url
    return ManagedProcess(
        name="router",
        argv=[sys.executable, "-m", "router_service"],
        ready=lambda: http_ok(f"http://127.0.0.1:{http_port}/readyz"),
        log_path=RUN_DIR / "router.log",
        env=env,
        startup_timeout_s=90.0,
    )


def curl_example(http_port: int, key: str) -> str:
    state = ", ".join(["0.0"] * 39)
    return (
        f"curl -s http://127.0.0.1:{http_port}/v1/act \\\n"
        f"  -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\\n"
        f"  -d '{{\"robot_id\": \"robot-1\", \"episode_id\": \"ep-1\", \"task\": \"reach-v3\", "
        f"\"deadline_ms\": 20, \"observation\": {{\"state\": [{state}]}}}}'"
    )


@contextmanager
def running_stack(args: argparse.Namespace) -> Iterator[list[ManagedProcess]]:
    """Start every component, print the endpoints, stop them all (reverse order) on exit."""
    ports = TritonPorts()
    started: list[ManagedProcess] = []
    with ExitStack() as stack:
        def start(process: ManagedProcess) -> None:
            print(f"starting {process.name} (log {process.log_path}) ...", flush=True)
            stack.enter_context(process)
            started.append(process)

        start(triton_process(Path("model_repository"), RUN_DIR / "tritonserver.log", ports))
        redis_url = None
        if not args.no_redis and shutil.which("redis-server"):
            start(redis_process(RUN_DIR / "redis", port=args.redis_port))
            redis_url = f"redis://127.0.0.1:{args.redis_port}/0"
        start(router_process(args.contract, ports, redis_url, args.http_port, args.grpc_port))
        prometheus_url = None
        if not args.no_prometheus and shutil.which("prometheus"):
            from deploy.local.prometheus import local_prometheus

            start(local_prometheus(RUN_DIR / "prometheus",
                                   router=(f"127.0.0.1:{args.http_port}",),
                                   triton=(f"127.0.0.1:{ports.metrics}",)))
            prometheus_url = "http://127.0.0.1:9090"
        key = os.environ.get("ROUTER_API_KEYS", DEV_ROBOT_KEY).split(",")[0]
        print("\nStack is up:")
        print(f"  Triton      HTTP http://127.0.0.1:{ports.http}  gRPC 127.0.0.1:{ports.grpc}  "
              f"metrics http://127.0.0.1:{ports.metrics}/metrics")
        print(f"  Redis       {redis_url or '(not installed: router uses its embedded store)'}")
        print(f"  Router      HTTP http://127.0.0.1:{args.http_port}  "
              f"gRPC 127.0.0.1:{args.grpc_port}  metrics /metrics")
        if prometheus_url:
            print(f"  Prometheus  {prometheus_url}")
        print(f"\nTry:\n{curl_example(args.http_port, key)}\n", flush=True)
        yield started
        print("\nstopping ...", flush=True)


def up(args: argparse.Namespace) -> int:
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with running_stack(args) as started:
        print("Ctrl-C stops everything.", flush=True)
        while not stop.wait(0.5):
            dead = [p for p in started if not p.running()]
            if dead:
                print(f"\n{dead[0].name} exited:\n{dead[0].log_tail()}", file=sys.stderr)
                return 1
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
    with running_stack(args):
        return subprocess.call(command)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the local stack")
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("up", help="serve until Ctrl-C")
    run = sub.add_parser("exec", help="run a command against the stack (started if not up)")
    run.add_argument("cmd", nargs=argparse.REMAINDER)
    for p in (cmd, run):
        p.add_argument("--panel", default="ci", help="picks deploy/contracts/<panel>.yaml")
        p.add_argument("--contract", type=Path, help="deployment contract (overrides --panel)")
        p.add_argument("--http-port", type=int, default=8080)
        p.add_argument("--grpc-port", type=int, default=50051)
        p.add_argument("--redis-port", type=int, default=6379)
        p.add_argument("--no-redis", action="store_true")
        p.add_argument("--no-prometheus", action="store_true")
    args = parser.parse_args(argv)
    args.contract = args.contract or Path(f"deploy/contracts/{args.panel}.yaml")
    return up(args) if args.command == "up" else exec_with_stack(args)


if __name__ == "__main__":
    raise SystemExit(main())
