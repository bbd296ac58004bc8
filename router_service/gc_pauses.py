"""Garbage-collection pauses, timed: a collection stops the whole process, event loop included,
and every request in flight waits for it.

Start-up objects are frozen (`gc.freeze` in the app's lifespan) so collections do not scan
them; the heap still grows with the router's caches. `GcPauses` times every collection into
`router_gc_pause_seconds{generation}`, so a tail that lines up with collections shows on the
dashboard instead of being guessed at.
"""

from __future__ import annotations

import gc
import time
from typing import Any

from prometheus_client import Histogram


class GcPauses:
    """A `gc.callbacks` entry that observes each collection's duration per generation."""

    def __init__(self, histogram: Histogram) -> None:
        self._by_generation = {g: histogram.labels(generation=str(g)) for g in range(3)}
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self._by_generation[info["generation"]].observe(time.perf_counter() - self._started)

    def install(self) -> None:
        gc.callbacks.append(self)

    def remove(self) -> None:
        if self in gc.callbacks:
            gc.callbacks.remove(self)
