"""The facade's one input tensor and one output tensor, checked and converted without
tritonclient's per-call objects: raw bytes go straight through `numpy.frombuffer`.

Input `observation`: FP32, shape [1, state_dim] (the batch axis tritonclient users send to a
Triton model with max_batch_size > 0) or [state_dim]. Several rows are refused: each request
acts for one robot (its key, episode lease and deadline), and rows of different robots cannot
share one `robot_id` parameter. Every refusal is an `InvalidRequest` whose message starts with
the field it is about.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from router_service.errors import InvalidRequest
from router_service.kserve.models import INPUT, OUTPUT

FP32 = "FP32"
_LE_FP32 = np.dtype("<f4")  # KServe's raw tensors are little-endian, row-major


@dataclass(frozen=True, slots=True)
class Observation:
    state: list[float]
    batched: bool  # sent as [1, state_dim]: the answer keeps the batch axis


def _bad(field: str, message: str) -> InvalidRequest:
    return InvalidRequest(f"{field}: {message}", field=field)


def check_input(index: int, name: object, datatype: object, shape: object,
                state_dim: int) -> bool:
    """Validate one input's name, datatype and shape; True when it has a batch axis."""
    if name != INPUT:
        raise _bad(f"inputs[{index}].name",
                   f"unknown input {name!r}; the model takes {INPUT!r} only")
    if datatype != FP32:
        raise _bad(f"{INPUT}.datatype", f"is {datatype!r}, expected {FP32!r}")
    if (not isinstance(shape, Sequence) or isinstance(shape, str)
            or not all(type(d) is int for d in shape)):
        raise _bad(f"{INPUT}.shape", f"must be a list of integers, got {shape!r}")
    dims = list(shape)
    if len(dims) == 2 and dims[1] == state_dim and dims[0] != 1:
        raise _bad(f"{INPUT}.shape", f"{dims} has {dims[0]} rows; the router acts for one "
                   "robot per request (send one request per robot, shape "
                   f"[1, {state_dim}])")
    if dims == [1, state_dim]:
        return True
    if dims == [state_dim]:
        return False
    raise _bad(f"{INPUT}.shape", f"is {dims}, expected [1, {state_dim}] or [{state_dim}]")


def _finite(values: NDArray[np.float32], batched: bool) -> Observation:
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        i = int(bad[0])
        raise _bad(f"{INPUT}[{i}]", f"is not finite ({values[i]})")
    return Observation(values.tolist(), batched)


def from_raw(raw: bytes, state_dim: int, batched: bool, field: str) -> Observation:
    """`raw_input_contents[i]` (gRPC) or a binary tensor (HTTP): exactly state_dim FP32s."""
    if len(raw) != state_dim * 4:
        raise _bad(field, f"{len(raw)} bytes for {INPUT}, expected {state_dim * 4} "
                   f"({state_dim} x FP32)")
    return _finite(np.frombuffer(raw, dtype=_LE_FP32).astype(np.float32), batched)


def _flatten(data: Sequence[object], out: list[float], depth: int) -> None:
    for value in data:
        # `type(...) is` on purpose: bool is an int subclass and is not a tensor element here.
        if type(value) is float or type(value) is int:
            out.append(value)
        elif type(value) is list and depth < 1:
            _flatten(value, out, depth + 1)
        else:
            raise _bad(f"{INPUT}.data", f"must hold numbers (flat or [[...]]), found "
                       f"{type(value).__name__} {str(value)[:40]!r}")


def from_values(data: object, state_dim: int, batched: bool, field: str) -> Observation:
    """JSON `data` (flat row-major, or nested one row deep) or gRPC `contents.fp32_contents`."""
    if not isinstance(data, Sequence) or isinstance(data, str | bytes):
        raise _bad(field, f"must be a list of numbers, got {type(data).__name__}")
    flat: list[float] = []
    _flatten(data, flat, 0)
    if len(flat) != state_dim:
        raise _bad(field, f"has {len(flat)} values, expected {state_dim}")
    with np.errstate(over="ignore"):  # out of FP32 range is inf, refused by name below
        return _finite(np.asarray(flat, dtype=np.float64).astype(np.float32), batched)


def check_outputs(names: Sequence[object]) -> None:
    """Requested outputs may only name `action` (none requested: `action` is returned)."""
    for i, name in enumerate(names):
        if name != OUTPUT:
            raise _bad(f"outputs[{i}].name",
                       f"unknown output {name!r}; the model answers {OUTPUT!r} only")


def action_tensor(action: Sequence[float], batched: bool) -> tuple[NDArray[np.float32],
                                                                   list[int]]:
    values = np.asarray(action, dtype=np.float32)
    return values, ([1, values.size] if batched else [values.size])
