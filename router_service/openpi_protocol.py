"""openpi's websocket policy protocol, in the router's terms (the endpoint is
`http_api/openpi.py`; the spec for clients is docs/clients/openpi.md).

A session is one connection: its robot, episode and deadline are fixed at the handshake (the
query string and the key), each binary frame is one observation in openpi's msgpack-numpy form,
and each reply is a msgpack map with `actions` as a float32 `[1, action_dim]` array (the router
answers one step per request: action horizon 1), openpi's `server_timing` and the router's own
decision fields. Nothing here knows about websockets.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from router_service.contract import Contract
from router_service.deadlines import MAX_BUDGET_MS
from router_service.engine import ActInput, ActReply
from router_service.errors import Forbidden, InvalidRequest
from router_service.keys import RobotKey
from router_service.msgpack_numpy import unpack_map
from router_service.observation_map import map_observation

PROTOCOL = "openpi-websocket"
ACTION_HORIZON = 1
QUERY_PARAMS = ("robot_id", "episode_id", "deadline_ms")
EPISODE_KEY = "episode_id"  # an observation key that moves the session to another episode


@dataclass(frozen=True, slots=True)
class SessionParams:
    robot_id: str
    episode_id: str
    deadline_ms: float | None  # None: the contract's default_deadline_ms, read per step


def _bound_robot(key: RobotKey) -> str | None:
    """The robot a key is bound to when it is bound to exactly one (no prefix, not `*`)."""
    if key.all_robots or key.prefixes or len(key.exact) != 1:
        return None
    return next(iter(key.exact))


def _deadline(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        ms = float(value)
    except ValueError:
        ms = math.nan
    if not (math.isfinite(ms) and 0 < ms <= MAX_BUDGET_MS):
        raise InvalidRequest(f"deadline_ms must be a number in (0, {MAX_BUDGET_MS:.0f}], got "
                             f"{value!r}"[:200], field="deadline_ms")
    return ms


def session_params(query: Mapping[str, str], key: RobotKey) -> SessionParams:
    """From the handshake. An unknown parameter is refused (a typo must not be ignored)."""
    for name in query:
        if name not in QUERY_PARAMS:
            raise InvalidRequest(f"unknown query parameter {name!r} (known: "
                                 f"{', '.join(QUERY_PARAMS)})"[:200], field=name)
    robot_id = query.get("robot_id") or _bound_robot(key)
    if robot_id is None:
        raise InvalidRequest("robot_id is missing: add ?robot_id=<id> to the URL (needed "
                             "unless the key is bound to exactly one robot)", field="robot_id")
    if not key.covers(robot_id):  # refused at once; the engine checks every step again
        raise Forbidden(f"key {key.key_id} does not cover robot_id {robot_id!r}"[:200],
                        field="robot_id")
    episode_id = query.get("episode_id") or f"openpi-{uuid.uuid4().hex}"
    return SessionParams(robot_id, episode_id, _deadline(query.get("deadline_ms")))


def metadata(contract: Contract, params: SessionParams, max_frame_bytes: int
             ) -> dict[str, Any]:
    """The frame sent right after the handshake (the client blocks until it arrives)."""
    spec = contract.spec
    mapping = spec.observation_mapping
    return {
        "protocol": PROTOCOL, "server": "robot-policy-router",
        "contract_version": contract.version, "panel": spec.panel,
        "state_dim": spec.state_dim, "action_dim": spec.action_dim,
        "tasks": contract.task_names, "action_horizon": ACTION_HORIZON,
        "observation_mapping": {"state_keys": list(mapping.state_keys),
                                "state_components": list(mapping.state_components),
                                "task_keys": list(mapping.task_keys)},
        "robot_id": params.robot_id, "episode_id": params.episode_id,
        "deadline_ms": (params.deadline_ms if params.deadline_ms is not None
                        else spec.default_deadline_ms),
        "max_frame_bytes": max_frame_bytes,
    }


def _episode(obs: Mapping[str, object], current: str) -> str:
    value = obs.get(EPISODE_KEY, current)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        raise InvalidRequest(f"{EPISODE_KEY} must be a string, got {type(value).__name__}",
                             field=EPISODE_KEY)
    return value


def step_input(frame: bytes, contract: Contract, params: SessionParams, episode_id: str,
               key: RobotKey, received_at: float, queued_s: float) -> ActInput:
    """One observation frame -> the engine's input; `InvalidRequest` naming the key."""
    obs = unpack_map(frame)
    mapped = map_observation(obs, contract)
    return ActInput(
        robot_id=params.robot_id, episode_id=_episode(obs, episode_id), task=mapped.task,
        state=mapped.state, deadline_ms=params.deadline_ms, deadline_unix_ms=None,
        received_at=received_at, key=key, queued_s=queued_s,
    )


def reply_map(reply: ActReply, episode_id: str, infer_ms: float, prev_total_ms: float | None
              ) -> dict[str, Any]:
    """openpi's reply (`actions`, `server_timing`) plus the router's decision fields. Every
    value but `actions` is a plain scalar or a dict of them: openpi's ActionChunkBroker slices
    every ndarray it finds by the step."""
    timing = {"infer_ms": round(infer_ms, 3),
              **{f"{name}_ms": value for name, value in reply.timing_ms.items()}}
    if prev_total_ms is not None:  # openpi's: the previous step, receipt to reply sent
        timing["prev_total_ms"] = round(prev_total_ms, 3)
    return {
        "actions": np.asarray([reply.action], dtype=np.float32),
        "server_timing": timing,
        "route": reply.route, "policy_version": reply.policy_version, "task": reply.task,
        "task_source": reply.task_source, "task_confidence": reply.task_confidence,
        "fallback": reply.fallback, "deadline_met": reply.deadline_met,
        "decision_id": reply.decision_id, "reason": reply.reason, "episode_id": episode_id,
    }
