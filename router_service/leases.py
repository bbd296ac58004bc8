"""Episode stickiness leases: which route an episode is on, shared by every replica.

Reads go to a small local cache first: a robot streams its episode to one replica at 10-50 Hz,
and a store round trip on every step would cost more than the scoring it feeds. An entry is
trusted for `fresh_s`; after that the next step still uses it and re-reads the store in the
background, so an episode that moves between replicas is seen within about a second and no
step waits for Redis once its episode is known here.

Writes never wait either: `put` updates the local copy and queues the write; a background task
sends what is queued as one pipelined batch every few ms. While the store is away the local
copy (full TTL) keeps episodes sticky on this replica, and the failure is counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from cachetools import LRUCache

from router_service.metrics import RouterMetrics
from router_service.records import EpisodeLease
from router_service.store import (
    MemoryStore,
    RouterStore,
    StoredLease,
    StoreHealth,
    StoreUnavailable,
)


class EpisodeLeases:
    def __init__(self, store: RouterStore, metrics: RouterMetrics, health: StoreHealth,
                 fresh_s: float = 1.0, max_cached: int = 100_000,
                 flush_every_s: float = 0.02) -> None:
        self._store = store
        self._health = health
        self._metrics = metrics
        self._local = MemoryStore(max_leases=max_cached)
        self._cache: LRUCache[str, tuple[EpisodeLease, float]] = LRUCache(max_cached)
        self._fresh_s = fresh_s
        self._queued: dict[str, StoredLease] = {}
        self._refreshing: set[str] = set()
        self._wakeup = asyncio.Event()
        self._flush_every_s = flush_every_s
        self._tasks: set[asyncio.Task[None]] = set()

    async def get(self, key: str) -> EpisodeLease | None:
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None:
            lease, read_at = hit
            if now - read_at >= self._fresh_s and key not in self._refreshing:
                self._refreshing.add(key)
                task = asyncio.get_running_loop().create_task(self._refresh(key))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            return lease
        return await self._read(key, now)

    async def _refresh(self, key: str) -> None:
        try:
            await self._read(key, time.monotonic())
        finally:
            self._refreshing.discard(key)

    async def _read(self, key: str, now: float) -> EpisodeLease | None:
        raw: str | bytes | None = None
        if self._health.up and key not in self._queued:  # a queued write is newer
            try:
                raw = await self._store.get_lease(key)
            except StoreUnavailable:
                self._metrics.errors.labels(kind="store_unavailable").inc()
        if raw is None:
            raw = await self._local.get_lease(key)
        lease = EpisodeLease.from_json(raw) if raw else None
        if lease is not None:
            self._cache[key] = (lease, now)
        return lease

    def put(self, key: str, lease: EpisodeLease, ttl_s: float) -> None:
        stored = StoredLease(key, lease.to_json(), ttl_s)
        self._cache[key] = (lease, time.monotonic())
        self._local.put_lease(stored)
        self._queued[key] = stored  # a later write of the same episode replaces it
        self._wakeup.set()

    async def run(self) -> None:
        """The background writer: one pipelined batch of queued leases at a time."""
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            await asyncio.sleep(self._flush_every_s)  # let a few ms of writes gather
            batch, self._queued = list(self._queued.values()), {}
            if not batch or not self._health.up:
                continue  # the local copy holds them; the store sees the next write
            try:
                await self._store.put_leases(batch)
            except StoreUnavailable:
                self._metrics.errors.labels(kind="store_unavailable").inc()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(StoreUnavailable):
            if self._queued and self._health.up:
                await self._store.put_leases(list(self._queued.values()))
