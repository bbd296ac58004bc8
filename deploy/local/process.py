"""Start a real server process, wait until it answers, stop it cleanly.

Every local component (tritonserver, redis-server, prometheus, the router) is started through
`ManagedProcess`, so `make up` and the test session share one way of starting and stopping.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


class StartupError(RuntimeError):
    """A server exited or did not become ready in time; the message includes its log tail."""


def http_ok(url: str, timeout_s: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports (two free_port() calls can return the same one)."""
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)


@dataclass
class ManagedProcess:
    """One child process with a readiness probe. Use as a context manager or call start/stop."""

    name: str
    argv: Sequence[str]
    ready: Callable[[], bool]
    log_path: Path
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    startup_timeout_s: float = 120.0
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _pgid: int | None = field(default=None, init=False, repr=False)
    # Set by stop(), cleared by start(): a supervisor restarts a process that died, never one
    # that was stopped on purpose.
    stopped: bool = field(default=False, init=False)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc else None

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def reap_group(self) -> None:
        """SIGKILL whatever is left of the last process group: children a dead server leaves
        behind (Triton's python-backend stubs outlive a `kill -9` of tritonserver, ignore
        SIGTERM and keep their shared memory). The group outlives its leader, so this reaches
        them even though their parent is gone."""
        if self._pgid is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._pgid, signal.SIGKILL)

    def start(self) -> ManagedProcess:
        self.stopped = False
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # A restart appends: the log of the run that died is the evidence of why.
        log = self.log_path.open("ab" if self._pgid is not None else "wb")
        if self._pgid is not None:
            log.write(f"--- restarted at {time.strftime('%Y-%m-%dT%H:%M:%S')} ---\n".encode())
            log.flush()
        self._proc = subprocess.Popen(
            list(self.argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(self.env) if self.env is not None else None,
            cwd=self.cwd,
            start_new_session=True,  # our own process group: Ctrl-C in the terminal reaches us only
        )
        proc = self._proc
        self._pgid = proc.pid
        log.close()
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise StartupError(
                    f"{self.name} exited with code {proc.returncode}:\n{self.log_tail()}"
                )
            if self.ready():
                return self
            time.sleep(0.1)
        self.stop()
        raise StartupError(
            f"{self.name} not ready after {self.startup_timeout_s:.0f}s:\n{self.log_tail()}"
        )

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM the group, wait, SIGKILL if it overstays; then end any leftover member, so
        nothing of it holds a port or shared memory when this returns."""
        self.stopped = True
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
            except ProcessLookupError:
                pass
        self.reap_group()

    def kill(self) -> None:
        """Stop abruptly (SIGKILL), as a crash would."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        self.reap_group()

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> ManagedProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
