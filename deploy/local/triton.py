"""Launch the real `tritonserver` binary shipped inside the `nvidia-pytriton` wheel.

The wheel carries tritonserver 2.51 with the python backend only (see docs/triton-on-cpu.md).
The python backend runs each `model.py` in a stub process that finds Python through PATH, so the
virtual environment's bin/ goes first on PATH, and the stub matching this Python is copied next to
the backend library once.
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from deploy.local.process import ManagedProcess, http_ok


@dataclass(frozen=True)
class TritonPorts:
    http: int = 8000
    grpc: int = 8001
    metrics: int = 8002


def triton_home() -> Path:
    home = Path(sysconfig.get_paths()["purelib"]) / "pytriton" / "tritonserver"
    if not (home / "bin" / "tritonserver").exists():
        raise FileNotFoundError(
            f"tritonserver not found under {home}: install nvidia-pytriton==0.7.0 (make venv)"
        )
    return home


def prepare_python_backend(home: Path) -> None:
    """Copy the stub built for this interpreter's Python next to libtriton_python.so."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = home / "python_backend_stubs" / version / "triton_python_backend_stub"
    target = home / "backends" / "python" / "triton_python_backend_stub"
    if not target.exists() or target.stat().st_size != stub.stat().st_size:
        # Copy then rename: another session's tritonserver may be starting a stub from `target`
        # right now, and writing into a running executable fails (ETXTBSY).
        tmp = target.with_name(f".{target.name}.{os.getpid()}")
        shutil.copy2(stub, tmp)
        tmp.replace(target)


def triton_process(
    model_repository: Path,
    log_path: Path,
    ports: TritonPorts = TritonPorts(),
    host: str = "127.0.0.1",
    extra_args: tuple[str, ...] = (),
    extra_env: dict[str, str] | None = None,
) -> ManagedProcess:
    home = triton_home()
    prepare_python_backend(home)
    libs = Path(sysconfig.get_paths()["purelib"]) / "nvidia_pytriton.libs"
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = f"{libs}:{env.get('LD_LIBRARY_PATH', '')}".rstrip(":")
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    env.update(extra_env or {})
    argv = [
        str(home / "bin" / "tritonserver"),
        f"--model-repository={model_repository.resolve()}",
        f"--backend-directory={home / 'backends'}",
        f"--http-address={host}",
        f"--grpc-address={host}",
        f"--metrics-address={host}",
        f"--http-port={ports.http}",
        f"--grpc-port={ports.grpc}",
        f"--metrics-port={ports.metrics}",
        "--allow-gpu-metrics=false",
        "--log-verbose=0",
        *extra_args,
    ]
    return ManagedProcess(
        name="tritonserver",
        argv=argv,
        ready=lambda: http_ok(f"http://{host}:{ports.http}/v2/health/ready"),
        log_path=log_path,
        env=env,
        startup_timeout_s=180.0,
    )
