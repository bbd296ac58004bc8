"""Typed records that cross a boundary: the episode lease (shared by replicas through the store)
and the decision-log entry (written to the store's stream). Both are serialised once, with orjson,
straight from the dataclass; their fields are documented in docs/interfaces.md."""

from __future__ import annotations

from dataclasses import dataclass

import orjson


@dataclass(frozen=True, slots=True)
class EpisodeLease:
    """Which route an episode is on. `route` is None after the episode left a failing route and
    the route that answered instead was hold or late: the next step is scored afresh."""

    route: str | None
    strikes: int  # failed or late steps in a row on `route`
    task: str
    source: str  # "declared" | "inferred"
    at: float  # Unix time of the write
    key_id: str | None = None  # the key that asked (None: written before keys were recorded)

    def to_json(self) -> bytes:
        return orjson.dumps(self)

    @classmethod
    def from_json(cls, raw: str | bytes) -> EpisodeLease | None:
        """None for a value this version cannot read (written by an older replica, say): the
        episode is then scored afresh, which is always safe."""
        try:
            data = orjson.loads(raw)
            return cls(route=data["route"], strikes=int(data.get("strikes", 0)),
                       task=str(data["task"]), source=str(data.get("source", "declared")),
                       at=float(data.get("at", 0.0)),
                       key_id=str(data["key_id"]) if data.get("key_id") else None)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None


@dataclass(frozen=True, slots=True)
class CandidateRecord:
    route: str
    success: float
    predicted_ms: float
    score: float
    fits_budget: bool
    usable: bool


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """Everything needed to replay one act decision."""

    decision_id: str
    ts: float  # Unix time of the reply
    replica: str
    contract_version: str
    robot_id: str
    key_id: str  # the asking key's id (a digest prefix; the key itself is never recorded)
    episode_id: str
    task_declared: str | None
    task: str
    task_source: str
    task_confidence: float
    task_probs: list[float] | None
    state: list[float]
    budget_ms: float
    queued_ms: float  # time spent in the router before the handler ran (estimate)
    candidates: list[CandidateRecord]
    route_chosen: str
    reason: str
    route: str
    fallback: str | None
    path: list[str]
    hedged: bool
    batch_size: int  # rows in the Triton request that answered (0: hold)
    deadline_met: bool
    timing_ms: dict[str, float]
    action: list[float]

    def to_json(self) -> bytes:
        return orjson.dumps(self)
