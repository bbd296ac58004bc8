"""openpi-style policy interface, so a controller can swap a local policy for the router.

A controller written against `BasePolicy` only calls `infer(obs) -> dict` each step and
`reset()` between episodes; `RouterPolicy` implements both over a `RouterClient`, and a
local model (or a scripted expert) implements the same two methods.
"""

from __future__ import annotations

import abc
import uuid
from typing import Any

import numpy as np

from .client import RouterClient
from .messages import ActRequest, ActResponse, Feedback
from .session import ActSession

__all__ = ["BasePolicy", "RouterPolicy"]


class BasePolicy(abc.ABC):
    """The two calls a controller needs. `infer` returns at least {"actions": np.ndarray}."""

    @abc.abstractmethod
    def infer(self, obs: dict[str, Any]) -> dict[str, Any]:
        """Actions for one observation."""

    def reset(self) -> None:  # noqa: B027 (optional hook: stateless policies need nothing)
        """Forget the current episode; called before the next one starts."""


class RouterPolicy(BasePolicy):
    """The router as a policy.

    `obs` must hold "state" (1-D floats) and may hold "task" and "deadline_ms" to override
    the defaults given here for one step. The result holds "actions" (float32) plus what
    the router said: "route", "task", "task_source", "fallback", "deadline_met",
    "decision_id", "timing_ms" (router's scoring/upstream/total and this client's
    "client" round trip) and the full "response" (`ActResponse`).

    Each `reset()` starts a new episode id, the key under which the router logs decisions
    and accepts feedback; `report_outcome` sends that feedback. Errors are the client's
    `RouterError`s, unchanged, so the controller decides what a failed step means.
    """

    def __init__(self, client: RouterClient, *, robot_id: str, task: str | None = None,
                 deadline_ms: float | None = None, use_stream: bool = False) -> None:
        self._client = client
        self._robot_id = robot_id
        self._task = task
        self._deadline_ms = deadline_ms
        self._session: ActSession | None = client.session(robot_id) if use_stream else None
        self._episode_id = _new_episode_id()
        self._last_response: ActResponse | None = None

    @property
    def episode_id(self) -> str:
        return self._episode_id

    @property
    def last_response(self) -> ActResponse | None:
        return self._last_response

    def infer(self, obs: dict[str, Any]) -> dict[str, Any]:
        request = ActRequest(
            robot_id=self._robot_id,
            episode_id=self._episode_id,
            state=obs["state"],
            task=obs.get("task", self._task),
            deadline_ms=obs.get("deadline_ms", self._deadline_ms),
        )
        act = self._session.act if self._session is not None else self._client.act
        response = act(request)
        self._last_response = response
        timing = response.timing_ms
        return {
            "actions": np.asarray(response.action, dtype=np.float32),
            "route": response.route,
            "task": response.task,
            "task_source": response.task_source,
            "fallback": response.fallback,
            "deadline_met": response.deadline_met,
            "decision_id": response.decision_id,
            "timing_ms": {
                "scoring": timing.scoring_ms,
                "upstream": timing.upstream_ms,
                "total": timing.total_ms,
                "client": response.client_ms,
            },
            "response": response,
        }

    def reset(self) -> None:
        self._episode_id = _new_episode_id()
        self._last_response = None

    def report_outcome(self, success: bool, *, true_task: str | None = None) -> Feedback:
        """Send the current episode's outcome, tied to its last decision, and return it.
        Call before `reset()`. Safe to repeat: the router de-duplicates."""
        last = self._last_response
        feedback = Feedback(
            robot_id=self._robot_id,
            episode_id=self._episode_id,
            success=success,
            decision_id=last.decision_id if last is not None else None,
            true_task=true_task,
        )
        self._client.feedback(feedback)
        return feedback

    def close(self) -> None:
        """Ends the stream, if any; the client stays open (it belongs to the caller)."""
        if self._session is not None:
            self._session.close()
            self._session = None


def _new_episode_id() -> str:
    return uuid.uuid4().hex
