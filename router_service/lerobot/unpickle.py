"""A restricted unpickler for what LeRobot's robot client sends: `TimedObservation` and
`RemotePolicyConfig` pickles, with numpy arrays and scalars and, should a robot put them in
its observation, torch tensors. The router imports neither lerobot nor torch.

`find_class` resolves only the globals in `INBOUND` (the LeRobot dataclasses by module path,
numpy's array/scalar/dtype reconstruction, torch's tensor rebuild path, `OrderedDict`), each to
a stand-in defined here, and refuses every other global with `UnpicklingRefused`, before
anything is called: a pickle naming `os.system`, `builtins.eval` or `subprocess.Popen` runs
nothing. The stand-ins check their arguments (plain numeric dtypes only, no object arrays;
sizes that match the bytes given; no allocation that the message's own bytes do not pay for).
"""

from __future__ import annotations

import io
import math
import pickle
from collections import OrderedDict
from typing import Any

import numpy as np
from numpy.typing import NDArray

LEROBOT = "lerobot.async_inference.helpers"
_DTYPES = frozenset({"b1", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8"})
# torch's storage classes in its legacy serialisation (what `pickle.dumps(tensor)` embeds).
TORCH_STORAGES = {"FloatStorage": "f4", "DoubleStorage": "f8", "HalfStorage": "f2",
                  "LongStorage": "i8", "IntStorage": "i4", "ShortStorage": "i2",
                  "CharStorage": "i1", "ByteStorage": "u1", "BoolStorage": "b1"}
TORCH_MAGIC, TORCH_PROTOCOL = 0x1950A86A20F9469CFC6C, 1001


class UnpicklingRefused(pickle.UnpicklingError):
    """The payload names a global, or holds a value, that LeRobot's messages never need."""


class Recorded:
    """Stand-in for a LeRobot dataclass: NEWOBJ makes one, BUILD hands it the field dict."""

    lerobot_name = ""

    def __init__(self) -> None:
        self.fields: dict[str, Any] = {}

    def __setstate__(self, state: object) -> None:
        if isinstance(state, tuple) and len(state) == 2 and state[1] is None:
            state = state[0]  # (dict, slots) as pickle writes for a class with __slots__
        if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
            raise UnpicklingRefused(f"{self.lerobot_name}: state is not a field dict")
        self.fields = state


class TimedObservation(Recorded):
    lerobot_name = "TimedObservation"


class RemotePolicyConfig(Recorded):
    lerobot_name = "RemotePolicyConfig"


class TimedAction(Recorded):  # only for reading replies back (tests); never accepted inbound
    lerobot_name = "TimedAction"


class _NDArrayType:
    """`numpy.ndarray` as pickles name it: only an argument of `_reconstruct`; not callable
    (numpy.ndarray(shape) would allocate whatever the pickle asks)."""


NDARRAY = _NDArrayType()


class DType:
    """`numpy.dtype(spec, align, copy)` then BUILD (version, byte order, ...): plain numeric
    dtypes only, no subarrays, fields or objects."""

    spec, order = "", "="  # what a DType made by NEWOBJ (without __init__) has

    def __init__(self, spec: object, align: object = False, copy: object = True) -> None:
        if not isinstance(spec, str) or spec not in _DTYPES:
            raise UnpicklingRefused(f"dtype {spec!r} is not a plain numeric dtype")
        self.spec, self.order = spec, "="

    def __setstate__(self, state: object) -> None:
        if self.spec not in _DTYPES:
            raise UnpicklingRefused("a dtype state for no dtype")
        if (not isinstance(state, tuple) or len(state) < 5 or state[1] not in ("<", ">", "|", "=")
                or any(part is not None for part in state[2:5])):
            raise UnpicklingRefused(f"dtype {self.spec}: state {state!r} is not a plain dtype")
        self.order = state[1]

    def resolve(self) -> np.dtype[Any]:
        dtype = np.dtype(self.spec)
        if self.order == "<":
            return dtype.newbyteorder("<")
        return dtype.newbyteorder(">") if self.order == ">" else dtype


def _dtype(value: object) -> np.dtype[Any]:
    if not isinstance(value, DType) or value.spec not in _DTYPES:
        raise UnpicklingRefused(f"expected a numpy dtype, got {type(value).__name__}")
    return value.resolve()


class ArrayState(np.ndarray):  # type: ignore[type-arg]
    """What `_reconstruct` returns: BUILD's state is checked before numpy sees it."""

    def __setstate__(self, state: object) -> None:
        if not isinstance(state, tuple) or len(state) != 5:
            raise UnpicklingRefused("ndarray state is not (version, shape, dtype, order, data)")
        version, shape, dtype, fortran, data = state
        real = _dtype(dtype)
        if (not isinstance(shape, tuple) or not all(type(n) is int and n >= 0 for n in shape)
                or not isinstance(data, bytes | bytearray)):
            raise UnpicklingRefused("ndarray state has a bad shape or no raw data")
        needed = math.prod(shape) * real.itemsize  # Python ints: no overflow
        if needed != len(data):
            raise UnpicklingRefused(f"ndarray of shape {shape} {real} needs {needed} bytes, "
                                    f"got {len(data)}")
        super().__setstate__((version, shape, real, bool(fortran), bytes(data)))


def _reconstruct(subtype: object, shape: object, dtype_code: object) -> ArrayState:
    if subtype is not NDARRAY or shape != (0,):
        raise UnpicklingRefused("_reconstruct is only for numpy's own empty ndarray")
    return ArrayState((0,), np.uint8)


def _scalar(dtype: object, data: object) -> np.generic:
    real = _dtype(dtype)
    if not isinstance(data, bytes) or len(data) != real.itemsize:
        raise UnpicklingRefused(f"numpy scalar {real} needs {real.itemsize} bytes")
    value: np.generic = np.frombuffer(data, dtype=real)[0]
    return value


class Storage:
    """A torch storage read from its legacy serialisation: a 1-D array of its elements."""

    def __init__(self, data: NDArray[Any]) -> None:
        self.data = data


class _StorageUnpickler(pickle.Unpickler):
    def __init__(self, stream: io.BytesIO) -> None:
        super().__init__(stream)
        self.storages: dict[str, tuple[np.dtype[Any], int]] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch" and name in TORCH_STORAGES:
            return np.dtype(TORCH_STORAGES[name]).newbyteorder("<")
        raise UnpicklingRefused(f"torch storage pickle names {module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        # ("storage", type, key, location, numel, view_metadata); torch writes None for the
        # last (views of storages are no longer saved), older releases left it out.
        if (not isinstance(pid, tuple) or len(pid) not in (5, 6) or pid[0] != "storage"
                or not isinstance(pid[1], np.dtype) or not isinstance(pid[2], str)
                or type(pid[4]) is not int or pid[4] < 0 or pid[5:] not in ((), (None,))):
            raise UnpicklingRefused(f"unexpected torch persistent id {pid!r}")
        self.storages[pid[2]] = (pid[1], pid[4])
        return pid[2]


def _load_from_bytes(blob: object) -> Storage:
    """torch.storage._load_from_bytes: torch's legacy format (magic, protocol, system info,
    the storage as a persistent id, its key list, then per key an int64 count and the bytes)."""
    if not isinstance(blob, bytes):
        raise UnpicklingRefused("torch storage is not bytes")
    stream = io.BytesIO(blob)
    reader = _StorageUnpickler(stream)
    magic, protocol, info = reader.load(), reader.load(), reader.load()
    if magic != TORCH_MAGIC or protocol != TORCH_PROTOCOL or not isinstance(info, dict):
        raise UnpicklingRefused("not torch's legacy storage serialisation")
    if info.get("little_endian") is not True:
        raise UnpicklingRefused("big-endian torch storages are not supported")
    key, keys = reader.load(), reader.load()
    if keys != [key] or key not in reader.storages:
        raise UnpicklingRefused("torch storage pickle holds other than one storage")
    dtype, numel = reader.storages[key]
    count = int.from_bytes(stream.read(8), "little")
    data = stream.read()
    if count != numel or len(data) != numel * dtype.itemsize:
        raise UnpicklingRefused(f"torch storage of {numel} {dtype} has {len(data)} bytes")
    return Storage(np.frombuffer(data, dtype=dtype))


def _rebuild_tensor_v2(storage: object, offset: object, size: object, stride: object,
                       requires_grad: object = False, hooks: object = None,
                       metadata: object = None) -> NDArray[Any]:
    """torch._utils._rebuild_tensor_v2 -> a numpy copy of the view (bounds checked)."""
    ints = (isinstance(size, tuple) and isinstance(stride, tuple) and len(size) == len(stride)
            and all(type(n) is int and n >= 0 for n in (offset, *size, *stride)))
    if not isinstance(storage, Storage) or not ints:
        raise UnpicklingRefused("tensor rebuild arguments are not a storage and int sizes")
    assert isinstance(size, tuple) and isinstance(stride, tuple) and isinstance(offset, int)
    flat = storage.data
    last = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True) if n)
    if any(n == 0 for n in size):
        return np.zeros(size, dtype=flat.dtype)
    if last >= flat.size:
        raise UnpicklingRefused(f"tensor view reaches element {last} of {flat.size}")
    item = flat.itemsize
    view = np.lib.stride_tricks.as_strided(flat[offset:], shape=size,
                                           strides=tuple(s * item for s in stride))
    return np.array(view)


INBOUND: dict[tuple[str, str], Any] = {
    (LEROBOT, "TimedObservation"): TimedObservation,
    (LEROBOT, "RemotePolicyConfig"): RemotePolicyConfig,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,  # numpy 2 (LeRobot 0.6.1)
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,  # numpy 1 clients
    ("numpy._core.multiarray", "scalar"): _scalar,
    ("numpy.core.multiarray", "scalar"): _scalar,
    ("numpy", "ndarray"): NDARRAY,
    ("numpy", "dtype"): DType,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch.storage", "_load_from_bytes"): _load_from_bytes,
    ("collections", "OrderedDict"): OrderedDict,  # a tensor's (empty) backward hooks
}


class RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, allowed: dict[tuple[str, str], Any] | None = None) -> None:
        super().__init__(io.BytesIO(data))
        self.allowed = INBOUND if allowed is None else allowed

    def find_class(self, module: str, name: str) -> Any:
        found = self.allowed.get((module, name))
        if found is None:
            raise UnpicklingRefused(f"global {module}.{name} is not allowed (LeRobot messages "
                                    "need only their dataclasses, numpy arrays and tensors)")
        return found

    def persistent_load(self, pid: Any) -> Any:
        raise UnpicklingRefused("persistent ids are not allowed")


def restricted_loads(data: bytes, allowed: dict[tuple[str, str], Any] | None = None) -> object:
    """Raises `UnpicklingRefused` for a forbidden global, `pickle.UnpicklingError` (or the
    errors pickle itself raises on garbage) for bytes that are not a pickle."""
    return RestrictedUnpickler(data, allowed).load()


def plain(value: object) -> object:
    """The unpickled value as plain data: `ArrayState` becomes a plain ndarray."""
    if isinstance(value, ArrayState):
        return np.asarray(value).view(np.ndarray).copy()
    return value
