"""Queue age: a blocked event loop shows up as lag, which is what load shedding reads."""

from __future__ import annotations

import asyncio
import time

from router_service.loop_lag import LoopLag


async def test_blocked_loop_is_seen_as_lag_that_decays() -> None:
    lag = LoopLag(interval_s=0.002, decay=0.95)
    task = asyncio.create_task(lag.run())
    await asyncio.sleep(0.02)
    time.sleep(0.05)  # a handler hogging the loop: everything queued behind it waits
    await asyncio.sleep(0.005)
    peak = lag.lag_ms
    assert peak > 30
    await asyncio.sleep(0.2)
    assert lag.lag_ms < peak / 2  # decays once the loop runs on time again
    task.cancel()
