"""Cross-robot micro-batching, driven by a scripted upstream call that records every batch.
The real-Triton version (concurrent robots reach Triton as one request) is in
test_batching_e2e.py."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import uvloop
from numpy.typing import NDArray

from router_service.batching import BatchObserver, RouteBatcher

ROUTE = "specialist_a"




class Recorder:
    def __init__(self, delay_s: float = 0.02) -> None:
        self.delay_s = delay_s
        self.batches: list[int] = []
        self.sizes: list[float] = []
        self.waits: list[float] = []

    async def __call__(self, route: str, obs: NDArray[np.float32],
                       cond: NDArray[np.float32] | None, timeout_s: float
                       ) -> NDArray[np.float32]:
        self.batches.append(obs.shape[0])
        await asyncio.sleep(self.delay_s)
        return obs[:, :4] * 2  # each row's answer is a function of that row alone

    def batcher(self, max_batch: int = 8, max_wait_ms: float = 50.0) -> RouteBatcher:
        return RouteBatcher(ROUTE, self, max_batch, max_wait_ms / 1000,
                            BatchObserver(self.sizes.append, self.waits.append))


def row(i: int) -> NDArray[np.float32]:
    return np.full(39, float(i), dtype=np.float32)


async def case_lone_row_on_an_idle_route_is_sent_at_once() -> None:
    rec = Recorder()
    result = await rec.batcher().submit(row(1), None, timeout_s=1.0, slack_s=0.5)
    assert rec.batches == [1] and result.batch_size == 1
    assert rec.waits[0] < 0.005  # not held for max_wait (50 ms) although it had slack


async def case_rows_of_one_turn_share_a_call_and_each_gets_its_own_row() -> None:
    rec = Recorder()
    batcher = rec.batcher()
    results = await asyncio.gather(*(batcher.submit(row(i), None, 1.0, 0.5) for i in range(5)))
    assert rec.batches == [5]
    for i, result in enumerate(results):
        assert result.batch_size == 5
        np.testing.assert_array_equal(result.action, np.full(4, 2.0 * i))


async def case_rows_gather_while_a_call_is_in_flight() -> None:
    rec = Recorder(delay_s=0.03)
    batcher = rec.batcher()
    first = asyncio.ensure_future(batcher.submit(row(0), None, 1.0, 0.5))
    await asyncio.sleep(0.005)  # the first call is out; these arrive while it is in flight
    later = [asyncio.ensure_future(batcher.submit(row(i), None, 1.0, 0.5)) for i in (1, 2, 3)]
    await asyncio.gather(first, *later)
    assert rec.batches == [1, 3]  # they left together when the first call returned


async def case_a_row_without_slack_is_not_held_back() -> None:
    rec = Recorder(delay_s=0.05)
    batcher = rec.batcher(max_wait_ms=40.0)
    first = asyncio.ensure_future(batcher.submit(row(0), None, 1.0, 0.5))
    await asyncio.sleep(0.005)
    loop = asyncio.get_running_loop()
    start = loop.time()
    urgent = asyncio.ensure_future(batcher.submit(row(1), None, 1.0, slack_s=0.0))
    await asyncio.sleep(0.005)
    assert rec.batches == [1, 1]  # sent while the first call was still in flight
    await asyncio.gather(first, urgent)
    assert loop.time() - start < 0.09


async def case_wait_is_bounded_by_the_rows_slack() -> None:
    rec = Recorder(delay_s=0.2)
    batcher = rec.batcher(max_wait_ms=50.0)
    first = asyncio.ensure_future(batcher.submit(row(0), None, 1.0, 0.5))
    await asyncio.sleep(0.005)
    second = asyncio.ensure_future(batcher.submit(row(1), None, 1.0, slack_s=0.01))
    await asyncio.sleep(0.03)
    assert rec.batches == [1, 1]  # left at its 10 ms slack, not at 50 ms or the first's return
    assert 0.005 <= rec.waits[1] <= 0.03
    await asyncio.gather(first, second)


async def case_max_batch_splits_a_burst() -> None:
    rec = Recorder()
    batcher = rec.batcher(max_batch=4)
    await asyncio.gather(*(batcher.submit(row(i), None, 1.0, 0.5) for i in range(10)))
    assert sorted(rec.batches) == [2, 4, 4]


async def case_conditioning_rows_travel_with_their_observations() -> None:
    seen: list[NDArray[np.float32]] = []

    async def call(route: str, obs: NDArray[np.float32], cond: NDArray[np.float32] | None,
                   timeout_s: float) -> NDArray[np.float32]:
        assert cond is not None
        seen.append(cond)
        return obs[:, :4] + cond[:, :1]

    batcher = RouteBatcher(ROUTE, call, 8, 0.01, BatchObserver(lambda v: None, lambda v: None))
    onehots = [np.eye(3, dtype=np.float32)[i % 3] for i in range(3)]
    results = await asyncio.gather(
        *(batcher.submit(row(i), onehots[i], 1.0, 0.5) for i in range(3)))
    assert seen[0].shape == (3, 3)
    assert [float(r.action[0]) for r in results] == [1.0, 1.0, 2.0]


async def case_a_call_every_row_abandoned_is_cancelled() -> None:
    cancelled = asyncio.Event()

    async def call(route: str, obs: NDArray[np.float32], cond: NDArray[np.float32] | None,
                   timeout_s: float) -> NDArray[np.float32]:
        try:
            await asyncio.sleep(1.0)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return obs[:, :4]

    batcher = RouteBatcher(ROUTE, call, 8, 0.01, BatchObserver(lambda v: None, lambda v: None))
    try:
        async with asyncio.timeout(0.02):
            await batcher.submit(row(0), None, 1.0, 0.5)
    except TimeoutError:
        pass
    await asyncio.wait_for(cancelled.wait(), 0.5)


class Straggling(Recorder):
    """The first call straggles (0.5 s); the rest answer in 5 ms, as the route predicts."""

    def __init__(self) -> None:
        super().__init__(delay_s=0.005)
        self.sent_at: list[float] = []

    async def __call__(self, route: str, obs: NDArray[np.float32],
                       cond: NDArray[np.float32] | None, timeout_s: float
                       ) -> NDArray[np.float32]:
        self.sent_at.append(asyncio.get_running_loop().time())
        if not self.batches:
            self.batches.append(obs.shape[0])
            await asyncio.sleep(0.5)
            return obs[:, :4]
        return await super().__call__(route, obs, cond, timeout_s)


async def case_a_straggler_in_flight_does_not_hold_rows_back() -> None:
    rec = Straggling()
    batcher = RouteBatcher(ROUTE, rec, 8, 0.2, BatchObserver(rec.sizes.append, rec.waits.append),
                           expected_call_ms=lambda: 5.0)
    loop = asyncio.get_running_loop()
    straggler = asyncio.ensure_future(batcher.submit(row(0), None, 1.0, 0.9))
    await asyncio.sleep(0.03)  # out 30 ms: over 2x the predicted 5 ms
    start = loop.time()
    await batcher.submit(row(1), None, 1.0, 0.9)
    assert rec.sent_at[1] - start < 0.02  # not held for max_wait (200 ms) nor the straggler
    assert rec.waits[1] < 0.02
    straggler.cancel()


async def case_a_call_on_time_still_gathers_rows() -> None:
    rec = Recorder(delay_s=0.03)
    batcher = RouteBatcher(ROUTE, rec, 8, 0.2, BatchObserver(rec.sizes.append, rec.waits.append),
                           expected_call_ms=lambda: 25.0)
    first = asyncio.ensure_future(batcher.submit(row(0), None, 1.0, 0.9))
    await asyncio.sleep(0.005)
    later = [asyncio.ensure_future(batcher.submit(row(i), None, 1.0, 0.9)) for i in (1, 2)]
    await asyncio.gather(first, *later)
    assert rec.batches == [1, 2]  # the first call was due back within 50 ms: they waited


async def case_rows_waiting_leave_when_the_call_turns_straggler() -> None:
    rec = Straggling()
    batcher = RouteBatcher(ROUTE, rec, 8, 0.2, BatchObserver(rec.sizes.append, rec.waits.append),
                           expected_call_ms=lambda: 10.0)
    loop = asyncio.get_running_loop()
    start = loop.time()
    straggler = asyncio.ensure_future(batcher.submit(row(0), None, 1.0, 0.9))
    await asyncio.sleep(0.002)
    waiting = [asyncio.ensure_future(batcher.submit(row(i), None, 1.0, 0.9)) for i in (1, 2)]
    await asyncio.gather(*waiting)
    # Held while the first call was due (2 x 10 ms), then sent together, not at 200 ms
    assert rec.batches == [1, 2]
    assert 0.015 <= rec.sent_at[1] - start < 0.1
    straggler.cancel()


CASES = {name.removeprefix("case_"): fn for name, fn in dict(globals()).items()
         if name.startswith("case_")}


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_batching(case: str, loop: str) -> None:
    """Every case on both loops: the router runs on uvloop, whose timer handles differ from
    asyncio's (uvloop's `call_at` handle has no `when()`)."""
    factory = uvloop.new_event_loop if loop == "uvloop" else asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(CASES[case]())
