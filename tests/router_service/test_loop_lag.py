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


async def test_a_stall_that_is_over_is_no_backlog_a_loop_that_stays_late_is() -> None:
    lag = LoopLag(interval_s=0.002, decay=0.99)
    task = asyncio.create_task(lag.run())
    await asyncio.sleep(0.02)
    time.sleep(0.05)  # one stall, then the loop runs on time again (the requests that waited
    await asyncio.sleep(0.02)  # in it are charged that wait: queued_s, a sample then)
    assert lag.lag_ms > 10.0 and not lag.backlogged(10.0)  # peak still decaying, stall over
    for _ in range(10):  # every callback runs 20 ms late: a backlog, however it is sampled
        time.sleep(0.02)
        await asyncio.sleep(0)
    assert lag.backlogged(10.0)
    task.cancel()
