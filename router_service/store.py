"""What router replicas share: the active contract, episode stickiness leases, the decision log,
and feedback outcome counts. `RouterStore` is the interface; `MemoryStore` is the embedded default
(one replica, no Redis) and `RedisStore` (redis_store.py) the shared one.

Stores raise `StoreUnavailable` when their backend is away; callers decide how to degrade.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from cachetools import TLRUCache

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


def _lease_expiry(_key: str, lease: StoredLease, now: float) -> float:
    return now + lease.ttl_s


class MemoryStore:
    """In-process store with the same interface, for a single router without Redis.

    Leases live in a TLRU cache: each expires `ttl_s` after its write (as Redis's PX does), and
    past `max_leases` expired ones go first, then the least recently used."""

    def __init__(self, max_leases: int = 100_000) -> None:
        self._contract: str | None = None
        self._leases: TLRUCache[str, StoredLease] = TLRUCache(max_leases, _lease_expiry)
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
        lease = self._leases.get(key)
        return lease.value if lease is not None else None

    async def put_leases(self, leases: Sequence[StoredLease]) -> None:
        for lease in leases:
            self.put_lease(lease)

    def put_lease(self, lease: StoredLease) -> None:
        self._leases[lease.key] = lease

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
