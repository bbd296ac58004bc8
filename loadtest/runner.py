"""The open-loop dispatcher: every request leaves at its scheduled time, answered or not.

One loop walks the time-sorted plan, sleeps until the next scheduled time and starts an asyncio
task per request; it never waits for earlier requests. Above `max_outstanding` in-flight
requests, a due request is recorded as an `overflow` error (never sent) instead of being queued:
queueing in the client would hide server slowness (coordinated omission). Latency is measured
from the scheduled time, so lateness of the generator itself is charged too; it is also recorded
separately (`sent_s - scheduled_s`) so a generator-bound run can be recognised.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from loadtest.records import Record
from loadtest.schedule import Plan
from loadtest.targets.base import Outcome, Target

Clock = Callable[[], float]

# Consecutive overdue dispatches before the dispatcher yields once, so responses still get
# processed when the generator falls behind instead of the loop only creating tasks.
_YIELD_EVERY = 64


@dataclass
class _Counters:
    sent: int = 0
    completed: int = 0
    errors: int = 0
    overflow: int = 0
    outstanding: int = 0
    interval_max_ms: float = 0.0


@dataclass(frozen=True)
class RunResult:
    records: list[Record]
    started_unix: float  # wall-clock time of the plan's t=0
    elapsed_s: float  # from t=0 to the end of the drain
    unfinished: int  # requests still in flight when the drain timed out (recorded as errors)


class Progress:
    """A periodic one-line status on stderr; a carriage return keeps it on one line on a tty."""

    def __init__(self, total: int, duration_s: float, every_s: float, stream: TextIO) -> None:
        self.total, self.duration_s, self.every_s, self.stream = total, duration_s, every_s, stream
        self._tty = stream.isatty()

    def line(self, t: float, c: _Counters) -> str:
        return (
            f"[loadtest] {min(t, self.duration_s):6.1f}/{self.duration_s:.0f}s "
            f"sent {c.sent}/{self.total} done {c.completed} inflight {c.outstanding} "
            f"errors {c.errors} overflow {c.overflow} max {c.interval_max_ms:.1f}ms"
        )

    async def run(self, t0: float, clock: Clock, c: _Counters) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            self.emit(clock() - t0, c)

    def emit(self, t: float, c: _Counters, final: bool = False) -> None:
        end = "\n" if (final or not self._tty) else "\r"
        self.stream.write(self.line(t, c) + end)
        self.stream.flush()
        c.interval_max_ms = 0.0


async def run_plan(
    plan: Plan,
    target: Target,
    *,
    max_outstanding: int,
    drain_timeout_s: float,
    progress_every_s: float | None = 2.0,
    stream: TextIO | None = None,  # default: sys.stderr at call time
    clock: Clock = time.perf_counter,
    lead_s: float = 0.05,
) -> RunResult:
    n = len(plan)
    sched: list[float] = plan.scheduled_s.tolist()
    robots: list[int] = plan.robot.tolist()
    task_idx: list[int] = plan.task.tolist()
    hidden: list[bool] = plan.hidden.tolist()
    tasks = plan.tasks
    records: list[Record | None] = [None] * n
    c = _Counters()
    send = target.send
    loop = asyncio.get_running_loop()
    pending: set[asyncio.Task[None]] = set()

    def base(i: int) -> tuple[int, int, str, bool, float]:
        return i, robots[i], tasks[task_idx[i]], hidden[i], sched[i]

    async def one(i: int, due: float) -> None:
        sent = clock()
        try:
            out = await send(i)
        except asyncio.CancelledError:  # still in flight when the drain gave up
            records[i] = Record(
                *base(i), sent - t0, None, None, "unfinished", None, None, None, "deadline", None
            )
            raise
        except Exception as err:  # a client-side bug must cost one record, not the run
            out = Outcome("client_error", error_kind="client_error", error_code=type(err).__name__)
        done = clock()
        latency = (done - due) * 1000.0
        c.outstanding -= 1
        c.completed += 1
        if out.status != "ok":
            c.errors += 1
        if latency > c.interval_max_ms:
            c.interval_max_ms = latency
        records[i] = Record(
            *base(i),
            sent - t0,
            done - t0,
            latency,
            out.status,
            out.route,
            out.fallback,
            out.deadline_met,
            out.error_kind,
            out.error_code,
        )

    t0 = clock() + lead_s
    started_unix = time.time() + lead_s
    lists = getattr(target, "lists", None)  # router targets: deadlines are schedule + budget
    if lists is not None:
        lists.origin_unix = started_unix
    progress = Progress(
        n, float(plan.scheduled_s[-1]) if n else 0.0, progress_every_s or 1, stream or sys.stderr
    )
    ticker = loop.create_task(progress.run(t0, clock, c)) if progress_every_s else None
    overdue = 0
    for i in range(n):
        due = t0 + sched[i]
        now = clock()
        if now < due:
            overdue = 0
            while now < due:  # timers can fire early by up to a tick: re-check the clock
                await asyncio.sleep(due - now)
                now = clock()
        else:
            overdue += 1
            if overdue % _YIELD_EVERY == 0:
                await asyncio.sleep(0)
        if c.outstanding >= max_outstanding:
            c.overflow += 1
            c.errors += 1
            records[i] = Record(
                *base(i), None, None, None, "overflow", None, None, None, "overflow", None
            )
            continue
        c.outstanding += 1
        c.sent += 1
        task = loop.create_task(one(i, due))
        pending.add(task)
        task.add_done_callback(pending.discard)

    if pending:
        await asyncio.wait(set(pending), timeout=drain_timeout_s)
    unfinished = len(pending)  # recorded as "unfinished" errors by `one`, never dropped
    for task in list(pending):
        task.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
    end = clock()
    if ticker is not None:
        ticker.cancel()
        progress.emit(end - t0, c, final=True)
    for i, rec in enumerate(records):
        if rec is None:  # cancelled before it ever ran: still an error, never a silent drop
            records[i] = Record(
                *base(i), None, None, None, "unfinished", None, None, None, "deadline", None
            )
    return RunResult([r for r in records if r is not None], started_unix, end - t0, unfinished)


class gc_quiet:  # lower-case: used like a function, `with gc_quiet(): ...`
    """Freeze setup objects and collect less often during a run: a full collection over a
    large heap is a multi-millisecond pause that would be charged to every request in flight."""

    def __enter__(self) -> None:
        gc.collect()
        gc.freeze()
        self._thresholds = gc.get_threshold()
        gc.set_threshold(50_000, 50, 1_000)

    def __exit__(self, *exc: object) -> None:
        gc.set_threshold(*self._thresholds)
        gc.unfreeze()
