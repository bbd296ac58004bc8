from __future__ import annotations

import asyncio
import time

from router_service.store import MemoryStore, StoredLease


def test_memory_store_leases_expire_per_entry_and_are_bounded() -> None:
    async def main() -> None:
        store = MemoryStore(max_leases=2)
        store.put_lease(StoredLease("short", b"s", 0.05))
        store.put_lease(StoredLease("long", b"l", 60.0))
        assert await store.get_lease("short") == b"s"
        time.sleep(0.1)
        assert await store.get_lease("short") is None, "expired after its own TTL"
        assert await store.get_lease("long") == b"l"
        store.put_lease(StoredLease("long", b"l2", 60.0))  # a rewrite replaces the value
        assert await store.get_lease("long") == b"l2"
        await store.put_leases([StoredLease("a", b"a", 60.0), StoredLease("b", b"b", 60.0)])
        assert await store.get_lease("long") is None, "past max_leases the oldest goes"
        assert (await store.get_lease("a"), await store.get_lease("b")) == (b"a", b"b")
        store.put_lease(StoredLease("gone", b"g", 0.0))
        assert await store.get_lease("gone") is None

    asyncio.run(main())
