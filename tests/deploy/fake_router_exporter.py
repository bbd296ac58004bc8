"""A stand-in for router replicas' /metrics, built from the docs/interfaces.md table (not from
the router's code), so queries can run on a live Prometheus before the router is wired up.
The test against the real router swaps this for the real process."""

from __future__ import annotations

import random
import threading
from collections.abc import Sequence
from itertools import product
from typing import Any

from deploy_testkit import RouterMetric
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from deploy.local.process import free_port

BUCKETS = (.001, .002, .003, .005, .0075, .01, .015, .02, .03, .05, .075, .1, .2, .5, 1.0)
LABEL_VALUES: dict[str, Sequence[str]] = {
    "route": ("generalist", "specialist_reach_v3"),
    "outcome": ("ok", "fallback", "rejected"),
    "task": ("reach-v3",),
    # A policy Triton does not serve: TritonModelNotReady must notice it, and only it.
    "policy": ("generalist", "specialist_reach_v3", "specialist_not_deployed"),
    "reason": ("calibrated",),
    "kind": ("upstream",),
    "from_route": ("specialist_reach_v3",),
    "to_route": ("generalist",),
    "true_task": ("pick-place-v3",),
    "routed_task": ("reach-v3",),
    "version": ("ci-1",),
}
# A healthy router: counters that mean trouble exist (at 0) but do not move.
STILL_COUNTERS = {"router_deadline_misses_total", "router_decision_log_lost_total"}
GAUGE_VALUES = {
    "router_circuit_open": 0.0,
    "router_calibration_stale": 0.0,
    "router_redis_up": 1.0,
    "router_decision_log_buffered": 3.0,
    "router_contract_info": 1.0,
    "router_inflight_requests": 2.0,
}


class FakeRouterExporter:
    """Serves every contract metric with every label combination, changing over time."""

    def __init__(self, contract: dict[str, RouterMetric], seed: int = 0) -> None:
        self.registry = CollectorRegistry()
        self.port = free_port()
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self._metrics: list[tuple[RouterMetric, Any]] = []
        for m in contract.values():
            name = m.name.removesuffix("_total")
            cls: Any = {"counter": Counter, "gauge": Gauge, "histogram": Histogram}[m.kind]
            kwargs = {"buckets": BUCKETS} if m.kind == "histogram" else {}
            metric = cls(name, m.name, list(m.labels), registry=self.registry, **kwargs)
            self._metrics.append((m, metric))
        self._server: Any = None
        self._thread = threading.Thread(target=self._tick_forever, daemon=True)

    def _children(self, m: RouterMetric, metric: Any) -> list[Any]:
        if not m.labels:
            return [metric]
        # Every combination exists from the first scrape (prometheus_client creates a labelled
        # child on first use; inc(0) here is that use).
        combos = product(*(LABEL_VALUES[label] for label in m.labels))
        return [metric.labels(*combo) for combo in combos]

    def _tick(self) -> None:
        for m, metric in self._metrics:
            for child in self._children(m, metric):
                if m.kind == "counter":
                    if m.name not in STILL_COUNTERS:
                        child.inc(self._rng.randint(1, 20))
                elif m.kind == "histogram":
                    for _ in range(10):
                        child.observe(self._rng.uniform(0.001, 0.025))
                else:
                    child.set(GAUGE_VALUES.get(m.name, 1.0))

    def _tick_forever(self) -> None:
        while not self._stop.wait(0.2):
            self._tick()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> FakeRouterExporter:
        for m, metric in self._metrics:
            if m.kind == "counter":
                for child in self._children(m, metric):
                    child.inc(0)
        self._tick()
        self._server, _ = start_http_server(self.port, addr="127.0.0.1", registry=self.registry)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
