"""The restricted unpickler and the reply pickle, on LeRobot 0.6.1's own bytes (recorded by its
real client: tests/router_service/data/lerobot/README.md) and on hostile ones."""

from __future__ import annotations

import json
import os
import pickle
import pickletools
import struct
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from router_service.errors import InvalidRequest
from router_service.lerobot.messages import (
    decode_observation,
    decode_policy_config,
    encode_actions,
)
from router_service.lerobot.unpickle import (
    INBOUND,
    LEROBOT,
    TimedAction,
    UnpicklingRefused,
    restricted_loads,
)

DATA = Path(__file__).parent / "data" / "lerobot"
VALUES = json.loads((DATA / "values.json").read_text())


def fixture(name: str) -> bytes:
    return (DATA / name).read_bytes()


def lerobot_pickle(class_name: str, **fields: Any) -> bytes:
    """`pickle.dumps` of a LeRobot dataclass instance with these fields, written as LeRobot's
    client writes it (the class named by its module path, protocol 4), without lerobot: stand-in
    modules sit in sys.modules while pickling."""
    names = ("lerobot", "lerobot.async_inference", LEROBOT)
    modules = {name: types.ModuleType(name) for name in names}
    cls = type(class_name, (), {"__module__": LEROBOT, "__qualname__": class_name})
    setattr(modules[LEROBOT], class_name, cls)
    instance = cls()
    instance.__dict__.update(fields)
    saved = {name: sys.modules.get(name) for name in names}
    sys.modules.update(modules)
    try:
        return pickle.dumps(instance, protocol=4)
    finally:
        for name, module in saved.items():
            if module is None:
                del sys.modules[name]
            else:
                sys.modules[name] = module


def reply_reader() -> dict[tuple[str, str], Any]:
    """What LeRobot's client resolves in a reply, with numpy standing in for torch."""
    return {(LEROBOT, "TimedAction"): TimedAction, ("torch", "from_numpy"): np.asarray,
            ("numpy", "array"): np.array, **INBOUND}


def globals_named(data: bytes) -> set[tuple[str, str]]:
    """The globals a pickle names (STACK_GLOBAL right after its two strings, as written by
    encode_actions and by pickle itself for a first use; GLOBAL's text)."""
    strings: list[str] = []
    found = set()
    for op, arg, _ in pickletools.genops(data):
        if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
            strings.append(str(arg))
        elif op.name == "STACK_GLOBAL":
            found.add((strings[-2], strings[-1]))
        elif op.name == "GLOBAL":
            module, name = str(arg).split(" ")
            found.add((module, name))
    return found


# -- LeRobot's own messages load -----------------------------------------------------------
def test_recorded_observation_loads_with_numpy_camera() -> None:
    obs = decode_observation(fixture("timed_observation.pkl"))
    assert (obs.timestep, obs.must_go, obs.timestamp) == (0, True, 1767225600.25)
    assert [obs.observation[j] for j in VALUES["joints"]] == VALUES["state"]
    image = obs.observation["front"]
    assert isinstance(image, np.ndarray) and image.dtype == np.uint8
    assert image.shape == tuple(VALUES["camera_shape"])
    assert np.array_equal(image.reshape(-1), np.arange(image.size, dtype=np.uint8))
    assert obs.observation["task"] == VALUES["task"]


def test_recorded_observation_with_torch_tensors_loads_as_numpy() -> None:
    obs = decode_observation(fixture("timed_observation_tensors.pkl"))
    assert (obs.timestep, obs.must_go) == (5, False)
    joints = [obs.observation[j] for j in VALUES["joints"]]
    assert all(isinstance(v, np.ndarray) and v.shape == () and v.dtype == np.float32
               for v in joints)
    assert np.allclose(np.asarray(joints, dtype=np.float64), VALUES["state"], atol=1e-6)
    front = obs.observation["front"]  # torch.arange(24).reshape(2, 3, 4).permute(1, 2, 0)
    assert isinstance(front, np.ndarray) and front.shape == (3, 4, 2)
    assert np.array_equal(front, np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
                          .transpose(1, 2, 0))


def test_recorded_policy_config_loads() -> None:
    config = decode_policy_config(fixture("remote_policy_config.pkl"))
    assert (config.policy_type, config.actions_per_chunk, config.device) == ("act", 3, "cpu")
    assert config.pretrained_name_or_path == "router/ci"
    assert config.state_names == tuple(VALUES["joints"])


def test_lerobot_policy_server_reply_loads_tensor_views() -> None:
    """LeRobot's own server answers views of one chunk tensor: offsets and strides."""
    actions = restricted_loads(fixture("timed_actions_lerobot.pkl"), reply_reader())
    assert isinstance(actions, list) and len(actions) == 3
    for i, (action, expected) in enumerate(zip(actions, VALUES["lerobot_chunk"], strict=True)):
        assert isinstance(action, TimedAction) and action.fields["timestep"] == i
        assert np.allclose(action.fields["action"], expected, atol=1e-7)


def test_reply_names_only_timed_action_torch_and_numpy() -> None:
    data = encode_actions(10.0, 0.5, 7, [[0.25, -1.0, 1.0, 0.1]] * 3)
    assert globals_named(data) == {(LEROBOT, "TimedAction"), ("torch", "from_numpy"),
                                   ("numpy", "array")}
    with pytest.raises(UnpicklingRefused, match="TimedAction"):
        restricted_loads(data)  # the inbound allow-list does not take replies
    actions = restricted_loads(data, reply_reader())
    assert isinstance(actions, list)
    assert [a.fields["timestep"] for a in actions] == [7, 8, 9]
    assert [a.fields["timestamp"] for a in actions] == [10.0, 10.5, 11.0]
    for a in actions:
        array = a.fields["action"]
        assert array.dtype == np.float32
        assert array.tolist() == np.asarray([0.25, -1.0, 1.0, 0.1], np.float32).tolist()


def test_reply_timesteps_beyond_32_bits() -> None:
    actions = restricted_loads(encode_actions(0.0, 1.0, 2**40, [[1.0]]), reply_reader())
    assert isinstance(actions, list) and actions[0].fields["timestep"] == 2**40


# -- hostile pickles are refused, and nothing runs ------------------------------------------
class Evil:
    def __init__(self, func: Any, *args: Any) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Any, ...]:
        return self.func, self.args


def hostile(marker: Path) -> list[tuple[str, bytes]]:
    code = f"open({str(marker)!r}, 'w').write('ran')"
    cases = [
        ("os.system", pickle.dumps(Evil(os.system, f"touch {marker}"))),
        ("builtins.eval", pickle.dumps(Evil(eval, code))),
        ("builtins.exec", pickle.dumps(Evil(exec, code))),
        ("subprocess.Popen", pickle.dumps(Evil(subprocess.Popen, ["touch", str(marker)]))),
        # protocol 0 GLOBAL naming the module as written, and `os` spelled by hand
        ("os.system (GLOBAL)", f"cos\nsystem\n(S'touch {marker}'\ntR.".encode()),
        ("nt.system", f"cnt\nsystem\n(S'touch {marker}'\ntR.".encode()),
    ]
    # Inside an otherwise valid TimedObservation: refused midway, still nothing runs.
    inner = pickle.dumps(Evil(os.system, f"touch {marker}"))[2:-1]  # no PROTO, no STOP
    head = (b"\x80\x04\x8c\x1flerobot.async_inference.helpers\x8c\x10TimedObservation\x93)"
            b"\x81}(\x8c\x0bobservation}\x8c\x01x")
    cases.append(("os.system in an observation", head + inner + b"su\x8c\x08timestep"
                  b"K\x00\x8c\ttimestampG" + struct.pack(">d", 1.0) + b"ub."))
    # Inside a torch storage's bytes (torch.storage._load_from_bytes is allowed; what it
    # unpickles is restricted again).
    storage = pickle.dumps(Evil(os.system, f"touch {marker}"), protocol=2)
    cases.append(("os.system in a torch storage", b"\x80\x04\x8c\rtorch.storage\x8c\x10"
                  b"_load_from_bytes\x93C" + bytes([len(storage)]) + storage + b"\x85R."))
    return cases


@pytest.mark.parametrize("index", range(8))
def test_hostile_pickles_are_refused_and_nothing_runs(tmp_path: Path, index: int) -> None:
    marker = tmp_path / "ran"
    name, data = hostile(marker)[index]
    with pytest.raises(UnpicklingRefused, match=r"not allowed|torch storage pickle names"):
        restricted_loads(data)
    with pytest.raises(InvalidRequest, match="refused") as info:
        decode_observation(data)
    assert info.value.field == "data"
    assert not marker.exists(), f"{name}: the payload ran"


def ndarray_pickle(shape: tuple[int, ...], dtype: str, raw: bytes,
                   reconstruct_shape: int = 0) -> bytes:
    """numpy's own layout: _reconstruct(ndarray, (0,), b'b') then BUILD (1, shape, dtype...)."""
    dims = b"".join(b"J" + struct.pack("<i", n) for n in shape)
    return (b"\x80\x04\x8c\x16numpy._core.multiarray\x8c\x0c_reconstruct\x93"
            b"\x8c\x05numpy\x8c\x07ndarray\x93J" + struct.pack("<i", reconstruct_shape)
            + b"\x85C\x01b\x87R(K\x01(" + dims + b"t\x8c\x05numpy\x8c\x05dtype\x93\x8c"
            + bytes([len(dtype)]) + dtype.encode() + b"\x89\x88\x87R(K\x03\x8c\x01<NNNJ"
            b"\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89B" + struct.pack("<i", len(raw))
            + raw + b"tb.")


def test_a_well_formed_ndarray_pickle_loads() -> None:
    value = restricted_loads(ndarray_pickle((2, 2), "f4", np.arange(4, dtype="<f4").tobytes()))
    assert np.array_equal(np.asarray(value), [[0, 1], [2, 3]])


@pytest.mark.parametrize(("data", "match"), [
    (ndarray_pickle((10**9,), "f8", b""), "needs 8000000000 bytes"),  # no allocation
    (ndarray_pickle((2,), "f4", b"\x00" * 8, reconstruct_shape=10**9), "empty ndarray"),
    (ndarray_pickle((1,), "O", b"\x00" * 8), "not a plain numeric dtype"),
    (ndarray_pickle((1,), "V8", b"\x00" * 8), "not a plain numeric dtype"),
    (b"\x80\x04\x8c\x05numpy\x8c\x07ndarray\x93J\x00\xca\x9a;\x85R.", "object is not callable"),
    (b"\x80\x04\x8c\x0ctorch._utils\x8c\x12_rebuild_tensor_v2\x93)R.", "missing"),
    (b"\x80\x04\x8c\x05numpy\x8c\x05dtype\x93)\x81(K\x03\x8c\x01<NNNJ\xff\xff\xff\xffJ\xff\xff"
     b"\xff\xffK\x00tb.", "for no dtype"),
    (b"\x80\x04\x8c\x02ab\x94Q.", "persistent ids are not allowed"),
])
def test_numpy_and_torch_stand_ins_check_their_arguments(data: bytes, match: str) -> None:
    with pytest.raises((UnpicklingRefused, TypeError), match=match):
        restricted_loads(data)
    with pytest.raises(InvalidRequest):
        decode_observation(data)


@pytest.mark.parametrize("data", [b"", b"garbage", b"\x80\x04K", b"\x80\x04]" * 10])
def test_garbage_is_invalid_request(data: bytes) -> None:
    with pytest.raises(InvalidRequest, match="not a TimedObservation pickle") as info:
        decode_observation(data)
    assert info.value.field == "data"


@pytest.mark.parametrize(("observation", "field"), [
    ({f"k{i}": 0.0 for i in range(1025)}, "observation"),
    ({"x": [0.0] * 4097}, "observation.x"),
    ({"x": [[0.0]]}, "observation.x"),
    ({"x": None}, "observation.x"),
    ({3: 0.0}, "observation"),
])
def test_observation_values_are_plain_and_bounded(observation: dict[Any, Any],
                                                  field: str) -> None:
    data = lerobot_pickle("TimedObservation", timestamp=1.0, timestep=0, observation=observation)
    with pytest.raises(InvalidRequest) as info:
        decode_observation(data)
    assert info.value.field == field


def test_a_dataclass_without_its_fields_is_refused() -> None:
    newobj_only = (b"\x80\x04\x8c\x1flerobot.async_inference.helpers\x8c\x10TimedObservation"
                   b"\x93)\x81.")
    with pytest.raises(InvalidRequest, match="expected a pickled TimedObservation"):
        decode_observation(newobj_only)


def test_a_pickle_of_the_wrong_message_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="expected a pickled TimedObservation"):
        decode_observation(fixture("remote_policy_config.pkl"))
    with pytest.raises(InvalidRequest, match="expected a pickled RemotePolicyConfig"):
        decode_policy_config(fixture("timed_observation.pkl"))
