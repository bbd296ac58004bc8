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
  row with no slack flushes the batch at once;
- a call out for longer than `STRAGGLER_FACTOR` x its route's predicted latency is a straggler
  and no longer counts as in flight: rows waiting for it would idle while Triton's other
  instances are free (a straggler on one of two instances held every row behind it for
  `max_wait`, and raised p50 by half, in the benchmark's straggler run).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

import numpy as np
from numpy.typing import NDArray

from router_service.errors import UpstreamError

# A call out for longer than this many times its route's predicted latency is a straggler.
STRAGGLER_FACTOR: Final = 2.0

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
    # The route's predicted call latency (ms); None: a call counts as in flight until it returns.
    expected_call_ms: Callable[[], float] | None = None
    _rows: list[_Row] = field(default_factory=list, init=False)
    _started: list[float] = field(default_factory=list, init=False)  # in-flight calls' starts
    _timer: asyncio.TimerHandle | None = field(default=None, init=False)
    _timer_at: float = field(default=0.0, init=False)  # loop time (uvloop's handles lack when())
    _soon: bool = field(default=False, init=False)
    _calls: set[asyncio.Task[None]] = field(default_factory=set, init=False)

    def submit(self, obs: NDArray[np.float32], conditioning: NDArray[np.float32] | None,
               timeout_s: float, slack_s: float) -> asyncio.Future[RowResult]:
        """The row's future: its own answer, or the call's `UpstreamError`. Cancelled by the
        caller's timeout or a lost race, the row is skipped if it has not left yet, and its
        answer is dropped if it has."""
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        row = _Row(obs, conditioning, loop.create_future(), now, now + max(slack_s, 0.0),
                   now + timeout_s)
        self._rows.append(row)
        busy_until = self._busy_until(now)
        if busy_until is None or slack_s <= 0 or len(self._rows) >= self.max_batch:
            self._flush_soon(loop)
        else:
            self._arm(loop, busy_until)
        return row.future

    # -- scheduling -----------------------------------------------------------------------
    def _flush_soon(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._soon:
            self._soon = True
            loop.call_soon(self._flush)

    def _busy_until(self, now: float) -> float | None:
        """When the latest in-flight call that is not a straggler is presumed back (monotonic);
        None when no call is in flight, or every one in flight is a straggler."""
        if not self._started:
            return None
        if self.expected_call_ms is None:
            return float("inf")
        until = max(self._started) + STRAGGLER_FACTOR * self.expected_call_ms() / 1000
        return until if until > now else None

    def _arm(self, loop: asyncio.AbstractEventLoop, busy_until: float) -> None:
        first = self._rows[0]
        when = min(first.enqueued + self.max_wait_s, min(r.send_by for r in self._rows),
                   busy_until)
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
        self._started.append(now)
        task = asyncio.get_running_loop().create_task(
            self._run(batch, obs, cond, timeout_s, now))
        self._calls.add(task)
        task.add_done_callback(self._calls.discard)
        abandoned = functools.partial(_cancel_if_abandoned, batch=batch, task=task)
        for r in batch:
            r.future.add_done_callback(abandoned)

    async def _run(self, batch: list[_Row], obs: NDArray[np.float32],
                   cond: NDArray[np.float32] | None, timeout_s: float, sent: float) -> None:
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
            self._started.remove(sent)
            if self._rows:  # what gathered meanwhile leaves now, unless a call is still due
                loop = asyncio.get_running_loop()
                busy_until = self._busy_until(time.monotonic())
                if busy_until is None:
                    self._flush_soon(loop)
                else:
                    self._arm(loop, busy_until)
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
