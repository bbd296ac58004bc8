"""The decision log: every act decision, with what is needed to replay it, appended to the
store off the request path. The request only queues its typed record; the background flusher
serialises each record once and writes a batch per pipelined round trip. Entries wait in a
bounded buffer while the store is away and are flushed, in order, when it returns; only a
buffer overflow loses entries, and that is counted."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

from router_service.metrics import RouterMetrics
from router_service.records import DecisionRecord
from router_service.store import LoggedDecision, RouterStore, StoreHealth, StoreUnavailable


class DecisionLog:
    def __init__(
        self,
        store: RouterStore,
        metrics: RouterMetrics,
        health: StoreHealth,
        max_buffer: int = 200_000,
        batch_size: int = 512,
        # Each flush is one pipelined round trip: fewer, larger batches cost Redis and the
        # router less CPU per entry; entries are in the store within ~0.1 s.
        interval_s: float = 0.1,
        retry_s: float = 0.25,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._pending: deque[DecisionRecord] = deque()  # not yet serialised
        self._buffer: deque[LoggedDecision] = deque()  # serialised, not yet stored
        self._max_buffer = max_buffer
        self._batch_size = batch_size
        self._interval_s = interval_s
        self._retry_s = retry_s
        self.health = health

    def append(self, record: DecisionRecord) -> None:
        if len(self._pending) + len(self._buffer) >= self._max_buffer:
            self._metrics.decision_log_lost.inc()
            return
        self._pending.append(record)

    @property
    def buffered(self) -> int:
        return len(self._pending) + len(self._buffer)

    async def flush_once(self) -> int:
        """Writes one batch; entries leave the buffer only once the store has them."""
        while self._pending and len(self._buffer) < self._batch_size:
            record = self._pending.popleft()
            self._buffer.append(LoggedDecision(record.decision_id, record.to_json()))
        if not self._buffer:
            return 0
        batch = [self._buffer[i] for i in range(min(self._batch_size, len(self._buffer)))]
        await self._store.append_decisions(batch)
        for _ in batch:
            self._buffer.popleft()
        return len(batch)

    async def run(self) -> None:
        while True:
            try:
                while await self.flush_once():
                    pass
                self._set_store_up(True)
                delay = self._interval_s
            except StoreUnavailable:
                self._set_store_up(False)
                delay = self._retry_s
            self._metrics.decision_log_buffered.set(self.buffered)
            await asyncio.sleep(delay)

    async def drain(self, timeout_s: float = 2.0) -> None:
        """On shutdown: try to hand every buffered entry to the store."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while self.buffered and asyncio.get_running_loop().time() < deadline:
            try:
                await self.flush_once()
            except StoreUnavailable:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.sleep(self._retry_s)
        if self.buffered:
            self._metrics.decision_log_lost.inc(self.buffered)

    def _set_store_up(self, up: bool) -> None:
        self.health.up = up
        self._metrics.redis_up.set(1 if up else 0)
