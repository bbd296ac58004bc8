"""A request's budget: when its clock started, when it must be answered, and whether it was.

The clock starts when the request reached the router, not when its handler ran: the time it
waited in the server before (estimated from the event loop's lag, `queued_s`) is charged to it.
A robot whose clock is synchronised with the router's may also send an absolute deadline (Unix
time in ms); the earlier of the two deadlines holds. `deadline_met` is true only if the reply
leaves with the reply margin to spare, so a reply that reaches the robot late does not say it
was on time.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from router_service.errors import DeadlineExpired, InvalidRequest, Overloaded

MAX_BUDGET_MS = 60_000.0
# An absolute deadline further in the past than this is a clock problem, not a late request.
MAX_CLOCK_SKEW_MS = 10_000.0


def reply_margin_ms(budget_ms: float) -> float:
    """Kept back from the budget for delivering the reply (10%, 1 to 5 ms: 2 ms of a 20 ms
    budget): attempts upstream end this much before the deadline, and `deadline_met` is true
    only if the reply leaves with this much to spare. Serialising and writing take ~0.1 ms; the
    rest is for the robot's side, which on a busy host reads its socket a millisecond or two
    after the bytes arrived (measured: a 0.5 ms guard left answers 0.01-4.6 ms late at the
    load generator, median 0.8 ms, yet flagged on time)."""
    return min(max(0.1 * budget_ms, 1.0), 5.0)


@dataclass(frozen=True, slots=True)
class Budget:
    arrival: float  # monotonic: when the request reached the router
    deadline: float  # monotonic
    queued_ms: float

    @property
    def total_ms(self) -> float:
        return (self.deadline - self.arrival) * 1000

    @property
    def reply_margin_ms(self) -> float:
        return reply_margin_ms(self.total_ms)

    def remaining_ms(self) -> float:
        return (self.deadline - time.monotonic()) * 1000

    def met(self, done: float, delivery_lag_ms: float = 0.0) -> bool:
        """`delivery_lag_ms`: how late this process runs what is ready (the event loop's lag):
        on a host that busy, the robot's side reads its reply about that much later too."""
        return done + (self.reply_margin_ms + delivery_lag_ms) / 1000 <= self.deadline


def grpc_wire_slack_ms(remaining_ms: float) -> float:
    """How much later than the caller's own deadline a gRPC server's `time_remaining()` can
    reach. gRPC (C core) carries the deadline as a `grpc-timeout` rounded up: the deadline to a
    whole millisecond, then the timeout to three significant figures (10 ms units from 1 s,
    100 ms from 10 s). Measured with grpcio 1.85 on one host: 0.03-1.05 ms over below 1 s,
    9.0-10.1 ms over at 2 s. Taken off, a reply the router calls on time is not late at the
    robot's own gRPC deadline."""
    if remaining_ms < 1000.0:
        return 1.0
    return 1.0 + 10.0 ** (math.floor(math.log10(remaining_ms)) - 2)


def grpc_call_budget_ms(remaining_s: float, waited_s: float) -> float:
    """A gRPC call's deadline as a budget counted from the request's arrival. `remaining_s` is
    `context.time_remaining()` (may be <= 0: the engine says expired); `waited_s` is the time
    since arrival (queue wait included), given back because the budget counts from arrival."""
    remaining_ms = remaining_s * 1000
    return remaining_ms - grpc_wire_slack_ms(remaining_ms) + waited_s * 1000


def _relative(deadline_ms: float) -> float:
    if math.isnan(deadline_ms) or deadline_ms > MAX_BUDGET_MS:
        raise InvalidRequest(f"deadline_ms must be a number in (0, {MAX_BUDGET_MS:.0f}]",
                             field="deadline_ms")
    if deadline_ms <= 0:
        raise DeadlineExpired("deadline_ms is not positive: the deadline has passed",
                              field="deadline_ms")
    return deadline_ms


def _absolute(deadline_unix_ms: float, arrival: float, now: float) -> float:
    """The absolute deadline on the monotonic clock."""
    if not math.isfinite(deadline_unix_ms):
        raise InvalidRequest("deadline_unix_ms must be a finite number (Unix time in ms)",
                             field="deadline_unix_ms")
    left_ms = deadline_unix_ms - time.time() * 1000
    if left_ms > MAX_BUDGET_MS:
        raise InvalidRequest(f"deadline_unix_ms is {left_ms:.0f} ms ahead (limit "
                             f"{MAX_BUDGET_MS:.0f})", field="deadline_unix_ms")
    if left_ms < -MAX_CLOCK_SKEW_MS:
        raise InvalidRequest(f"deadline_unix_ms is {-left_ms:.0f} ms in the past: is the "
                             "robot's clock synchronised with the router's?",
                             field="deadline_unix_ms")
    deadline = now + left_ms / 1000
    if deadline <= arrival:
        raise DeadlineExpired("deadline_unix_ms had passed when the request arrived",
                              field="deadline_unix_ms")
    return deadline


def request_budget(received_at: float, queued_s: float, deadline_ms: float | None,
                   deadline_unix_ms: float | None, default_ms: float) -> Budget:
    arrival = received_at - max(queued_s, 0.0)
    now = time.monotonic()
    relative = deadline_ms if deadline_ms is not None else (
        None if deadline_unix_ms is not None else default_ms)
    deadline = arrival + _relative(relative) / 1000 if relative is not None else math.inf
    if deadline_unix_ms is not None:
        deadline = min(deadline, _absolute(deadline_unix_ms, arrival, now))
    budget = Budget(arrival, deadline, max(queued_s, 0.0) * 1000)
    if deadline <= now:
        # It had budget when it arrived and lost it waiting here: the router's overload.
        raise Overloaded(f"the request waited {budget.queued_ms:.1f} ms in the router and its "
                         "deadline passed", retry_after_ms=max(1.0, budget.queued_ms),
                         reason="late_in_queue")
    return budget
