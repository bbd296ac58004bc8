"""Cross-robot micro-batching: rows for the same route that arrive close together go to Triton
as one `[N, state_dim]` request, and each waiting robot gets its own row back.

Triton's cost here is mostly per request, not per row (shared/notes/serving-costs-on-cpu.md:
1,356 us of server CPU per row sent alone, 168 us per row in batches of 16), and so is the
router's gRPC call: batching is the lever on both halves.

When a batch leaves:
- a lone row on an idle route leaves at once (on the next loop turn, so rows already parsed in
  the same turn join it): batching never adds a wait where there is nothing to wait for;
- while a call for the route is in flight, rows gather until it returns, the batch is full,
  `max_wait` passes, or the first row's slack runs out, whichever comes first. A row's slack is
  its attempt budget minus the route's predicted latency, so waiting never makes it late; a
  row with no slack flushes the batch at once.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from router_service.errors import UpstreamError

# (model, obs [N, D], conditioning [N, T] | None, timeout_s) -> actions [N, A]
BatchCall = Callable[[str, NDArray[np.float32], NDArray[np.float32] | None, float],
                     Awaitable[NDArray[np.float32]]]


@dataclass(frozen=True, slots=True)
class RowResult:
    action: NDArray[np.float32]
    call_ms: float  # the Triton call that carried the row (its latency, not the row's wait)
    batch_size: int


@dataclass(slots=True)
class _Row:
    obs: NDArray[np.float32]
    conditioning: NDArray[np.float32] | None
    future: asyncio.Future[RowResult]
    enqueued: float
    send_by: float  # monotonic: the batch must leave by then for this row to be on time
    timeout_at: float


@dataclass(frozen=True, slots=True)
class BatchObserver:
    """Where a batcher reports what it did (per-route metrics children, resolved once)."""

    size: Callable[[float], None]
    wait: Callable[[float], None]


@dataclass
class RouteBatcher:
    route: str
    call: BatchCall
    max_batch: int
    max_wait_s: float
    observer: BatchObserver
    _rows: list[_Row] = field(default_factory=list, init=False)
    _inflight: int = field(default=0, init=False)
    _timer: asyncio.TimerHandle | None = field(default=None, init=False)
    _timer_at: float = field(default=0.0, init=False)  # loop time (uvloop's handles lack when())
    _soon: bool = field(default=False, init=False)
    _calls: set[asyncio.Task[None]] = field(default_factory=set, init=False)

    async def infer(self, obs: NDArray[np.float32], conditioning: NDArray[np.float32] | None,
                    timeout_s: float, slack_s: float) -> RowResult:
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        row = _Row(obs, conditioning, loop.create_future(), now, now + max(slack_s, 0.0),
                   now + timeout_s)
        self._rows.append(row)
        if self._inflight == 0 or slack_s <= 0 or len(self._rows) >= self.max_batch:
            self._flush_soon(loop)
        else:
            self._arm(loop)
        # Cancelled by the caller's timeout or a lost hedge: the row is skipped if it has not
        # left yet, and its answer is dropped if it has.
        return await row.future

    # -- scheduling -----------------------------------------------------------------------
    def _flush_soon(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._soon:
            self._soon = True
            loop.call_soon(self._flush)

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        first = self._rows[0]
        when = min(first.enqueued + self.max_wait_s, min(r.send_by for r in self._rows))
        at = self._loop_time(loop, when)
        if self._timer is not None and self._timer_at <= at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = loop.call_at(at, self._flush), at

    @staticmethod
    def _loop_time(loop: asyncio.AbstractEventLoop, monotonic_at: float) -> float:
        return loop.time() + (monotonic_at - time.monotonic())

    def _flush(self) -> None:
        self._soon = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._rows:
            live = [r for r in self._rows if not r.future.done()]
            batch, self._rows = live[:self.max_batch], live[self.max_batch:]
            if not batch:
                return
            self._send(batch)

    def _send(self, batch: list[_Row]) -> None:
        now = time.monotonic()
        obs = np.stack([r.obs for r in batch])
        cond = (np.stack([r.conditioning for r in batch])  # type: ignore[misc]
                if batch[0].conditioning is not None else None)
        timeout_s = max(r.timeout_at for r in batch) - now
        self.observer.size(len(batch))
        for r in batch:
            self.observer.wait(now - r.enqueued)
        self._inflight += 1
        task = asyncio.get_running_loop().create_task(self._run(batch, obs, cond, timeout_s))
        self._calls.add(task)
        task.add_done_callback(self._calls.discard)
        abandoned = functools.partial(_cancel_if_abandoned, batch=batch, task=task)
        for r in batch:
            r.future.add_done_callback(abandoned)

    async def _run(self, batch: list[_Row], obs: NDArray[np.float32],
                   cond: NDArray[np.float32] | None, timeout_s: float) -> None:
        start = time.perf_counter()
        try:
            actions = await self.call(self.route, obs, cond, timeout_s)
        except UpstreamError as exc:
            for r in batch:
                if not r.future.done():
                    r.future.set_exception(exc)
            return
        except asyncio.CancelledError:  # shutting down: nobody gets an answer
            for r in batch:
                r.future.cancel()
            raise
        finally:
            self._inflight -= 1
            if self._rows and self._inflight == 0:  # what gathered meanwhile leaves now
                self._flush_soon(asyncio.get_running_loop())
        call_ms = (time.perf_counter() - start) * 1000
        for r, action in zip(batch, actions, strict=True):
            if not r.future.done():
                r.future.set_result(RowResult(action, call_ms, len(batch)))

    async def close(self) -> None:
        for task in list(self._calls):
            task.cancel()


def _cancel_if_abandoned(future: asyncio.Future[RowResult], *, batch: list[_Row],
                         task: asyncio.Task[None]) -> None:
    """A Triton call nobody waits for any more (every row timed out or lost its hedge) is
    cancelled, so Triton drops it too."""
    if future.cancelled() and not task.done() and all(r.future.done() for r in batch):
        task.cancel()
