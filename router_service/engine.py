"""One act request, transport-independent: admit, validate, resolve the task, score the routes,
keep the episode's route, forward under the deadline, record the decision.

HTTP, WebSocket and gRPC all build an `ActInput` and call `ActEngine.serve`, the one admission
path (the key's rate and robots, shedding, in-flight count, refusal metrics); nothing here knows
which transport it was.
"""

from __future__ import annotations

import itertools
import re
import secrets
import time
from dataclasses import dataclass

import numpy as np
from cachetools import FIFOCache
from numpy.typing import NDArray

from router_service.access import KeyAccess
from router_service.auth import ApiKeys
from router_service.concurrency import ran_out_of_time
from router_service.contract import HOLD_ROUTE
from router_service.deadlines import Budget, request_budget
from router_service.errors import (
    ClientError,
    InvalidRequest,
    Overloaded,
    RouterError,
    UnknownTask,
)
from router_service.forwarding import ForwardResult, Query
from router_service.keys import RobotKey
from router_service.records import CandidateRecord, DecisionRecord, EpisodeLease
from router_service.runtime import ActiveContract, RouterRuntime
from router_service.scoring import Candidate, Decision, decide, requested, score_candidates

NO_ROUTE = "none"  # route label of requests refused before routing
RECENT_DECISIONS = 50_000  # decisions feedback can name by decision_id
_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")


@dataclass(frozen=True, slots=True)
class ActInput:
    robot_id: str
    episode_id: str
    task: str | None
    state: list[float]
    deadline_ms: float | None  # relative budget, from when the request reached the router
    deadline_unix_ms: float | None  # absolute deadline (robot clock synchronised with ours)
    received_at: float  # time.monotonic() when the handler started
    key: RobotKey  # who is asking (authenticated by the transport); no default on purpose
    queued_s: float = 0.0  # estimated time the request waited in the router before that
    # A route the client asked for by name (KServe facade: the model name); it still falls back
    # along its chain when it cannot answer. None: scored as usual.
    route: str | None = None


@dataclass(frozen=True, slots=True)
class RoutedTask:
    """What feedback needs to know about a decision: the task acted on, the route, and for
    whom (the robot, and the `key_id` of the key that asked)."""

    task: str
    source: str  # "declared" | "inferred"
    route: str
    robot_id: str
    key_id: str | None  # None: a lease written before keys were recorded


@dataclass(frozen=True, slots=True)
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
        raise InvalidRequest(f"observation.state has {len(state)} values, expected {expected}",
                             field="observation.state")
    array = np.asarray(state, dtype=np.float32)
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise InvalidRequest(
            f"observation.state[{int(bad[0])}] is not finite ({state[int(bad[0])]})",
            field=f"observation.state[{int(bad[0])}]",
        )
    return array


def _check_id(value: str, field: str) -> None:
    if not _ID.match(value):
        raise InvalidRequest(f"{field} must be 1-128 characters of A-Z a-z 0-9 _ . : -",
                             field=field)


class ActEngine:
    def __init__(self, runtime: RouterRuntime, keys: ApiKeys) -> None:
        self.rt = runtime
        self.keys = keys
        self.access = KeyAccess(keys.robot_keys, runtime.metrics)
        # decision_id -> what it routed, for feedback; the oldest decisions are forgotten first
        self._recent: FIFOCache[str, RoutedTask] = FIFOCache(RECENT_DECISIONS)
        m = runtime.metrics
        self._refused = {o: m.requests.labels(route=NO_ROUTE, outcome=o)
                         for o in ("shed", "rejected", "error")}
        # Decision ids: 32 hex digits, a random prefix per process and a counter; unique across
        # replicas and restarts like uuid4's, without a getrandom() system call per request.
        self._id_prefix = secrets.token_hex(8)
        self._ids = itertools.count()

    async def serve(self, req: ActInput) -> ActReply:
        """The one admission path: shed at once rather than queue work that will be late."""
        rt = self.rt
        try:
            _check_id(req.robot_id, "robot_id")  # a malformed id stays a 422, not a 403
            self.access.authorize(req.key, req.robot_id)
            self._admit()
            rt.inflight += 1
        except RouterError as exc:
            self.count_refusal(exc)
            raise
        rt.metrics.inflight.inc()
        try:
            return await self._act(req)
        except RouterError as exc:
            self.count_refusal(exc)
            raise
        finally:
            rt.inflight -= 1
            rt.metrics.inflight.dec()

    def _admit(self) -> None:
        settings = self.rt.settings
        if self.rt.inflight >= settings.max_inflight:
            raise Overloaded(f"{self.rt.inflight} requests in flight (limit "
                             f"{settings.max_inflight})", retry_after_ms=5.0, reason="inflight")
        if not self.rt.limit.admits(self.rt.inflight):
            raise Overloaded(f"{self.rt.inflight} requests in flight; the stack answers about "
                             f"{int(self.rt.limit.limit)} in time (adaptive limit)",
                             retry_after_ms=5.0, reason="concurrency")
        lag_ms = self.rt.loop_lag.lag_ms
        if self.rt.loop_lag.backlogged(settings.max_queue_age_ms):
            raise Overloaded(f"requests wait {lag_ms:.1f} ms in the router's queue (limit "
                             f"{settings.max_queue_age_ms} ms)", retry_after_ms=lag_ms * 2,
                             reason="queue_age")

    async def _act(self, req: ActInput) -> ActReply:
        active = self.rt.active  # one contract for the whole request
        contract = active.contract
        _check_id(req.episode_id, "episode_id")
        budget = request_budget(req.received_at, req.queued_s, req.deadline_ms,
                                req.deadline_unix_ms, contract.spec.default_deadline_ms)
        self.rt.metrics.queue_wait.observe(req.queued_s)
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
        sticky = lease.route if lease is not None and lease.task == task else None
        remaining_ms = budget.remaining_ms()
        predicted = {r: h.latency.predicted_ms() for r, h in active.health.items()}
        usable = {r: h.usable() for r, h in active.health.items()}
        candidates = score_candidates(contract, task, remaining_ms, predicted, usable,
                                      inferred=probs is not None)
        self._shed_if_late_in_queue(candidates, budget, remaining_ms)
        decision = requested(candidates, req.route) or decide(
            contract, candidates, confidence, sticky)
        active.decision_counter(task, decision.route, decision.reason).inc()
        scoring_done = time.monotonic()

        query = Query(state, self._task_vector(active, task, probs))
        chain = active.chains[decision.route]
        result = await active.forwarder.forward(chain, budget.deadline, query,
                                                budget.reply_margin_ms)
        action = (result.action.tolist() if result.action is not None
                  else list(contract.spec.routing.hold_action))
        done = time.monotonic()
        met = budget.met(done, self.rt.loop_lag.lag_ms if self.rt.settings.met_counts_loop_lag
                         else 0.0)
        # Late: past the deadline, or held because the routes ran out of time.
        self.rt.limit.observe(not met or (result.action is None and ran_out_of_time(result.path)),
                              self.rt.inflight, answered=result.action is not None)
        timing = {
            "queued": round(req.queued_s * 1000, 3),
            "scoring": round((scoring_done - req.received_at) * 1000, 3),
            "upstream": round(result.upstream_ms, 3),
            "total": round((done - budget.arrival) * 1000, 3),
        }
        decision_id = f"{self._id_prefix}{next(self._ids):016x}"
        routed = RoutedTask(task, source, result.route, req.robot_id, req.key.key_id)
        self._update_lease(active, lease_key, lease, routed, decision)
        self._remember(decision_id, routed)
        active.count_reply(result, met, done - budget.arrival)
        self.rt.decision_log.append(self._record(
            active, req, decision_id, routed, confidence, probs, budget, decision, result, met,
            timing, action))
        version = (active.policy_versions.get(result.route, "unknown")
                   if result.route != HOLD_ROUTE else f"hold@{contract.version}")
        return ActReply(
            action=action, route=result.route, policy_version=version, task=task,
            task_source=source, task_confidence=round(confidence, 6), fallback=result.fallback,
            deadline_met=met, timing_ms=timing, decision_id=decision_id,
            reason=decision.reason,
        )

    # -- helpers --------------------------------------------------------------------------
    def _shed_if_late_in_queue(self, candidates: tuple[Candidate, ...], budget: Budget,
                               remaining_ms: float) -> None:
        """Hold is for routes that are down or too slow, never for the router's own queue: a
        request whose budget would have fitted a route on arrival but was eaten while it waited
        here is shed (503 + retry hint), so the robot knows it was the router."""
        if budget.queued_ms < 1.0 or any(c.fits_budget for c in candidates):
            return
        if any(c.usable and c.predicted_ms <= budget.total_ms for c in candidates):
            raise Overloaded(f"the request waited {budget.queued_ms:.1f} ms in the router's "
                             f"queue; {remaining_ms:.1f} ms left fits no route",
                             retry_after_ms=max(1.0, budget.queued_ms), reason="late_in_queue")

    @staticmethod
    def _task_vector(
        active: ActiveContract, task: str, probs: NDArray[np.float32] | None
    ) -> NDArray[np.float32]:
        # An inferred task conditions the generalist on the classifier's belief, not a guess.
        if probs is not None:
            return probs.astype(np.float32)
        return active.onehots[task]

    def _update_lease(self, active: ActiveContract, key: str, lease: EpisodeLease | None,
                      routed: RoutedTask, decision: Decision) -> None:
        """The episode stays on the route it was given (the sticky route or the one just
        scored) and leaves it after `sticky_max_failures` steps in a row on which that
        route did not answer; its next step is then scored afresh (the route's circuit and
        latency estimate say whether it is still worth it).

        A step the route answered late is not a strike: on a loaded host every route is late
        together, and moving episodes off their specialists would only pile them onto the
        generalist. Nor is an episode pinned to a route chosen only because another was out for
        the moment (open circuit, or no budget left for it): its lease, if any, is kept, and it
        returns to its route once that route is usable again."""
        if decision.route == HOLD_ROUTE or (decision.reason != "sticky" and any(
                not (c.usable and c.fits_budget) for c in decision.candidates)):
            return  # nothing to keep, or a choice forced by a passing condition
        chosen = decision.route
        routing = active.contract.spec.routing
        now = time.time()
        kept = lease is not None and lease.route == chosen and lease.task == routed.task
        failed = routed.route != chosen
        strikes = (lease.strikes if lease is not None and kept else 0) + failed
        new_route: str | None = chosen
        if failed and strikes >= routing.sticky_max_failures:
            new_route, strikes = None, 0
        elif not failed:
            strikes = 0
        if (kept and lease is not None and lease.route == new_route and lease.strikes == strikes
                and now - lease.at < routing.sticky_ttl_s / 2):
            return  # re-written only when it changes or ages past half its TTL
        self.rt.leases.put(key, EpisodeLease(new_route, strikes, routed.task, routed.source, now,
                                             routed.key_id), routing.sticky_ttl_s)

    def _record(self, active: ActiveContract, req: ActInput, decision_id: str,
                routed: RoutedTask, confidence: float, probs: NDArray[np.float32] | None,
                budget: Budget, decision: Decision, result: ForwardResult, met: bool,
                timing: dict[str, float], action: list[float]) -> DecisionRecord:
        return DecisionRecord(
            decision_id=decision_id, ts=time.time(), replica=self.rt.replica_id,
            contract_version=active.contract.version, robot_id=req.robot_id,
            key_id=req.key.key_id, episode_id=req.episode_id, task_declared=req.task,
            task=routed.task, task_source=routed.source, task_confidence=confidence,
            task_probs=probs.tolist() if probs is not None else None, state=req.state,
            budget_ms=budget.total_ms, queued_ms=budget.queued_ms,
            candidates=[CandidateRecord(c.route, c.success, c.predicted_ms, c.score,
                                        c.fits_budget, c.usable) for c in decision.candidates],
            route_chosen=decision.route, reason=decision.reason, route=result.route,
            fallback=result.fallback, path=result.path, hedged=result.hedged,
            batch_size=result.batch_size, deadline_met=met, timing_ms=timing, action=action,
        )

    def _remember(self, decision_id: str, routed: RoutedTask) -> None:
        self._recent[decision_id] = routed

    def recall(self, decision_id: str) -> RoutedTask | None:
        return self._recent.get(decision_id)

    def count_refusal(self, exc: RouterError) -> None:
        """Act requests that got no action: shed, rejected (client's fault) or failed."""
        if isinstance(exc, Overloaded):
            self.rt.metrics.shed.labels(reason=exc.reason).inc()
        outcome = ("shed" if isinstance(exc, Overloaded)
                   else "rejected" if isinstance(exc, ClientError) else "error")
        self._refused[outcome].inc()
