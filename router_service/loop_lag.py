"""The event loop's lag: how long a ready callback, a request handler included, waits to run."""

from __future__ import annotations

import asyncio


class LoopLag:
    """How late the event loop runs a callback that is due: the age of the router's queue.

    asyncio has no visible request queue; when it is long, every ready callback (a request
    handler included) starts late, and this lag is what a new request would wait. Peaks are
    kept and decay, so a burst sheds load at once and recovery is not instant flapping.
    """

    def __init__(self, interval_s: float = 0.005, decay: float = 0.8) -> None:
        self.interval_s = interval_s
        self.decay = decay
        self.lag_ms = 0.0  # decaying peak: what admission sheds on
        self.last_ms = 0.0  # the latest sample: what a request just handled probably waited

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(self.interval_s)
            lag = max(0.0, (loop.time() - start - self.interval_s) * 1000)
            self.last_ms = lag
            self.lag_ms = max(lag, self.lag_ms * self.decay)

    def backlogged(self, limit_ms: float) -> bool:
        """Whether the queue is older than `limit_ms`: the decaying peak is, and the latest
        sample still shows the loop running late (over half the limit). A lone stall (the
        process descheduled, a GC pause) that is over is no backlog: shedding on its peak
        alone, as the decay let it fall below the limit, refused requests arriving after it at
        50 requests/s (bench, 2 router workers on 2 cores: 2 in 60 s)."""
        return self.lag_ms > limit_ms and self.last_ms > limit_ms / 2

    @property
    def queued_s(self) -> float:
        """Estimated wait of a request whose handler starts now, before it started."""
        return self.last_ms / 1000
