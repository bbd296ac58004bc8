"""One LeRobot session per gRPC peer, with the policy server's observation semantics.

As in LeRobot 0.6.1's `PolicyServer` (async_inference/policy_server.py), a session holds at
most one observation waiting for inference (a newer one replaces it), and an observation is
queued only if it `must_go`, is the session's first, or passes the sanity checks: its timestep
was not already predicted, and its state is not within `atol` (L2, over the router's state
vector) of the last observation acted on. Unlike LeRobot's server, which keeps one state for
every client, each peer (`context.peer()`) has its own, and `Ready` resets only the caller's.

One rule is added: an observation whose timestep has reached the last step of the last chunk
sent to the peer (or that comes before any chunk was sent) is queued whatever the checks say.
Its client has executed every action it was given, so its queue is empty, which is what
`must_go` is meant to say. The client's own flag cannot be relied on: it clears `must_go`
after sending, and when the reply arrives before that (a fast server) the flag stays cleared,
so a robot standing still (every observation "similar") would never be answered again. The
rule also covers an observation the router could not answer (shed, rate limited).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from router_service.lerobot.messages import Observed, PolicyInstructions
from router_service.observation_map import MappedObservation

MAX_SESSIONS = 64  # peers remembered at once; the least recently seen is forgotten first
MAX_PREDICTED = 4096  # predicted timesteps remembered per session


@dataclass(frozen=True, slots=True)
class Pending:
    observed: Observed
    mapped: MappedObservation
    arrived_at: float  # time.monotonic() when its bytes had all reached the router


@dataclass
class Session:
    peer: str
    episode_id: str = field(default_factory=lambda: f"lerobot-{uuid.uuid4().hex[:16]}")
    instructions: PolicyInstructions | None = None
    pending: Pending | None = None
    last_state: NDArray[np.float64] | None = None
    predicted: OrderedDict[int, None] = field(default_factory=OrderedDict)
    sent_through: int | None = None  # the last timestep of the last chunk sent
    closed: bool = False
    seen_at: float = field(default_factory=time.monotonic)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def offer(self, observed: Observed, mapped: MappedObservation, arrived_at: float,
              atol: float) -> bool:
        """Queue the observation (replacing any waiting one) or filter it out: False."""
        state = np.asarray(mapped.state, dtype=np.float64)
        starved = self.sent_through is None or observed.timestep >= self.sent_through
        if not (observed.must_go or starved or self.last_state is None):
            if observed.timestep in self.predicted:
                return False
            if (state.shape == self.last_state.shape
                    and float(np.linalg.norm(state - self.last_state)) < atol):
                return False
        self.pending = Pending(observed, mapped, arrived_at)
        self.arrived.set()
        return True

    async def take(self, timeout_s: float) -> Pending | None:
        """The waiting observation, once there is one; None after `timeout_s` (or when the
        session is reset or forgotten meanwhile)."""
        deadline = time.monotonic() + timeout_s
        while not self.closed:
            if self.pending is not None:
                pending, self.pending = self.pending, None
                self.arrived.clear()
                self._acting_on(pending)
                return pending
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                await asyncio.wait_for(self.arrived.wait(), remaining)
            except TimeoutError:
                return None
        return None

    def _acting_on(self, pending: Pending) -> None:
        self.predicted[pending.observed.timestep] = None
        while len(self.predicted) > MAX_PREDICTED:
            self.predicted.popitem(last=False)
        self.last_state = np.asarray(pending.mapped.state, dtype=np.float64)

    def sent(self, last_timestep: int) -> None:
        """A chunk reaching `last_timestep` went to the peer."""
        self.sent_through = last_timestep

    def close(self) -> None:
        self.closed = True
        self.arrived.set()  # wakes a GetActions waiting on it, which returns empty


class Sessions:
    def __init__(self, max_sessions: int = MAX_SESSIONS) -> None:
        self.max_sessions = max_sessions
        self._by_peer: OrderedDict[str, Session] = OrderedDict()

    def __len__(self) -> int:
        return len(self._by_peer)

    def ready(self, peer: str) -> Session:
        """`Ready`: a fresh session (new episode, nothing queued or predicted) for this peer,
        keeping its policy instructions as LeRobot's server keeps its policy; other peers'
        sessions stay as they are."""
        old = self._by_peer.pop(peer, None)
        session = Session(peer)
        if old is not None:
            session.instructions = old.instructions
            old.close()
        return self._add(session)

    def get(self, peer: str) -> Session | None:
        session = self._by_peer.get(peer)
        if session is not None:
            session.seen_at = time.monotonic()
            self._by_peer.move_to_end(peer)
        return session

    def get_or_create(self, peer: str) -> Session:
        return self.get(peer) or self._add(Session(peer))

    def _add(self, session: Session) -> Session:
        self._by_peer[session.peer] = session
        while len(self._by_peer) > self.max_sessions:
            _, oldest = self._by_peer.popitem(last=False)
            oldest.close()
        return session
