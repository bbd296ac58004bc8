"""Launch a real `redis-server` (Debian package) on its own port and data directory."""

from __future__ import annotations

import shutil
from pathlib import Path

from deploy.local.process import ManagedProcess, port_open


def redis_process(data_dir: Path, port: int = 6379, host: str = "127.0.0.1") -> ManagedProcess:
    binary = shutil.which("redis-server")
    if binary is None:
        raise FileNotFoundError("redis-server not installed: run scripts/install_system_deps.sh")
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        binary,
        "--port", str(port),
        "--bind", host,
        "--dir", str(data_dir.resolve()),
        "--save", "",          # no RDB snapshots: the decision log lives in the AOF below
        "--appendonly", "yes",  # a restart keeps the stream and leases
        "--protected-mode", "yes",
    ]
    return ManagedProcess(
        name="redis-server",
        argv=argv,
        ready=lambda: port_open(host, port),
        log_path=data_dir / "redis.log",
        startup_timeout_s=20.0,
    )
