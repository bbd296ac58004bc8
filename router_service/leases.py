"""Episode stickiness leases: which route an episode is on, shared by every replica.

Reads go to a small local cache first: a robot streams its episode to one replica at 10-50 Hz,
and a store round trip on every step would cost more than the scoring it feeds. An entry is
trusted for `fresh_s` only, so an episode that moves between replicas is re-read from the store
within a second. Writes go to the local copy and the store. While the store is away, the local
copy (full TTL) keeps episodes sticky on this replica, and the failure is counted.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

import orjson

from router_service.metrics import RouterMetrics
from router_service.store import MemoryStore, RouterStore, StoreHealth, StoreUnavailable


class EpisodeLeases:
    def __init__(self, store: RouterStore, metrics: RouterMetrics, health: StoreHealth,
                 fresh_s: float = 1.0, max_cached: int = 100_000) -> None:
        self._store = store
        self._health = health
        self._metrics = metrics
        self._local = MemoryStore()
        self._fresh: OrderedDict[str, tuple[dict[str, Any], float]] = OrderedDict()
        self._fresh_s = fresh_s
        self._max_cached = max_cached

    async def get(self, key: str) -> dict[str, Any] | None:
        now = time.monotonic()
        hit = self._fresh.get(key)
        if hit is not None and now - hit[1] < self._fresh_s:
            return hit[0]
        raw = None
        if self._health.up:
            try:
                raw = await self._store.get_lease(key)
            except StoreUnavailable:
                self._metrics.errors.labels(kind="store_unavailable").inc()
        if raw is None:
            raw = await self._local.get_lease(key)
        lease: dict[str, Any] | None = orjson.loads(raw) if raw else None
        if lease is not None:
            self._remember(key, lease, now)
        return lease

    async def put(self, key: str, lease: dict[str, Any], ttl_s: float) -> None:
        raw = orjson.dumps(lease).decode()
        self._remember(key, lease, time.monotonic())
        await self._local.put_lease(key, raw, ttl_s)
        if self._health.up:
            try:
                await self._store.put_lease(key, raw, ttl_s)
            except StoreUnavailable:
                self._metrics.errors.labels(kind="store_unavailable").inc()

    def _remember(self, key: str, lease: dict[str, Any], now: float) -> None:
        self._fresh[key] = (lease, now)
        self._fresh.move_to_end(key)
        if len(self._fresh) > self._max_cached:
            self._fresh.popitem(last=False)
