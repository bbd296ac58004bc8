"""One act request, transport-independent: validate, resolve the task, score the routes, keep
the episode's route, forward under the deadline, record the decision.

HTTP and gRPC both build an `ActInput` and serialise the `ActReply`; nothing here knows which.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray

from router_service.contract import HOLD_ROUTE
from router_service.errors import (
    ClientError,
    DeadlineExpired,
    InvalidRequest,
    Overloaded,
    RouterError,
    UnknownTask,
)
from router_service.forwarding import ForwardResult
from router_service.runtime import ActiveContract, RouterRuntime
from router_service.scoring import decide, score_candidates

MAX_BUDGET_MS = 60_000.0
NO_ROUTE = "none"  # route label of requests refused before routing


@dataclass(frozen=True)
class ActInput:
    robot_id: str
    episode_id: str
    task: str | None
    state: list[float]
    deadline_ms: float | None
    received_at: float  # time.monotonic() when the request arrived


@dataclass(frozen=True)
class RoutedTask:
    """What feedback needs to know about a decision: the task acted on, and the route."""

    task: str
    source: str  # "declared" | "inferred"
    route: str


@dataclass(frozen=True)
class ActReply:
    action: list[float]
    route: str
    policy_version: str
    task: str
    task_source: str
    task_confidence: float
    fallback: str | None
    deadline_met: bool
    timing_ms: dict[str, float]
    decision_id: str
    reason: str


def _validated_state(active: ActiveContract, state: list[float]) -> NDArray[np.float32]:
    expected = active.contract.spec.state_dim
    if len(state) != expected:
        raise InvalidRequest(
            f"observation.state has {len(state)} values, expected {expected}",
            field="observation.state",
        )
    array = np.asarray(state, dtype=np.float32)
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise InvalidRequest(
            f"observation.state[{int(bad[0])}] is not finite ({state[int(bad[0])]})",
            field=f"observation.state[{int(bad[0])}]",
        )
    return array


def reply_margin_ms(budget_ms: float) -> float:
    """Kept back from the budget for writing the reply: timers and the scheduler run late by
    about a millisecond on a busy host; a larger budget can afford to keep back more."""
    return min(max(0.05 * budget_ms, 1.0), 5.0)


def _budget_ms(active: ActiveContract, deadline_ms: float | None) -> float:
    if deadline_ms is None:
        return active.contract.spec.default_deadline_ms
    if math.isnan(deadline_ms) or deadline_ms > MAX_BUDGET_MS:
        raise InvalidRequest(
            f"deadline_ms must be a number in (0, {MAX_BUDGET_MS:.0f}]", field="deadline_ms"
        )
    if deadline_ms <= 0:
        raise DeadlineExpired("deadline_ms is not positive: the deadline has passed",
                              field="deadline_ms")
    return deadline_ms


class ActEngine:
    def __init__(self, runtime: RouterRuntime) -> None:
        self.rt = runtime
        self._recent: dict[str, RoutedTask] = {}
        self._writes: set[asyncio.Task[None]] = set()  # lease writes in flight (kept referenced)

    def admit(self) -> None:
        """Shed at once rather than queue work that will be late."""
        settings = self.rt.settings
        if self.rt.inflight >= settings.max_inflight:
            self.rt.metrics.shed.labels(reason="inflight").inc()
            raise Overloaded(f"{self.rt.inflight} requests in flight (limit "
                             f"{settings.max_inflight})", retry_after_ms=5.0, reason="inflight")
        lag_ms = self.rt.loop_lag.lag_ms
        if lag_ms > settings.max_queue_age_ms:
            self.rt.metrics.shed.labels(reason="queue_age").inc()
            raise Overloaded(f"requests wait {lag_ms:.1f} ms in the router's queue (limit "
                             f"{settings.max_queue_age_ms} ms)", retry_after_ms=lag_ms * 2,
                             reason="queue_age")

    async def act(self, req: ActInput) -> ActReply:
        active = self.rt.active  # one contract for the whole request
        contract = active.contract
        budget_ms = _budget_ms(active, req.deadline_ms)
        deadline = req.received_at + budget_ms / 1000
        state = _validated_state(active, req.state)

        probs: NDArray[np.float32] | None = None
        if req.task is not None:
            if req.task not in active.task_index:
                raise UnknownTask(req.task, contract.task_names)
            task, source, confidence = req.task, "declared", 1.0
        else:
            probs = active.classifier.probabilities(state)
            best = int(np.argmax(probs))
            task, source, confidence = contract.task_names[best], "inferred", float(probs[best])

        lease_key = f"{req.robot_id}:{req.episode_id}"
        lease = await self.rt.leases.get(lease_key)
        sticky = lease.get("route") if lease and lease.get("task") == task else None
        remaining_ms = (deadline - time.monotonic()) * 1000
        predicted = {r: h.latency.predicted_ms() for r, h in active.health.items()}
        usable = {r: h.usable() for r, h in active.health.items()}
        candidates = score_candidates(contract, task, remaining_ms, predicted, usable,
                                      inferred=probs is not None)
        decision = decide(contract, candidates, confidence, sticky)
        self.rt.metrics.decisions.labels(task=task, route=decision.route,
                                         reason=decision.reason).inc()
        scoring_done = time.monotonic()

        task_vector = self._task_vector(active, task, probs)
        chain = self._chain(active, decision.route)

        async def infer(route: str, timeout_s: float) -> NDArray[np.float32]:
            conditioning = task_vector if route == contract.generalist.name else None
            return await self.rt.upstream.infer(route, state, conditioning, timeout_s)

        result = await active.forwarder.forward(chain, deadline, infer, reply_margin_ms(budget_ms))
        action = (result.action.tolist() if result.action is not None
                  else list(contract.spec.routing.hold_action))
        done = time.monotonic()
        met = done <= deadline
        timing = {
            "scoring": round((scoring_done - req.received_at) * 1000, 3),
            "upstream": round(result.upstream_ms, 3),
            "total": round((done - req.received_at) * 1000, 3),
        }
        decision_id = uuid.uuid4().hex
        # The lease write (a store round trip) does not hold up the reply; the local cache
        # has it before this episode's next step.
        routed = RoutedTask(task, source, result.route)
        write = asyncio.create_task(
            self._update_lease(lease_key, lease, routed, decision.route, met))
        self._writes.add(write)
        write.add_done_callback(self._writes.discard)
        self._remember(decision_id, routed)
        self._count(result, met, done - req.received_at)
        self.rt.decision_log.append({
            "decision_id": decision_id, "ts": f"{time.time():.6f}",
            "replica": self.rt.settings.replica_id, "contract_version": contract.version,
            "robot_id": req.robot_id, "episode_id": req.episode_id,
            "task_declared": req.task or "", "task": task, "task_source": source,
            "task_confidence": f"{confidence:.6f}",
            "task_probs": orjson.dumps(probs.tolist() if probs is not None else None).decode(),
            "state": orjson.dumps(req.state).decode(), "budget_ms": f"{budget_ms:.3f}",
            "candidates": orjson.dumps([c.__dict__ for c in decision.candidates]).decode(),
            "route_chosen": decision.route, "reason": decision.reason, "route": result.route,
            "fallback": result.fallback or "", "path": orjson.dumps(result.path).decode(),
            "hedged": str(int(result.hedged)), "deadline_met": str(int(met)),
            "timing_ms": orjson.dumps(timing).decode(), "action": orjson.dumps(action).decode(),
        })
        version = (active.policy_versions.get(result.route, "unknown")
                   if result.route != HOLD_ROUTE else f"hold@{contract.version}")
        return ActReply(
            action=action, route=result.route, policy_version=version, task=task,
            task_source=source, task_confidence=round(confidence, 6), fallback=result.fallback,
            deadline_met=met, timing_ms=timing, decision_id=decision_id,
            reason=decision.reason,
        )

    # -- helpers --------------------------------------------------------------------------
    @staticmethod
    def _task_vector(
        active: ActiveContract, task: str, probs: NDArray[np.float32] | None
    ) -> NDArray[np.float32]:
        # An inferred task conditions the generalist on the classifier's belief, not a guess.
        if probs is not None:
            return probs.astype(np.float32)
        onehot = np.zeros(len(active.task_index), dtype=np.float32)
        onehot[active.task_index[task]] = 1.0
        return onehot

    @staticmethod
    def _chain(active: ActiveContract, chosen: str) -> list[str]:
        if chosen == HOLD_ROUTE:
            return [HOLD_ROUTE]
        order = list(active.contract.spec.routing.fallback_order)
        kind = active.contract.policy(chosen).kind
        chain = [chosen]
        for step in order[order.index(kind) + 1:] if kind in order else ["hold"]:
            if step == "generalist" and chosen != active.contract.generalist.name:
                chain.append(active.contract.generalist.name)
            elif step == HOLD_ROUTE:
                chain.append(HOLD_ROUTE)
        return chain

    async def _update_lease(self, key: str, lease: dict[str, Any] | None, routed: RoutedTask,
                            chosen: str, met: bool) -> None:
        """The episode stays on the route it was given (`chosen`: the sticky route or the one
        just scored) and leaves it only after `sticky_max_failures` failed or late steps in a
        row, for the route that answered."""
        if chosen == HOLD_ROUTE:
            return  # nothing was usable: no route to keep
        routing = self.rt.active.contract.spec.routing
        now = time.time()
        kept = (lease is not None and lease.get("route") == chosen
                and lease.get("task") == routed.task)
        failed = routed.route != chosen or not met
        strikes = (int(lease.get("strikes", 0)) if lease is not None and kept else 0) + failed
        if failed and strikes >= routing.sticky_max_failures:
            answered = routed.route if routed.route != HOLD_ROUTE and met else None
            new: dict[str, Any] = {"route": answered, "strikes": 0}
        else:
            new = {"route": chosen, "strikes": strikes if failed else 0}
        if (kept and lease is not None and all(lease.get(k, 0) == v for k, v in new.items())
                and now - float(lease.get("at", 0)) < routing.sticky_ttl_s / 2):
            return  # re-written only when it changes or ages past half its TTL
        value = {**new, "task": routed.task, "source": routed.source, "at": now}
        await self.rt.leases.put(key, value, routing.sticky_ttl_s)

    def _remember(self, decision_id: str, routed: RoutedTask) -> None:
        self._recent[decision_id] = routed
        if len(self._recent) > 50_000:
            self._recent.pop(next(iter(self._recent)))

    def recall(self, decision_id: str) -> RoutedTask | None:
        return self._recent.get(decision_id)

    def count_refusal(self, exc: RouterError) -> None:
        """Act requests that got no action: shed, rejected (client's fault) or failed."""
        outcome = ("shed" if isinstance(exc, Overloaded)
                   else "rejected" if isinstance(exc, ClientError) else "error")
        self.rt.metrics.requests.labels(route=NO_ROUTE, outcome=outcome).inc()

    def _count(self, result: ForwardResult, met: bool, elapsed_s: float) -> None:
        m = self.rt.metrics
        outcome = ("hold" if result.route == HOLD_ROUTE
                   else "fallback" if result.fallback else "ok")
        m.requests.labels(route=result.route, outcome=outcome).inc()
        m.request_duration.labels(route=result.route).observe(elapsed_s)
        (m.deadline_met if met else m.deadline_misses).labels(route=result.route).inc()
