"""Launch the real `prometheus` binary (Debian package) beside the local stack.

    python -m deploy.local.prometheus                 # scrape 127.0.0.1:8080 and :8002
    python -m deploy.local.prometheus --router 127.0.0.1:8080 --router 127.0.0.1:8081

It renders the local variant of deploy/prometheus/prometheus.yml (same jobs and rules, local
targets) into <run-dir>/prometheus.yml, keeps its TSDB in <run-dir>/data and serves the UI and
API on 127.0.0.1:9090 until Ctrl-C. `deploy.local.stack` can call `local_prometheus()` instead.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import threading
from pathlib import Path

from deploy.local.process import ManagedProcess, http_ok
from deploy.prometheus.config import ScrapeTargets, local_config, write_config

DEFAULT_RUN_DIR = Path(".run/prometheus")


def prometheus_process(
    config_path: Path,
    data_dir: Path,
    port: int = 9090,
    host: str = "127.0.0.1",
    log_path: Path | None = None,
    retention: str = "2d",
) -> ManagedProcess:
    binary = shutil.which("prometheus")
    if binary is None:
        raise FileNotFoundError("prometheus not installed: run scripts/install_system_deps.sh")
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        binary,
        f"--config.file={config_path.resolve()}",
        f"--storage.tsdb.path={data_dir.resolve()}",
        f"--storage.tsdb.retention.time={retention}",  # a dev TSDB, not an archive
        f"--web.listen-address={host}:{port}",
        "--web.enable-lifecycle",  # POST /-/reload picks up edited rules without a restart
    ]
    return ManagedProcess(
        name="prometheus",
        argv=argv,
        ready=lambda: http_ok(f"http://{host}:{port}/-/ready"),
        log_path=log_path or data_dir.parent / "prometheus.log",
        startup_timeout_s=60.0,
    )


def local_prometheus(
    run_dir: Path = DEFAULT_RUN_DIR,
    router: tuple[str, ...] = ("127.0.0.1:8080",),
    triton: tuple[str, ...] = ("127.0.0.1:8002",),
    port: int = 9090,
    host: str = "127.0.0.1",
    scrape_interval: str = "5s",
) -> ManagedProcess:
    """Render the local config under `run_dir` and return the (not yet started) process."""
    targets = ScrapeTargets(router=router, triton=triton, prometheus=f"{host}:{port}")
    config = write_config(
        local_config(targets, scrape_interval=scrape_interval), run_dir / "prometheus.yml"
    )
    return prometheus_process(config, run_dir / "data", port=port, host=host)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--router", action="append", help="router host:port (repeatable)")
    parser.add_argument("--triton", action="append", help="Triton metrics host:port (repeatable)")
    parser.add_argument("--port", type=int, default=9090)
    parser.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR)
    parser.add_argument("--scrape-interval", default="5s")
    args = parser.parse_args(argv)
    proc = local_prometheus(
        run_dir=args.run_dir,
        router=tuple(args.router or ["127.0.0.1:8080"]),
        triton=tuple(args.triton or ["127.0.0.1:8002"]),
        port=args.port,
        scrape_interval=args.scrape_interval,
    )
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with proc:
        print(f"prometheus ready on http://127.0.0.1:{args.port} (log {proc.log_path})")
        while not stop.wait(1.0):
            if not proc.running():
                print(f"prometheus exited:\n{proc.log_tail()}")
                return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
