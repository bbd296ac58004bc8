"""Router metrics, on a registry of their own (created by the app's lifespan, never at import,
so tests and several apps in one process do not collide). Names are the operators' contract:
dashboards and alerts in deploy/ query exactly these."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)
WAIT_BUCKETS_S = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.02)
LATENCY_BUCKETS_S = (
    0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0,
)


@dataclass
class RouterMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self._versions: set[str] = set()
        self.requests = Counter(
            "router_requests", "Act requests by final route and outcome",
            ["route", "outcome"], registry=r,
        )
        self.request_duration = Histogram(
            "router_request_duration_seconds", "Receipt to reply, per final route",
            ["route"], buckets=LATENCY_BUCKETS_S, registry=r,
        )
        self.upstream_duration = Histogram(
            "router_upstream_duration_seconds", "One Triton call, per route attempted",
            ["route"], buckets=LATENCY_BUCKETS_S, registry=r,
        )
        self.batch_size = Histogram(
            "router_batch_size", "Rows per Triton request (cross-robot micro-batching)",
            ["route"], buckets=BATCH_BUCKETS, registry=r,
        )
        self.batch_wait = Histogram(
            "router_batch_wait_seconds", "Time a row waited for its batch to leave",
            ["route"], buckets=WAIT_BUCKETS_S, registry=r,
        )
        self.queue_wait = Histogram(
            "router_queue_wait_seconds",
            "Estimated time a request waited in the router before its handler ran",
            buckets=(*WAIT_BUCKETS_S, 0.05, 0.1), registry=r,
        )
        self.gc_pause = Histogram(
            "router_gc_pause_seconds",
            "Python garbage collections: the whole process, event loop included, stops for each",
            ["generation"], buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2),
            registry=r,
        )
        self.decisions = Counter(
            "router_decisions", "Scoring decisions", ["task", "route", "reason"], registry=r
        )
        self.fallbacks = Counter(
            "router_fallbacks", "Fallbacks taken", ["from_route", "to_route", "reason"],
            registry=r,
        )
        self.deadline_misses = Counter(
            "router_deadline_misses", "Replies sent after their deadline", ["route"], registry=r
        )
        self.deadline_met = Counter(
            "router_deadline_met", "Replies sent within their deadline", ["route"], registry=r
        )
        self.errors = Counter("router_errors", "Errors by kind", ["kind"], registry=r)
        self.misroutes = Counter(
            "router_misroutes", "Feedback: routed for the wrong task",
            ["true_task", "routed_task"], registry=r,
        )
        self.inflight = Gauge("router_inflight_requests", "Act requests in flight",
                              multiprocess_mode="livesum", registry=r)
        self.hedges = Counter(
            "router_hedges", "Hedged requests: the backup route was also asked", ["route"],
            registry=r,
        )
        self.hedges_over_budget = Counter(
            "router_hedges_over_budget", "Hedges not sent: the extra-call budget was spent "
            "(routing.hedging.max_extra_share)", ["route"], registry=r,
        )
        self.shed = Counter("router_shed", "Requests shed at once", ["reason"], registry=r)
        self.concurrency_limit = Gauge(
            "router_concurrency_limit", "Requests this process admits in flight (adaptive)",
            multiprocess_mode="livesum", registry=r)
        self.rate_limited = Counter(
            "router_rate_limited", "Requests refused because their key was over its rate",
            ["key_id"], registry=r,
        )
        self.circuit_open = Gauge(
            "router_circuit_open", "1 while a route's circuit breaker is open", ["route"],
            multiprocess_mode="livemax", registry=r,
        )
        self.route_latency_estimate = Gauge(
            "router_route_latency_estimate_seconds", "Predicted upstream latency used in scoring",
            ["route"], multiprocess_mode="livemax", registry=r,
        )
        self.calibration_stale = Gauge(
            "router_calibration_stale",
            "1 when feedback success drifts outside the calibration interval",
            ["task", "policy"], multiprocess_mode="livemax", registry=r,
        )
        self.redis_up = Gauge("router_redis_up", "1 when the shared store answers",
                              multiprocess_mode="livemin", registry=r)
        self.decision_log_buffered = Gauge(
            "router_decision_log_buffered", "Decision-log entries waiting for the store",
            multiprocess_mode="livesum", registry=r,
        )
        self.decision_log_lost = Counter(
            "router_decision_log_lost", "Decision-log entries dropped (buffer overflow)",
            registry=r,
        )
        self.contract_info = Gauge(
            "router_contract_info", "Active deployment contract", ["version"],
            multiprocess_mode="livemax", registry=r,
        )
        self.contract_reloads = Counter(
            "router_contract_reloads", "Contract reload attempts", ["result"], registry=r
        )
        # Session transports for third-party clients (transport: openpi, ...).
        self.sessions = Counter(
            "router_sessions", "Client sessions by transport and event (opened, closed)",
            ["transport", "event"], registry=r,
        )
        self.protocol_errors = Counter(
            "router_protocol_errors", "Handshakes and frames a session transport refused, by "
            "error code", ["transport", "code"], registry=r,
        )

    def set_contract(self, version: str) -> None:
        # Zero the old version first: with several workers the value lives in a shared file
        # that `clear()` does not reach.
        for old in list(self._versions):
            self.contract_info.labels(version=old).set(0)
        self.contract_info.clear()
        self.contract_info.labels(version=version).set(1)
        self._versions = {version}
