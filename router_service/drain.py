"""SIGTERM drains before it stops: readiness goes false first, the router keeps serving for
`drain_s` so load balancers and robots move away, then uvicorn's own graceful shutdown lets
in-flight requests finish and exits.

uvicorn installs its SIGTERM handler before the app's lifespan starts; the lifespan wraps it
(`install`), so the same code works with one process or with `ROUTER_WORKERS` (every worker runs
the lifespan and gets the signal from uvicorn's supervisor).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from types import FrameType
from typing import Any

log = logging.getLogger(__name__)


class Drain:
    def __init__(self, drain_s: float) -> None:
        self.drain_s = drain_s
        self.draining = False

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        previous: Any = signal.getsignal(signal.SIGTERM)

        def stop(sig: int, frame: FrameType | None) -> None:
            if callable(previous):
                previous(sig, frame)

        def on_term(sig: int, frame: FrameType | None) -> None:
            if self.draining:  # a second SIGTERM: stop now
                stop(sig, frame)
                return
            self.draining = True
            log.warning("SIGTERM: not ready, draining for %.1f s, then stopping", self.drain_s)
            later: Callable[[], None] = lambda: stop(sig, frame)  # noqa: E731
            loop.call_soon_threadsafe(loop.call_later, self.drain_s, later)

        signal.signal(signal.SIGTERM, on_term)
