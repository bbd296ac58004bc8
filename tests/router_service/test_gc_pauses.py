"""Every garbage collection is timed into its generation's histogram, and removal stops it."""

from __future__ import annotations

import gc

from router_service.gc_pauses import GcPauses
from router_service.metrics import RouterMetrics


def count(metrics: RouterMetrics, generation: int) -> float:
    value = metrics.registry.get_sample_value(
        "router_gc_pause_seconds_count", {"generation": str(generation)})
    return value or 0.0


def test_a_full_collection_is_observed_then_removal_stops_it() -> None:
    metrics = RouterMetrics()
    pauses = GcPauses(metrics.gc_pause)
    pauses.install()
    try:
        gc.collect(2)
        assert count(metrics, 2) == 1
        gc.collect(0)
        assert count(metrics, 0) >= 1
    finally:
        pauses.remove()
    gc.collect(2)
    assert count(metrics, 2) == 1
    pauses.remove()  # a second removal is harmless
