"""Keep the local stack serving through a component's death: restart what dies, with backoff.

One watcher thread per component. When its process exits (crash, `kill -9`, OOM) the watcher
logs the exit code and the log tail, counts the restart, runs the component's clean-up (Triton:
end the python-backend stubs its death orphaned, which ignore SIGTERM and hold shared memory),
waits out the backoff and starts it again; a start that fails backs off further. The router is
built to keep answering meanwhile: hold actions while no route is usable, `/readyz` 503 with the
reason, ready again once Triton's models are.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from deploy.local.process import ManagedProcess, StartupError


@dataclass(frozen=True)
class Backoff:
    """Delay before restart n (0-based): first * factor**n, capped; reset after a stable run."""

    first_s: float = 0.5
    factor: float = 2.0
    max_s: float = 10.0
    stable_s: float = 30.0  # a run this long resets the delay to first_s

    def delay(self, attempt: int) -> float:
        return float(min(self.max_s, self.first_s * self.factor ** attempt))


@dataclass
class Component:
    process: ManagedProcess
    before_restart: Callable[[], None] = lambda: None
    restarts: int = 0
    last_exit: int | None = None
    _attempt: int = field(default=0, repr=False)


class Supervisor:
    """Watches started components until `stop()`; `status_path` gets restart counts as JSON."""

    def __init__(self, log: Callable[[str], None], status_path: Path | None = None,
                 backoff: Backoff = Backoff()) -> None:
        self._log, self._status_path, self._backoff = log, status_path, backoff
        self._stop = threading.Event()
        self._components: list[Component] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def watch(self, component: Component) -> None:
        self._components.append(component)
        thread = threading.Thread(target=self._run, args=(component,), daemon=True,
                                  name=f"watch-{component.process.name}")
        self._threads.append(thread)
        thread.start()
        self._write_status()

    def stop(self) -> None:
        """Stop watching (before the components are stopped, so none is restarted)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5.0)

    @property
    def components(self) -> tuple[Component, ...]:
        return tuple(self._components)

    def _run(self, c: Component) -> None:
        started = time.monotonic()
        while not self._stop.wait(0.2):
            if c.process.stopped:
                return  # stopped on purpose (the stack is shutting down)
            if c.process.running():
                if time.monotonic() - started > self._backoff.stable_s:
                    c._attempt = 0
                continue
            c.last_exit = c.process.returncode
            c.restarts += 1
            delay = self._backoff.delay(c._attempt)
            c._attempt += 1
            self._log(f"{c.process.name} exited (code {c.last_exit}); restart {c.restarts} in "
                      f"{delay:.1f} s. Log tail:\n{c.process.log_tail(8)}")
            self._write_status()
            if self._stop.wait(delay):
                return
            c.before_restart()
            try:
                c.process.start()
            except StartupError as exc:
                self._log(f"{c.process.name}: restart {c.restarts} failed: {exc}")
                continue
            if self._stop.is_set():  # stopped while starting: leave it to the stack's stop
                return
            started = time.monotonic()
            self._log(f"{c.process.name} is back (restart {c.restarts})")
            self._write_status()

    def _write_status(self) -> None:
        if self._status_path is None:
            return
        with self._lock:
            status = {c.process.name: {"restarts": c.restarts, "last_exit": c.last_exit,
                                       "pid": c.process.pid} for c in self._components}
            self._status_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._status_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(status, indent=2))
            tmp.replace(self._status_path)
