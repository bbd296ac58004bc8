"""A third-party client's observation dict -> the router's state vector and task.

openpi, LeRobot and ROS 2 clients send observations as dicts of named arrays or scalars; the
contract's `observation_mapping` says which keys carry the state (one vector, or scalars to
concatenate) and which may name the task. Errors name the key the client must fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from router_service.contract import Contract, ObservationMapping
from router_service.errors import InvalidRequest


@dataclass(frozen=True, slots=True)
class MappedObservation:
    state: list[float]
    task: str | None  # a contract task named by the client; None: the classifier infers it


def _vector(value: object, key: str) -> NDArray[np.float64]:
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise InvalidRequest(f"{key}: not an array: {exc}", field=key) from None
    if array.dtype.kind not in "fiub":
        raise InvalidRequest(f"{key}: dtype {array.dtype} is not numeric", field=key)
    return array.astype(np.float64).reshape(-1)


def _state(obs: Mapping[str, object], mapping: ObservationMapping
           ) -> tuple[NDArray[np.float64], str]:
    for key in mapping.state_keys:
        if key in obs:
            return _vector(obs[key], key), key
    if mapping.state_components:
        missing = [k for k in mapping.state_components if k not in obs]
        if missing:
            raise InvalidRequest(f"observation has no {missing[0]!r} (state_components: "
                                 f"{list(mapping.state_components)})", field=missing[0])
        parts = [_vector(obs[k], k) for k in mapping.state_components]
        return np.concatenate(parts), "observation"
    raise InvalidRequest(f"observation has none of the state keys {list(mapping.state_keys)} "
                         f"(got {sorted(map(str, obs))[:8]})", field=mapping.state_keys[0])


def map_observation(obs: Mapping[str, object], contract: Contract) -> MappedObservation:
    """Raises `InvalidRequest` naming the key: missing state, wrong length, non-numeric or
    non-finite values. A task key whose value is not a contract task is not an error."""
    spec = contract.spec
    state, key = _state(obs, spec.observation_mapping)
    if state.size != spec.state_dim:
        raise InvalidRequest(f"{key} has {state.size} values, expected {spec.state_dim}",
                             field=key)
    bad = np.flatnonzero(~np.isfinite(state))
    if bad.size:
        raise InvalidRequest(f"{key}[{int(bad[0])}] is not finite", field=f"{key}[{int(bad[0])}]")
    task = None
    known = set(contract.task_names)
    for task_key in spec.observation_mapping.task_keys:
        value = obs.get(task_key)
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if isinstance(value, str) and value.strip() in known:
            task = value.strip()
            break
    return MappedObservation(state.tolist(), task)
