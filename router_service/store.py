"""What router replicas share: the active contract, episode stickiness leases, the decision log,
and feedback outcome counts. `RouterStore` is the interface; `MemoryStore` is the embedded default
(one replica, no Redis) and `RedisStore` (redis_store.py) the shared one.

Stores raise `StoreUnavailable` when their backend is away; callers decide how to degrade.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol

DECISION_LOG_MAXLEN = 100_000


class StoreUnavailable(Exception):
    """The shared store cannot be reached right now."""


@dataclass(frozen=True, slots=True)
class StoredLease:
    key: str
    value: bytes  # EpisodeLease.to_json()
    ttl_s: float


@dataclass(frozen=True, slots=True)
class LoggedDecision:
    decision_id: str
    record: bytes  # DecisionRecord.to_json(), serialised once


@dataclass
class StoreHealth:
    """Whether the shared store answered last time (the decision-log flusher finds out every
    few ms). Hot-path users skip a store that is down instead of waiting for its timeout."""

    up: bool = True


class RouterStore(Protocol):
    async def get_contract(self) -> str | None: ...
    async def put_contract(self, payload: str, version: str) -> None:
        """Store the contract and notify every replica (pub/sub)."""
    def contract_notices(self) -> AsyncIterator[str]:
        """Yields the version of each contract stored by any replica (this one included)."""
        ...
    async def get_lease(self, key: str) -> str | bytes | None: ...
    async def put_leases(self, leases: Sequence[StoredLease]) -> None:
        """One pipelined write for many leases (each with its TTL)."""
    async def append_decisions(self, entries: Sequence[LoggedDecision]) -> None: ...
    async def read_decisions(self, count: int) -> list[LoggedDecision]: ...
    async def record_outcome(self, task: str, policy: str, success: bool) -> tuple[int, int]:
        """Adds one feedback outcome; returns (successes, episodes) so far for the pair."""
        ...
    async def ping(self) -> bool: ...
    async def close(self) -> None: ...


class MemoryStore:
    """In-process store with the same interface, for a single router without Redis."""

    def __init__(self, max_leases: int = 100_000) -> None:
        self._contract: str | None = None
        self._leases: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self._max_leases = max_leases
        self._log: list[LoggedDecision] = []
        self._outcomes: dict[tuple[str, str], tuple[int, int]] = {}
        self._notices: asyncio.Queue[str] = asyncio.Queue()

    async def get_contract(self) -> str | None:
        return self._contract

    async def put_contract(self, payload: str, version: str) -> None:
        self._contract = payload
        self._notices.put_nowait(version)

    async def contract_notices(self) -> AsyncIterator[str]:
        while True:
            yield await self._notices.get()

    async def get_lease(self, key: str) -> bytes | None:
        item = self._leases.get(key)
        if item is None:
            return None
        value, expires = item
        if time.monotonic() > expires:
            del self._leases[key]
            return None
        return value

    async def put_leases(self, leases: Sequence[StoredLease]) -> None:
        for lease in leases:
            self.put_lease(lease)

    def put_lease(self, lease: StoredLease) -> None:
        self._leases[lease.key] = (lease.value, time.monotonic() + lease.ttl_s)
        self._leases.move_to_end(lease.key)
        while len(self._leases) > self._max_leases:
            self._leases.popitem(last=False)

    async def append_decisions(self, entries: Sequence[LoggedDecision]) -> None:
        self._log.extend(entries)
        del self._log[:-DECISION_LOG_MAXLEN]

    async def read_decisions(self, count: int) -> list[LoggedDecision]:
        return self._log[-count:]

    async def record_outcome(self, task: str, policy: str, success: bool) -> tuple[int, int]:
        wins, total = self._outcomes.get((task, policy), (0, 0))
        self._outcomes[(task, policy)] = (wins + int(success), total + 1)
        return self._outcomes[(task, policy)]

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        return None
