"""Feedback from robots: episode outcomes and true tasks. Turns into misroute counts and the
stale-calibration flag (observed success drifting outside the calibration table's interval).

A key gives feedback only for its own robots: `robot_id` must be one it covers (403 naming
robot_id), and the decision it names must have been made for one of them (403 naming
decision_id). Feedback counts against the key's rate like an act request."""

from __future__ import annotations

from dataclasses import dataclass

from router_service.contract import HOLD_ROUTE, CalibrationRow
from router_service.engine import ActEngine, RoutedTask
from router_service.errors import InvalidRequest, UnknownTask
from router_service.intervals import wilson_interval
from router_service.keys import RobotKey
from router_service.store import StoreUnavailable

# Fewer feedback episodes than this cannot show drift with any confidence.
MIN_EPISODES_FOR_STALENESS = 10


@dataclass(frozen=True)
class FeedbackInput:
    robot_id: str
    episode_id: str
    decision_id: str | None
    success: bool
    true_task: str | None
    key: RobotKey  # who is asking (authenticated by the transport)


async def record_feedback(engine: ActEngine, fb: FeedbackInput) -> dict[str, object]:
    rt = engine.rt
    contract = rt.active.contract
    engine.access.authorize(fb.key, fb.robot_id)
    if fb.true_task is not None and fb.true_task not in rt.active.task_index:
        raise UnknownTask(fb.true_task, contract.task_names)
    routed = engine.recall(fb.decision_id) if fb.decision_id else None
    if routed is not None:
        engine.access.check_decision(fb.key, routed.robot_id, routed.key_id)
    else:
        # A decision this process does not remember (another worker's, or forgotten): the
        # episode's lease answers, and it is the lease of a robot the key covers (checked
        # above), so it is the key's own episode, as it was before keys were bound to robots.
        lease = await rt.leases.get(f"{fb.robot_id}:{fb.episode_id}")
        if lease is None:
            raise InvalidRequest(
                "no decision known for this decision_id or episode (expired or never routed "
                "here)", field="decision_id" if fb.decision_id else "episode_id",
            )
        routed = RoutedTask(lease.task, lease.source, lease.route or HOLD_ROUTE, fb.robot_id,
                            lease.key_id)
    misrouted = fb.true_task is not None and fb.true_task != routed.task
    if misrouted:
        assert fb.true_task is not None
        rt.metrics.misroutes.labels(true_task=fb.true_task, routed_task=routed.task).inc()
    stale = None
    if routed.route != HOLD_ROUTE:
        row = contract.calibration_row(fb.true_task or routed.task, routed.route,
                                       inferred=routed.source == "inferred")
        if row is not None:
            try:
                wins, total = await rt.store.record_outcome(row.task, row.policy, fb.success)
                stale = _stale(engine, row, wins, total)
            except StoreUnavailable:
                rt.metrics.errors.labels(kind="store_unavailable").inc()
    return {"accepted": True, "misrouted": misrouted, "routed_task": routed.task,
            "route": routed.route, "calibration_stale": stale}


def _stale(engine: ActEngine, row: CalibrationRow, wins: int, total: int) -> bool | None:
    """Observed success outside the table's interval (neither interval overlaps the other)."""
    if total < MIN_EPISODES_FOR_STALENESS:
        return None
    table_lo, table_hi = row.ci95
    seen_lo, seen_hi = wilson_interval(wins, total)
    stale = seen_hi < table_lo or seen_lo > table_hi
    engine.rt.metrics.calibration_stale.labels(task=row.task, policy=row.policy).set(int(stale))
    return stale
