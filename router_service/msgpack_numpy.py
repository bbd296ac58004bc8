"""openpi's msgpack-numpy wire format: decoded strictly, encoded for replies.

openpi's client (`openpi_client/msgpack_numpy.py`) sends an observation as one msgpack map whose
arrays are maps with binary keys, `{b"__ndarray__": True, b"data": <bin>, b"dtype": "<f4",
b"shape": [...]}`, and numpy scalars as `{b"__npgeneric__": True, b"data": <number>,
b"dtype": "<f4"}`. The frame is decoded without an object hook and then walked, so an error
names the key path the client must fix (`observation/state.dtype`), and a client cannot make
the router build an arbitrary numpy dtype: only bool, integers and floats are allowed (no
object, void, structured, string or datetime dtypes), and shape x itemsize must equal the
length of `data`. Marker maps may use str keys too (some non-Python msgpack writers).
"""

from __future__ import annotations

import math
import re
from typing import Any

import msgpack
import numpy as np

from router_service.errors import InvalidRequest

ARRAY, SCALAR = "__ndarray__", "__npgeneric__"
_ARRAY_KEYS = frozenset({ARRAY, "data", "dtype", "shape"})
_SCALAR_KEYS = frozenset({SCALAR, "data", "dtype"})
# numpy's `dtype.str` of the allowed dtypes: bool, signed/unsigned ints, half/single/double.
_DTYPE = re.compile(r"^[<>|=]?(b1|[iu][1248]|f[248])$")
MAX_DEPTH = 16  # nesting of maps and lists; openpi observations are one or two levels deep
MAX_NDIM = 32


def _fail(path: str, message: str) -> InvalidRequest:
    field = path or "frame"
    return InvalidRequest(f"{field}: {message}", field=field)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _keys(value: dict[Any, Any], path: str) -> dict[str, Any]:
    items: dict[str, Any] = {}
    for key, item in value.items():
        if isinstance(key, bytes):
            try:
                key = key.decode("utf-8")
            except UnicodeDecodeError:
                raise _fail(path, "a map key is not UTF-8") from None
        if not isinstance(key, str):
            raise _fail(path, f"map keys must be strings, got {type(key).__name__}")
        if key in items:
            raise _fail(_join(path, key), "key given twice (as str and as bin)")
        items[key] = item
    return items


def _dtype(value: object, path: str) -> np.dtype[Any]:
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
    if not isinstance(text, str) or not _DTYPE.match(text):
        raise _fail(path, f"dtype {value!r} is not allowed (bool, int8-64, uint8-64, float16-64 "
                          "as numpy's dtype.str, e.g. '<f4')")
    return np.dtype(text)


def _exact(items: dict[str, Any], expected: frozenset[str], path: str, what: str) -> None:
    missing = sorted(expected - items.keys())
    if missing:
        raise _fail(_join(path, missing[0]), f"{what} map has no {missing[0]!r}")
    extra = sorted(items.keys() - expected)
    if extra:
        raise _fail(_join(path, extra[0]), f"{what} map has an unexpected key {extra[0]!r}")


def _array(items: dict[str, Any], path: str) -> np.ndarray[Any, Any]:
    _exact(items, _ARRAY_KEYS, path, "ndarray")
    if items[ARRAY] is not True:
        raise _fail(_join(path, ARRAY), "must be true")
    dtype = _dtype(items["dtype"], _join(path, "dtype"))
    shape = items["shape"]
    if (not isinstance(shape, list) or len(shape) > MAX_NDIM
            or not all(type(d) is int and d >= 0 for d in shape)):
        raise _fail(_join(path, "shape"), f"must be a list of at most {MAX_NDIM} non-negative "
                                          f"integers, got {shape!r}"[:200])
    data = items["data"]
    if not isinstance(data, bytes):
        raise _fail(_join(path, "data"), f"must be msgpack bin, got {type(data).__name__}")
    expected = math.prod(shape) * dtype.itemsize
    if expected != len(data):
        raise _fail(_join(path, "data"), f"shape {shape} of {dtype.str} needs {expected} bytes, "
                                         f"data has {len(data)}"[:200])
    if dtype.kind == "b" and data and int(np.frombuffer(data, np.uint8).max()) > 1:
        raise _fail(_join(path, "data"), "bool data must be bytes 0 or 1")
    return np.frombuffer(data, dtype=dtype).reshape(shape)


def _scalar(items: dict[str, Any], path: str) -> np.generic:
    _exact(items, _SCALAR_KEYS, path, "npgeneric")
    if items[SCALAR] is not True:
        raise _fail(_join(path, SCALAR), "must be true")
    dtype = _dtype(items["dtype"], _join(path, "dtype"))
    data = items["data"]
    kind = dtype.kind
    ok = (isinstance(data, bool) if kind == "b"
          else type(data) is int if kind in "iu"
          else type(data) in (int, float))
    if not ok:
        raise _fail(_join(path, "data"), f"{data!r} is not a {dtype.name} value"[:200])
    if kind in "iu":
        info = np.iinfo(dtype)
        if not info.min <= data <= info.max:
            raise _fail(_join(path, "data"), f"{data} is out of range for {dtype.name}")
    with np.errstate(over="ignore"):  # a float too large for float16 is inf, as in numpy
        value: np.generic = dtype.type(data)
    return value


def _walk(value: object, path: str, depth: int) -> object:
    if depth > MAX_DEPTH:
        raise _fail(path, f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        items = _keys(value, path)
        if ARRAY in items:
            return _array(items, path)
        if SCALAR in items:
            return _scalar(items, path)
        return {k: _walk(v, _join(path, k), depth + 1) for k, v in items.items()}
    if isinstance(value, list):
        return [_walk(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value)]
    if value is None or isinstance(value, bool | int | float | str | bytes):
        return value
    # msgpack ExtType / Timestamp: openpi never sends them.
    raise _fail(path, f"unsupported msgpack value ({type(value).__name__})")


def unpack_map(frame: bytes) -> dict[str, object]:
    """One frame -> a dict of str keys (arrays as read-only ndarrays); `InvalidRequest` naming
    the key path otherwise (`frame` when the frame as a whole is not a msgpack map)."""
    try:
        raw = msgpack.unpackb(frame, raw=False, strict_map_key=True, timestamp=0)
    except Exception as exc:  # ExtraData, FormatError, StackError, ValueError, TypeError, ...
        raise InvalidRequest(f"frame: not one valid msgpack value ({type(exc).__name__}: "
                             f"{exc})"[:200], field="frame") from None
    value = _walk(raw, "", 0)
    if not isinstance(value, dict):
        raise _fail("", f"must be a msgpack map of observation keys, got {type(value).__name__}")
    return value


def _default(obj: object) -> object:
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in "biuf":
            raise TypeError(f"cannot send dtype {obj.dtype}")
        return {b"__ndarray__": True, b"data": obj.tobytes(), b"dtype": obj.dtype.str,
                b"shape": list(obj.shape)}
    if isinstance(obj, np.generic):
        return obj.item()  # a plain number: every msgpack reader understands it
    raise TypeError(f"cannot send {type(obj).__name__}")


def packb(obj: object) -> bytes:
    """msgpack with ndarrays in openpi's form (what `openpi_client.msgpack_numpy.unpackb`
    reads)."""
    data: bytes = msgpack.packb(obj, default=_default, use_bin_type=True)
    return data
