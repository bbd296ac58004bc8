"""LeRobot's messages on the router's side: chunked byte streams reassembled under a size cap,
`TimedObservation` / `RemotePolicyConfig` pickles read through the restricted unpickler and
checked field by field, and the reply (`list[TimedAction]`) written as a pickle by hand.

The reply names `lerobot.async_inference.helpers.TimedAction`, `torch.from_numpy` and
`numpy.array` as globals, so LeRobot's client `pickle.loads` it into real `TimedAction`s holding
float32 `torch.Tensor`s, while the router imports neither lerobot nor torch.
"""

from __future__ import annotations

import math
import struct
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from router_service.errors import InvalidRequest, PayloadTooLarge
from router_service.lerobot.unpickle import (
    ArrayState,
    Recorded,
    RemotePolicyConfig,
    TimedObservation,
    UnpicklingRefused,
    restricted_loads,
)

# lerobot/async_inference/constants.py (0.6.1): the policy types its server accepts.
SUPPORTED_POLICIES = ("act", "smolvla", "diffusion", "tdmpc", "vqbet", "pi0", "pi05", "groot")
MAX_ACTIONS_PER_CHUNK = 1000
MAX_OBSERVATION_KEYS = 1024  # a robot's joints and cameras; LeRobot's robots send a few dozen
MAX_LIST = 4096  # numbers in one list-valued key (larger data comes as arrays)
TRANSFER_BEGIN, TRANSFER_MIDDLE, TRANSFER_END = 1, 2, 3  # services.proto TransferState


class Chunk(Protocol):
    transfer_state: int
    data: bytes


async def reassemble(chunks: AsyncIterator[Chunk | None], max_bytes: int) -> bytes:
    """lerobot.transport.utils.receive_bytes_in_chunks for one message: BEGIN starts it,
    MIDDLE extends it, END completes it (a message of one chunk is a lone END)."""
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        if chunk is None:  # bytes that did not parse as a transport.Observation
            raise InvalidRequest("not a valid Observation message", field="request")
        state = chunk.transfer_state
        if state not in (TRANSFER_BEGIN, TRANSFER_MIDDLE, TRANSFER_END):
            raise InvalidRequest(f"transfer_state {state} is not BEGIN, MIDDLE or END",
                                 field="transfer_state")
        if state == TRANSFER_BEGIN:
            parts, size = [], 0
        size += len(chunk.data)
        if size > max_bytes:
            raise PayloadTooLarge(f"message is over {max_bytes} bytes", field="data")
        parts.append(chunk.data)
        if state == TRANSFER_END:
            return b"".join(parts)
    raise InvalidRequest("the stream ended before a chunk with TRANSFER_END", field="data")


@dataclass(frozen=True, slots=True)
class Observed:
    timestamp: float
    timestep: int
    must_go: bool
    observation: dict[str, object]  # str, bool, int, float, numpy arrays and scalars


@dataclass(frozen=True, slots=True)
class PolicyInstructions:
    policy_type: str
    pretrained_name_or_path: str
    actions_per_chunk: int
    device: str
    state_names: tuple[str, ...] | None  # lerobot_features["observation.state"]["names"]


def _load(data: bytes, expected: type[Recorded]) -> dict[str, Any]:
    name = expected.lerobot_name
    try:
        value = restricted_loads(data)
    except UnpicklingRefused as exc:
        raise InvalidRequest(f"{name} refused: {exc}", field="data") from None
    except Exception as exc:  # garbage: pickle raises many kinds of error
        raise InvalidRequest(f"not a {name} pickle: {type(exc).__name__}: {exc}",
                             field="data") from None
    fields = getattr(value, "fields", None) if isinstance(value, expected) else None
    if not isinstance(fields, dict):  # another object, or the class without its BUILD
        raise InvalidRequest(f"expected a pickled {name}, got {type(value).__name__}",
                             field="data")
    return fields


def _field(fields: dict[str, Any], name: str, kinds: type | tuple[type, ...], owner: str) -> Any:
    value = fields.get(name)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in (
            kinds if isinstance(kinds, tuple) else (kinds,))):
        raise InvalidRequest(f"{owner}.{name} is {type(value).__name__}", field=name)
    return value


_PLAIN = frozenset({str, bytes, bool, int, float})


def _value(key: str, value: object) -> object:
    if type(value) in _PLAIN or isinstance(value, np.generic):
        return value
    if isinstance(value, ArrayState):
        return np.asarray(value).view(np.ndarray).copy()
    if isinstance(value, np.ndarray):  # a tensor, already a numpy copy
        return value
    if (isinstance(value, list | tuple) and len(value) <= MAX_LIST
            and all(type(v) in (int, float) for v in value)):
        return list(value)
    raise InvalidRequest(f"observation[{key!r}] is a {type(value).__name__}",
                         field=f"observation.{key}")


def decode_observation(data: bytes) -> Observed:
    fields = _load(data, TimedObservation)
    owner = "TimedObservation"
    timestamp = float(_field(fields, "timestamp", (int, float), owner))
    timestep = _field(fields, "timestep", int, owner)
    must_go = _field(fields, "must_go", bool, owner) if "must_go" in fields else False
    raw = _field(fields, "observation", dict, owner)
    if not math.isfinite(timestamp) or not 0 <= timestep < 2**62:
        raise InvalidRequest(f"{owner}: timestamp {timestamp} / timestep {timestep} out of "
                             "range", field="timestep")
    if len(raw) > MAX_OBSERVATION_KEYS:
        raise InvalidRequest(f"observation has {len(raw)} keys (at most "
                             f"{MAX_OBSERVATION_KEYS})", field="observation")
    observation = {}
    for key, value in raw.items():
        if not isinstance(key, str):
            raise InvalidRequest(f"observation key {key!r} is not a string", field="observation")
        observation[key] = _value(key, value)
    return Observed(timestamp, timestep, must_go, observation)


def decode_policy_config(data: bytes) -> PolicyInstructions:
    fields = _load(data, RemotePolicyConfig)
    owner = "RemotePolicyConfig"
    policy_type = _field(fields, "policy_type", str, owner)
    if policy_type not in SUPPORTED_POLICIES:
        raise InvalidRequest(f"policy_type {policy_type!r} is not one LeRobot 0.6.1 serves "
                             f"({', '.join(SUPPORTED_POLICIES)}); the router serves its own "
                             "contract's policies whatever the type", field="policy_type")
    chunk = _field(fields, "actions_per_chunk", int, owner)
    if not 1 <= chunk <= MAX_ACTIONS_PER_CHUNK:
        raise InvalidRequest(f"actions_per_chunk {chunk} is not in 1..{MAX_ACTIONS_PER_CHUNK}",
                             field="actions_per_chunk")
    features = _field(fields, "lerobot_features", dict, owner)
    state = features.get("observation.state")
    names = state.get("names") if isinstance(state, dict) else None
    if names is not None and (not isinstance(names, list)
                              or not all(isinstance(n, str) for n in names)):
        raise InvalidRequest("lerobot_features['observation.state']['names'] is not a list of "
                             "strings", field="lerobot_features")
    return PolicyInstructions(
        policy_type=policy_type,
        pretrained_name_or_path=_field(fields, "pretrained_name_or_path", str, owner),
        actions_per_chunk=chunk,
        device=_field(fields, "device", str, owner) if "device" in fields else "cpu",
        state_names=tuple(names) if names is not None else None,
    )


# -- the reply, opcode by opcode (pickle protocol 4) ------------------------------------------
_PROTO, _STOP, _MARK = b"\x80\x04", b".", b"("
_EMPTY_LIST, _APPENDS, _EMPTY_DICT, _SETITEMS = b"]", b"e", b"}", b"u"
_EMPTY_TUPLE, _TUPLE1, _TUPLE2 = b")", b"\x85", b"\x86"
_STACK_GLOBAL, _MEMOIZE, _BINGET, _NEWOBJ, _BUILD, _REDUCE = b"\x93", b"\x94", b"h", b"\x81", \
    b"b", b"R"
_GLOBALS = (("lerobot.async_inference.helpers", "TimedAction"), ("torch", "from_numpy"),
            ("numpy", "array"))


def _text(value: str) -> bytes:
    raw = value.encode()
    assert len(raw) < 256
    return b"\x8c" + bytes([len(raw)]) + raw  # SHORT_BINUNICODE


def _int(value: int) -> bytes:
    if -(2**31) <= value < 2**31:
        return b"J" + struct.pack("<i", value)  # BININT
    raw = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw  # LONG1


def _float(value: float) -> bytes:
    return b"G" + struct.pack(">d", value)  # BINFLOAT


def encode_actions(first_timestamp: float, dt: float, first_timestep: int,
                   actions: Sequence[Sequence[float]]) -> bytes:
    """`pickle.dumps([TimedAction(timestamp, timestep, torch.from_numpy(numpy.array(action,
    "float32"))), ...])`, the i-th at `first_timestep + i`, `first_timestamp + i * dt`."""
    out = [_PROTO]
    for module, name in _GLOBALS:  # memo 0, 1, 2 (then popped: they are read by BINGET)
        out += [_text(module), _text(name), _STACK_GLOBAL, _MEMOIZE]
    out.append(b"0" * len(_GLOBALS))  # POP each global again: they live on in the memo
    out += [_EMPTY_LIST, _MARK]
    for i, action in enumerate(actions):
        values = [float(v) for v in action]
        out += [_BINGET + b"\x00", _EMPTY_TUPLE, _NEWOBJ, _EMPTY_DICT, _MARK,
                _text("timestamp"), _float(first_timestamp + i * dt),
                _text("timestep"), _int(first_timestep + i),
                _text("action"), _BINGET + b"\x01", _BINGET + b"\x02",
                _EMPTY_LIST, _MARK, *(_float(v) for v in values), _APPENDS,
                _text("float32"), _TUPLE2, _REDUCE, _TUPLE1, _REDUCE,
                _SETITEMS, _BUILD]
    out += [_APPENDS, _STOP]
    return b"".join(out)
