"""Shared httpx connection pools for direct Triton over HTTP, kept cheap at high concurrency
(the router HTTP target uses router_service/http1.py instead: httpx cost too much CPU).

Two measured costs of httpx/httpcore made the generator itself the bottleneck once a slow server
let in-flight requests pile up (the moment a load test matters most):
- httpcore assigns requests to connections by scanning every connection (and polling each idle
  socket) for every pending request on every event: O(connections x pending). Idle keep-alive
  connections left over from a burst made every later request pay that scan. Worse, it feeds
  back: a hiccup -> a burst of connections -> slower scans -> a bigger backlog; with one shared
  pool the generator itself collapsed to seconds of latency against a 2 ms server on a busy
  2-core box. So each robot gets its own `AsyncClient` (a keep-alive pool shared by all of that
  robot's requests, as a real robot would hold its own connections) keeping only a few idle
  connections: a burst opens extra connections (a localhost TCP handshake) and closes them after.
"""

from __future__ import annotations

import ssl

import httpx

from loadtest.scenario import Scenario

# One pool per robot (as real robots each hold their own connections), up to this many; beyond,
# robots share pools round-robin.
MAX_POOLS = 256
KEEPALIVE_PER_POOL = 8  # idle connections kept per pool; steady state needs one or two


def pool_count(robots: int) -> int:
    return max(1, min(robots, MAX_POOLS))


class HttpPools:
    """`AsyncClient`s with keep-alive pools; robot r always uses pool r % n (stable sharing)."""

    def __init__(
        self,
        base_url: str,
        scenario: Scenario,
        headers: dict[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url
        self.headers = headers or {}
        self.n = pool_count(scenario.robots)
        # No client-side queueing: every in-flight request may have its own connection (the
        # open-loop cap is max_outstanding, enforced by the dispatcher).
        self.limits = httpx.Limits(
            max_connections=scenario.max_outstanding,
            max_keepalive_connections=KEEPALIVE_PER_POOL,
        )
        self.timeout = httpx.Timeout(scenario.client_timeout_ms / 1000.0)
        self.transport = transport
        self.clients: list[httpx.AsyncClient] = []

    def start(self) -> None:
        # one TLS context for all clients: building one costs ~20 ms even for plain http URLs
        verify = ssl.create_default_context()
        self.clients = [
            httpx.AsyncClient(
                base_url=self.base_url,
                headers=self.headers,
                limits=self.limits,
                timeout=self.timeout,
                transport=self.transport,
                verify=verify,
            )
            for _ in range(self.n)
        ]

    def for_robot(self, robot: int) -> httpx.AsyncClient:
        return self.clients[robot % self.n]

    async def close(self) -> None:
        for client in self.clients:
            await client.aclose()
        self.clients = []
