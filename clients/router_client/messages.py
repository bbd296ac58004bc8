"""The values a controller sends to and gets from the router, the same for HTTP and gRPC.

Immutable so a request can be retried, logged or re-sent on another transport without
anyone having changed it in between; numbers are stored as tuples of floats (not numpy
arrays) so equality and hashing work and nothing aliases the caller's buffers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

__all__ = ["ActRequest", "ActResponse", "Feedback", "Timing"]

StateLike = Sequence[float] | npt.NDArray[np.floating[Any]]
TaskSource = Literal["declared", "inferred"]


def _finite_vector(values: StateLike, name: str) -> tuple[float, ...]:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D vector, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        # JSON cannot carry NaN/inf and the router would reject them anyway; failing here
        # names the culprit without a round trip.
        raise ValueError(f"{name} contains non-finite values")
    return tuple(array.tolist())


def _require_id(value: str, name: str) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string")


@dataclass(frozen=True, slots=True)
class ActRequest:
    """One control step: "what should robot `robot_id` do now, given `state`?"

    `task` None lets the router infer it; `deadline_ms` None lets the client's default
    budget (`Timeouts.act_s`) apply. `state` accepts any 1-D float sequence or array.
    """

    robot_id: str
    episode_id: str
    state: tuple[float, ...]
    task: str | None = None
    deadline_ms: float | None = None

    def __init__(self, robot_id: str, episode_id: str, state: StateLike,
                 task: str | None = None, deadline_ms: float | None = None) -> None:
        # A hand-written __init__ so callers may pass numpy arrays while the stored
        # value stays an immutable tuple.
        _require_id(robot_id, "robot_id")
        _require_id(episode_id, "episode_id")
        if deadline_ms is not None and not (math.isfinite(deadline_ms) and deadline_ms > 0):
            raise ValueError(f"deadline_ms must be a positive finite number, got {deadline_ms}")
        object.__setattr__(self, "robot_id", robot_id)
        object.__setattr__(self, "episode_id", episode_id)
        object.__setattr__(self, "state", _finite_vector(state, "state"))
        object.__setattr__(self, "task", task or None)
        object.__setattr__(self, "deadline_ms", None if deadline_ms is None else float(deadline_ms))

    def state_array(self) -> npt.NDArray[np.float32]:
        return np.asarray(self.state, dtype=np.float32)


@dataclass(frozen=True, slots=True)
class Timing:
    """Where the router spent the time, in milliseconds, as the router measured it."""

    scoring_ms: float
    upstream_ms: float
    total_ms: float


@dataclass(frozen=True, slots=True)
class ActResponse:
    """The router's decision for one `ActRequest`.

    `route` is the ensemble that produced `action` (or "hold"); `fallback` is None unless
    the router fell back, then the reason; `deadline_met` is the router's own verdict.
    `client_ms` is the round trip seen by this client, retries included, so a controller
    can compare it with `timing_ms.total_ms` to see the network's share. `sequence` is set
    only on stream replies.
    """

    action: tuple[float, ...]
    route: str
    policy_version: str
    task: str | None
    task_source: str
    task_confidence: float | None
    fallback: str | None
    deadline_met: bool
    timing_ms: Timing
    decision_id: str
    reason: str
    sequence: int | None = None
    client_ms: float = field(default=0.0, compare=False)

    @property
    def held(self) -> bool:
        return self.route == "hold"

    def action_array(self) -> npt.NDArray[np.float32]:
        return np.asarray(self.action, dtype=np.float32)


@dataclass(frozen=True, slots=True)
class Feedback:
    """The outcome of an episode (or of one decision when `decision_id` is set).

    The router de-duplicates on (episode_id, decision_id), which is what makes sending it
    again after a lost reply safe. `true_task` tells the router what the robot was really
    doing when it had to infer the task, so it can count misroutes.
    """

    robot_id: str
    episode_id: str
    success: bool
    decision_id: str | None = None
    true_task: str | None = None

    def __post_init__(self) -> None:
        _require_id(self.robot_id, "robot_id")
        _require_id(self.episode_id, "episode_id")
        if not isinstance(self.success, bool | np.bool_):
            raise ValueError("success must be a bool")
        object.__setattr__(self, "success", bool(self.success))  # np.bool_ is not JSON
