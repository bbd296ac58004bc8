"""Everything one router process owns while it serves, created and closed by the app lifespan:
the Triton client, the shared store, metrics, the decision log, and the active contract.

The active contract and everything derived from it (classifier, route health, forwarder) are
swapped as one object, so a request sees one contract from start to end, and a reload that
fails validation leaves the previous one serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from router_service.classifier import TaskClassifier
from router_service.concurrency import AdaptiveLimit
from router_service.contract import HOLD_ROUTE, Contract, contract_from_json, load_contract
from router_service.decision_log import DecisionLog
from router_service.drain import Drain
from router_service.errors import ContractError, UpstreamError
from router_service.forwarding import Forwarder, ForwardResult
from router_service.leases import EpisodeLeases
from router_service.loop_lag import LoopLag
from router_service.metrics import RouterMetrics
from router_service.redis_store import RedisStore
from router_service.route_health import CircuitBreaker, LatencyEstimator, RouteHealth
from router_service.settings import RouterSettings
from router_service.store import MemoryStore, RouterStore, StoreHealth, StoreUnavailable
from router_service.upstream import TritonUpstream, Upstream
from router_service.upstream_http import TritonHttpUpstream
from router_service.upstream_stream import TritonStreamUpstream

log = logging.getLogger("router_service")


@dataclass(frozen=True)
class ActiveContract:
    """A contract and everything derived from it once, at activation, instead of per request:
    fallback chains, one-hot task vectors, metric label children."""

    contract: Contract
    classifier: TaskClassifier
    health: dict[str, RouteHealth]
    forwarder: Forwarder
    policy_versions: dict[str, str]
    task_index: dict[str, int]
    chains: dict[str, list[str]]
    onehots: dict[str, NDArray[np.float32]]
    metrics: RouterMetrics

    # Label children resolved on first use and kept: `.labels()` takes a lock and builds a
    # tuple per call, four times per request otherwise.
    _children: dict[tuple[object, ...], Any] = field(default_factory=dict, compare=False)

    def _child(self, metric: Any, *values: str) -> Any:
        """`metric.labels(*values)` (in the metric's label order), once per label values."""
        key = (id(metric), *values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def decision_counter(self, task: str, route: str, reason: str) -> Any:
        return self._child(self.metrics.decisions, task, route, reason)

    def count_reply(self, result: ForwardResult, met: bool, elapsed_s: float) -> None:
        m, route = self.metrics, result.route
        outcome = "hold" if route == HOLD_ROUTE else "fallback" if result.fallback else "ok"
        self._child(m.requests, route, outcome).inc()
        self._child(m.request_duration, route).observe(elapsed_s)
        self._child(m.deadline_met if met else m.deadline_misses, route).inc()


def fallback_chains(contract: Contract) -> dict[str, list[str]]:
    """For each route the engine may choose, the routes tried in order, ending in hold."""
    order = list(contract.spec.routing.fallback_order)
    generalist = contract.generalist.name
    chains = {HOLD_ROUTE: [HOLD_ROUTE]}
    for policy in contract.spec.policies:
        chain = [policy.name]
        later = order[order.index(policy.kind) + 1:] if policy.kind in order else ["hold"]
        for step in later:
            if step == "generalist" and policy.name != generalist:
                chain.append(generalist)
            elif step == HOLD_ROUTE:
                chain.append(HOLD_ROUTE)
        chains[policy.name] = chain
    return chains


class RouterRuntime:
    def __init__(self, settings: RouterSettings, metrics: RouterMetrics | None = None) -> None:
        self.settings = settings
        # Several worker processes share one replica name: each logs under its own.
        self.replica_id = (settings.replica_id if settings.workers == 1
                           else f"{settings.replica_id}-{os.getpid()}")
        self.metrics = metrics or RouterMetrics()
        self.store: RouterStore = (
            RedisStore(settings.redis_url) if settings.redis_url else MemoryStore()
        )
        self.upstream: Upstream = (
            TritonHttpUpstream(settings.triton_http_url) if settings.triton_protocol == "http"
            else TritonStreamUpstream(settings.triton_grpc_url)
            if settings.triton_protocol == "grpc-stream"
            else TritonUpstream(settings.triton_grpc_url))
        self.store_health = StoreHealth()
        self.decision_log = DecisionLog(self.store, self.metrics, self.store_health)
        self.leases = EpisodeLeases(self.store, self.metrics, self.store_health)
        self._active: ActiveContract | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._retiring: set[asyncio.Task[None]] = set()
        self.inflight = 0
        self.limit = AdaptiveLimit(settings.max_inflight, enabled=settings.adaptive_limit,
                                   report=self.metrics.concurrency_limit.set)
        self.loop_lag = LoopLag()
        self.triton_ready = False
        self.drain = Drain(settings.drain_s)

    @property
    def active(self) -> ActiveContract:
        if self._active is None:
            raise ContractError("no contract loaded")
        return self._active

    @property
    def has_contract(self) -> bool:
        return self._active is not None

    # -- contract -------------------------------------------------------------------------
    async def _activate(self, contract: Contract) -> ActiveContract:
        model_path, stats_path = contract.classifier_paths()
        try:
            classifier = TaskClassifier(model_path, stats_path, contract.task_names)
        except (OSError, ValueError, RuntimeError) as exc:
            raise ContractError(
                f"task_classifier: cannot load {model_path}: {exc}", field="task_classifier"
            ) from exc
        old = self._active.health if self._active else {}
        breaker_spec = contract.spec.routing.circuit_breaker
        health = {}
        for policy in contract.spec.policies:
            previous = old.get(policy.name)
            health[policy.name] = RouteHealth(
                latency=previous.latency if previous else
                LatencyEstimator(prior_ms=policy.expected_latency_ms),
                breaker=CircuitBreaker(breaker_spec.failure_threshold, breaker_spec.open_s),
            )
        versions = {
            p.name: await self.upstream.policy_version(p.name) for p in contract.spec.policies
        }
        routing = contract.spec.routing
        forwarder = Forwarder(health, self.metrics, self.upstream.infer, contract.generalist.name,
                              routing.batching, routing.hedging)
        for name in health.keys() - old.keys():
            try:
                await forwarder.warm_up(name, contract.spec.state_dim, len(contract.task_names))
            except UpstreamError as exc:
                log.warning("warm-up of %s failed: %s", name, exc)
        onehots = {}
        for i, task in enumerate(contract.task_names):
            onehots[task] = np.zeros(len(contract.task_names), dtype=np.float32)
            onehots[task][i] = 1.0
        active = ActiveContract(
            contract=contract, classifier=classifier, health=health, forwarder=forwarder,
            policy_versions=versions,
            task_index={t: i for i, t in enumerate(contract.task_names)},
            chains=fallback_chains(contract), onehots=onehots, metrics=self.metrics,
        )
        previous_forwarder = self._active.forwarder if self._active else None
        self._active = active
        if previous_forwarder is not None:  # requests still on it finish; its batchers close
            retire = asyncio.create_task(self._retire(previous_forwarder))
            self._retiring.add(retire)  # referenced until done, then dropped (one per reload)
            retire.add_done_callback(self._retiring.discard)
        self.metrics.set_contract(contract.version)
        for route in health:
            self.metrics.circuit_open.labels(route=route).set(0)
        return active

    @staticmethod
    async def _retire(forwarder: Forwarder, grace_s: float = 5.0) -> None:
        await asyncio.sleep(grace_s)
        await forwarder.close()

    async def load_initial_contract(self) -> None:
        """The store's contract wins (replicas agree); else the file, which is then shared."""
        stored = None
        with contextlib.suppress(StoreUnavailable):
            stored = await self.store.get_contract()
        if stored is not None:
            try:
                await self._activate(contract_from_json(stored))
                return
            except ContractError as exc:
                log.warning("stored contract rejected, loading %s: %s",
                            self.settings.contract_path, exc)
        await self.reload_from_file(self.settings.contract_path)

    async def reload_from_file(self, path: Path | None = None) -> Contract:
        """Validate, activate here, then share; any failure leaves the old contract serving."""
        try:
            contract = load_contract(path or self.settings.contract_path)
            await self._activate(contract)
        except ContractError:
            self.metrics.contract_reloads.labels(result="rejected").inc()
            raise
        self.metrics.contract_reloads.labels(result="ok").inc()
        try:
            await self.store.put_contract(contract.model_dump_json(), contract.version)
        except StoreUnavailable:
            log.warning("contract %s active here but not shared: store unavailable",
                        contract.version)
        return contract

    async def _watch_contract(self) -> None:
        async for version in self.store.contract_notices():
            if self._active is not None and version == self._active.contract.version:
                continue
            try:
                stored = await self.store.get_contract()
                if stored is None:
                    continue
                contract = contract_from_json(stored)
                if self._active and contract.version == self._active.contract.version:
                    continue
                await self._activate(contract)
                self.metrics.contract_reloads.labels(result="ok").inc()
                log.info("contract %s activated from store", contract.version)
            except (ContractError, StoreUnavailable) as exc:
                self.metrics.contract_reloads.labels(result="rejected").inc()
                log.warning("contract notice %r not applied: %s", version, exc)

    # -- health ---------------------------------------------------------------------------
    async def refresh_health(self) -> None:
        server = await self.upstream.server_ready()
        if server is not None:
            self.triton_ready = server
        if self._active is not None:
            for route, health in self._active.health.items():
                model = await self.upstream.model_ready(route) if self.triton_ready else False
                if model is not None:  # a timed-out check leaves the route as it was
                    health.model_ready = model
                self.metrics.circuit_open.labels(route=route).set(int(health.breaker.is_open))
                self.metrics.route_latency_estimate.labels(route=route).set(
                    health.latency.predicted_ms() / 1000
                )
        self.metrics.redis_up.set(int(await self.store.ping()))

    async def _poll_health(self) -> None:
        while True:
            try:
                await self.refresh_health()
            except Exception:  # a failed poll is logged; the next one may succeed
                log.exception("health poll failed")
            await asyncio.sleep(self.settings.health_poll_s)

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        await self.refresh_health()
        await self.load_initial_contract()
        await self.refresh_health()
        for coro in (self.decision_log.run(), self.leases.run(), self._watch_contract(),
                     self._poll_health(), self.loop_lag.run()):
            self._tasks.append(asyncio.create_task(coro))

    async def close(self) -> None:
        for task in [*self._tasks, *self._retiring]:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.decision_log.drain()
        await self.leases.close()
        if self._active is not None:
            await self._active.forwarder.close()
        await self.upstream.close()
        await self.store.close()
