from __future__ import annotations

from router_service.route_health import CircuitBreaker, LatencyEstimator


def test_estimator_uses_prior_until_enough_samples() -> None:
    est = LatencyEstimator(prior_ms=7.0)
    for _ in range(5):
        est.observe(1.0)
    assert est.predicted_ms() == 7.0
    for _ in range(20):
        est.observe(1.0)
    assert est.predicted_ms() == 1.0


def test_estimator_tracks_the_tail_not_the_mean() -> None:
    est = LatencyEstimator(prior_ms=1.0, quantile=0.9, recompute_every=1)
    for i in range(100):
        est.observe(10.0 if i % 5 == 0 else 1.0)  # 20% slow
    assert est.predicted_ms() == 10.0


def test_breaker_opens_half_opens_and_closes() -> None:
    breaker = CircuitBreaker(threshold=3, open_s=1.0)
    for _ in range(3):
        assert breaker.acquire(now=0.0)
        breaker.record_failure(now=0.0)
    assert breaker.is_open and not breaker.acquire(now=0.5)
    assert breaker.acquire(now=1.5)       # one probe
    assert not breaker.acquire(now=1.6)   # only one
    breaker.record_failure(now=1.7)       # probe failed: open again
    assert not breaker.acquire(now=2.0)
    assert breaker.acquire(now=2.8)
    breaker.record_success()
    assert not breaker.is_open and breaker.acquire(now=2.9)


def test_looking_does_not_use_up_the_probe() -> None:
    # Regression: the scorer checked availability with the probing call, so the forwarder found
    # the probe taken, skipped the route, and the circuit never closed again.
    breaker = CircuitBreaker(threshold=1, open_s=1.0)
    breaker.record_failure(now=0.0)
    assert not breaker.available(now=0.5)
    for _ in range(3):
        assert breaker.available(now=1.5)
    assert breaker.acquire(now=1.5)
    assert not breaker.available(now=1.6)


def test_probe_that_never_reports_frees_its_slot() -> None:
    breaker = CircuitBreaker(threshold=1, open_s=1.0)
    breaker.record_failure(now=0.0)
    assert breaker.acquire(now=1.0)
    assert not breaker.acquire(now=1.5)
    assert breaker.acquire(now=2.1)  # the first probe was lost (e.g. a cancelled hedge)
    breaker.release()
    assert breaker.acquire(now=2.2)
