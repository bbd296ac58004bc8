"""`RouterStore` on Redis: what several router replicas share.

Keys: `router:contract` (JSON), channel `router:contract:notices` (pub/sub), `router:lease:<key>`
(stickiness, with TTL), stream `router:decisions` (bounded, approximate MAXLEN), hash
`router:outcomes` (feedback counts). Short socket timeouts: a hung Redis must cost a request
milliseconds, not its whole budget; the engine marks the store down and stops asking until the
background ping sees it back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from router_service.store import (
    DECISION_LOG_MAXLEN,
    LoggedDecision,
    StoredLease,
    StoreUnavailable,
)

CONTRACT_KEY = "router:contract"
NOTICE_CHANNEL = "router:contract:notices"
DECISIONS_STREAM = "router:decisions"
OUTCOMES_KEY = "router:outcomes"


class RedisStore:
    def __init__(self, url: str, op_timeout_s: float = 0.05) -> None:
        self._redis: aioredis.Redis = aioredis.Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=op_timeout_s,
            socket_connect_timeout=op_timeout_s,
        )
        # Pub/sub blocks on reads: a separate connection without the short read timeout.
        self._url = url

    async def _call(self, coro: Any) -> Any:
        try:
            return await coro
        except (TimeoutError, RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc

    async def get_contract(self) -> str | None:
        value: str | None = await self._call(self._redis.get(CONTRACT_KEY))
        return value

    async def put_contract(self, payload: str, version: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(CONTRACT_KEY, payload)
            pipe.publish(NOTICE_CHANNEL, version)
            await self._call(pipe.execute())

    async def contract_notices(self) -> AsyncIterator[str]:
        """Survives Redis restarts: reconnects and yields again; a restart may hide a notice, so
        after reconnecting it yields "" to make the caller re-read the stored contract."""
        while True:
            client = aioredis.Redis.from_url(self._url, decode_responses=True)
            pubsub = client.pubsub()
            try:
                await pubsub.subscribe(NOTICE_CHANNEL)
                yield ""
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        yield str(message["data"])
            except (RedisError, OSError):
                await asyncio.sleep(0.5)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                    await client.aclose()

    async def get_lease(self, key: str) -> str | None:
        value: str | None = await self._call(self._redis.get(f"router:lease:{key}"))
        return value

    async def put_leases(self, leases: Sequence[StoredLease]) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for lease in leases:
                pipe.set(f"router:lease:{lease.key}", lease.value, px=int(lease.ttl_s * 1000))
            await self._call(pipe.execute())

    async def append_decisions(self, entries: Sequence[LoggedDecision]) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for entry in entries:
                fields: dict[Any, Any] = {"decision_id": entry.decision_id,
                                          "record": entry.record}
                pipe.xadd(
                    DECISIONS_STREAM, fields, maxlen=DECISION_LOG_MAXLEN, approximate=True
                )
            await self._call(pipe.execute())

    async def read_decisions(self, count: int) -> list[LoggedDecision]:
        rows = await self._call(self._redis.xrevrange(DECISIONS_STREAM, count=count))
        return [LoggedDecision(f["decision_id"], f["record"].encode())
                for _, f in reversed(rows)]

    async def record_outcome(self, task: str, policy: str, success: bool) -> tuple[int, int]:
        field = f"{task}|{policy}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hincrby(OUTCOMES_KEY, f"{field}|wins", int(success))
            pipe.hincrby(OUTCOMES_KEY, f"{field}|total", 1)
            wins, total = await self._call(pipe.execute())
        return int(wins), int(total)

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except (TimeoutError, RedisError, OSError):
            return False

    async def close(self) -> None:
        await self._redis.aclose()
