"""Request-level parameters (KServe `parameters`, what tritonclient's
`infer(..., parameters={...})` sends): who is asking and by when.

- `robot_id`, `episode_id` (strings): as in `POST /v1/act`; `robot_id` may be left out with a
  key bound to exactly one robot (that robot is meant).
- `task` (string, optional): the declared task; see models.py for what each model does with it.
- `deadline_ms` (number): the budget from when the request reached the router.
- `deadline_unix_ms` (number): an absolute deadline (Unix ms, synchronised clocks).
- `timeout` (integer, microseconds): what tritonclient's `infer(timeout=...)` sends, on HTTP
  and gRPC alike; Triton's server-side request timeout, here a budget like `deadline_ms`.
  0 means none, as in Triton; more than the router's 60 s budget limit counts as 60 s.
The earliest of every deadline given holds (the gRPC call deadline included); none: the
contract's default. Other parameters (`priority`, `sequence_id`, ...) are ignored.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from tritonclient.grpc import service_pb2

from router_service.deadlines import MAX_BUDGET_MS
from router_service.errors import InvalidRequest
from router_service.keys import RobotKey

BINARY_OUTPUT = "binary_data_output"  # HTTP: every output as binary unless it says otherwise


@dataclass(frozen=True, slots=True)
class CallParams:
    robot_id: str | None  # None: the one robot the key is bound to (`robot_for`)
    episode_id: str
    task: str | None
    deadline_ms: float | None  # the earliest of `deadline_ms` and `timeout`
    deadline_unix_ms: float | None


def _field(name: str) -> str:
    return f"parameters.{name}"


def _string(values: Mapping[str, object], name: str, required: bool) -> str | None:
    value = values.get(name)
    if value is None:
        if required:
            raise InvalidRequest(f"{_field(name)}: missing (a string request parameter)",
                                 field=_field(name))
        return None
    if not isinstance(value, str):
        raise InvalidRequest(f"{_field(name)}: must be a string, got {type(value).__name__}",
                             field=_field(name))
    return value


def _number(values: Mapping[str, object], name: str) -> float | None:
    value = values.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequest(f"{_field(name)}: must be a number, got {type(value).__name__}",
                             field=_field(name))
    number = float(value)
    if math.isnan(number):
        raise InvalidRequest(f"{_field(name)}: must be a number, got NaN", field=_field(name))
    return number


def call_params(values: Mapping[str, object]) -> CallParams:
    robot_id = _string(values, "robot_id", required=False)  # see `robot_for`
    episode_id = _string(values, "episode_id", required=True)
    assert episode_id is not None  # required
    deadline_ms = _number(values, "deadline_ms")
    timeout_us = _number(values, "timeout")
    if timeout_us is not None and timeout_us > 0:
        # A client's generous timeout (tritonclient users set seconds) is no hurry, not a
        # budget over the router's limit: capped there.
        timeout_ms = min(timeout_us / 1000, MAX_BUDGET_MS)
        deadline_ms = timeout_ms if deadline_ms is None else min(deadline_ms, timeout_ms)
    return CallParams(robot_id, episode_id, _string(values, "task", required=False),
                      deadline_ms, _number(values, "deadline_unix_ms"))


def grpc_values(parameters: Mapping[str, service_pb2.InferParameter]) -> dict[str, object]:
    """The gRPC `map<string, InferParameter>` as plain values (unset choice: None)."""
    out: dict[str, object] = {}
    for name, param in parameters.items():
        choice = param.WhichOneof("parameter_choice")
        out[name] = getattr(param, choice) if choice is not None else None
    return out


def robot_for(params: CallParams, key: RobotKey) -> str:
    """`robot_id` as given; without it, the robot a key is bound to when it is bound to exactly
    one (no prefix, not `*`), as on openpi's endpoint."""
    if params.robot_id is not None:
        return params.robot_id
    if not (key.all_robots or key.prefixes or len(key.exact) != 1):
        return next(iter(key.exact))
    raise InvalidRequest(f"{_field('robot_id')}: missing (a string request parameter; optional "
                         "only with a key bound to one robot)", field=_field("robot_id"))
