"""The router's openpi msgpack-numpy codec against openpi's own (the `openpi_client` package, the
reference): what openpi's client packs decodes to the same arrays, what the router packs
openpi's client reads back, and every malformed or disallowed array is an `InvalidRequest`
naming the key path."""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from openpi_client import msgpack_numpy as openpi

from router_service.errors import InvalidRequest
from router_service.msgpack_numpy import MAX_DEPTH, packb, unpack_map

ALLOWED = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
           "float16", "float32", "float64"]
STATE = np.arange(39, dtype=np.float32) / 10


def array_map(**override: Any) -> dict[bytes, Any]:
    base: dict[bytes, Any] = {b"__ndarray__": True, b"data": STATE.tobytes(), b"dtype": "<f4",
                              b"shape": [39]}
    for name, value in override.items():
        if value is None:
            base.pop(name.encode())
        else:
            base[name.encode()] = value
    return base


def refused(frame: bytes) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        unpack_map(frame)
    assert caught.value.message.startswith(caught.value.field or "?"), caught.value.message
    return caught.value


@pytest.mark.parametrize("dtype", ALLOWED)
def test_every_allowed_dtype_from_openpis_packer_decodes_to_the_same_array(dtype: str) -> None:
    array = (np.arange(24) % 2 if dtype == "bool" else np.arange(24)).astype(dtype)
    array = array.reshape(2, 3, 4)
    obs = unpack_map(openpi.packb({"observation/state": array, "prompt": "reach-v3"}))
    decoded = obs["observation/state"]
    assert isinstance(decoded, np.ndarray)
    assert decoded.dtype == array.dtype and decoded.shape == (2, 3, 4)
    np.testing.assert_array_equal(decoded, array)
    assert obs["prompt"] == "reach-v3"


def test_scalars_nested_maps_lists_and_zero_d_arrays_decode() -> None:
    frame = openpi.packb({"a": np.float32(1.5), "b": {"c": [np.int8(-3), np.bool_(True)]},
                          "d": np.array(2.0), "e": None, "f": b"raw", "g": [1, 2.5]})
    obs = unpack_map(frame)
    assert obs["a"] == np.float32(1.5) and isinstance(obs["a"], np.float32)
    assert obs["b"] == {"c": [np.int8(-3), np.bool_(True)]}
    assert isinstance(obs["d"], np.ndarray) and obs["d"].shape == () and obs["d"] == 2.0
    assert (obs["e"], obs["f"], obs["g"]) == (None, b"raw", [1, 2.5])


def test_a_big_endian_array_and_str_marker_keys_are_read() -> None:
    big = np.arange(4, dtype=">f8")
    frame = msgpack.packb({"s": {"__ndarray__": True, "data": big.tobytes(), "dtype": ">f8",
                                 "shape": [4]}})
    decoded = unpack_map(frame)["s"]
    assert isinstance(decoded, np.ndarray) and decoded.dtype == np.dtype(">f8")
    np.testing.assert_array_equal(decoded, [0, 1, 2, 3])


@pytest.mark.parametrize(("frame", "field"), [
    # dtypes outside the allow-list
    (msgpack.packb({"s": array_map(dtype="|O")}), "s.dtype"),
    (msgpack.packb({"s": array_map(dtype="|V4")}), "s.dtype"),
    (msgpack.packb({"s": array_map(dtype="<c8")}), "s.dtype"),
    (msgpack.packb({"s": array_map(dtype="<U1")}), "s.dtype"),
    (msgpack.packb({"s": array_map(dtype="<M8[s]")}), "s.dtype"),
    (msgpack.packb({"s": array_map(dtype="f4,f4")}), "s.dtype"),
    (msgpack.packb({"s": array_map(dtype=7)}), "s.dtype"),
    # malformed maps
    (msgpack.packb({"s": array_map(shape=None)}), "s.shape"),
    (msgpack.packb({"s": array_map(data=None)}), "s.data"),
    (msgpack.packb({"s": array_map(dtype=None)}), "s.dtype"),
    (msgpack.packb({"s": array_map(extra=1)}), "s.extra"),
    (msgpack.packb({"s": array_map(__ndarray__=1)}), "s.__ndarray__"),
    (msgpack.packb({"s": array_map(shape=[40])}), "s.data"),
    (msgpack.packb({"s": array_map(shape=[-39])}), "s.shape"),
    (msgpack.packb({"s": array_map(shape=[True])}), "s.shape"),
    (msgpack.packb({"s": array_map(shape=[39.0])}), "s.shape"),
    (msgpack.packb({"s": array_map(shape="39")}), "s.shape"),
    (msgpack.packb({"s": array_map(shape=[1] * 33 + [39])}), "s.shape"),
    (msgpack.packb({"s": array_map(data="text")}), "s.data"),
    (msgpack.packb({"s": array_map(data=b"\x02", dtype="|b1", shape=[1])}), "s.data"),
    (msgpack.packb({"s": {b"__npgeneric__": True, b"data": 300, b"dtype": "|u1"}}), "s.data"),
    (msgpack.packb({"s": {b"__npgeneric__": True, b"data": "x", b"dtype": "<f4"}}), "s.data"),
    (msgpack.packb({"s": {b"__npgeneric__": True, b"dtype": "<f4"}}), "s.data"),
    (msgpack.packb({"s": {b"__npgeneric__": True, b"data": 1, b"dtype": "|O"}}), "s.dtype"),
    (msgpack.packb({"x": [array_map(dtype="|O")]}), "x[0].dtype"),
    # not an observation map
    (b"\xc1", "frame"),
    (msgpack.packb([1, 2]), "frame"),
    (msgpack.packb({"a": 1}) + b"\x00", "frame"),
    (msgpack.packb({1: 2}), "frame"),
    (msgpack.packb({"t": msgpack.ExtType(5, b"x")}), "t"),
    (msgpack.packb({"a": {b"\xff": 1}}), "a"),
    (msgpack.packb({"k": 1, b"k": 2}), "k"),
    (msgpack.packb({"d": [[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]}), "d" + "[0]" * MAX_DEPTH),
])
def test_malformed_and_disallowed_frames_name_the_key(frame: bytes, field: str) -> None:
    assert refused(frame).field == field


def test_the_reply_packer_is_read_by_openpis_client() -> None:
    actions = np.array([[0.1, -0.2, 0.3, 1.0]], dtype=np.float32)
    reply = openpi.unpackb(packb({"actions": actions, "route": "generalist", "n": np.int64(3),
                                  "server_timing": {"infer_ms": 1.5}, "fallback": None}))
    assert reply["actions"].dtype == np.float32 and reply["actions"].shape == (1, 4)
    np.testing.assert_array_equal(reply["actions"], actions)
    assert reply["route"] == "generalist" and reply["n"] == 3 and reply["fallback"] is None
    with pytest.raises(TypeError):
        packb({"o": np.array([object()])})


@settings(max_examples=200, deadline=None)
@given(array=hnp.arrays(st.sampled_from(ALLOWED).map(np.dtype),
                        hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5)))
def test_any_allowed_array_round_trips_both_ways(array: np.ndarray[Any, Any]) -> None:
    ours = unpack_map(openpi.packb({"x": array}))["x"]
    assert isinstance(ours, np.ndarray)
    np.testing.assert_array_equal(ours, array)
    assert ours.dtype == array.dtype and ours.shape == array.shape
    theirs = openpi.unpackb(packb({"x": array}))["x"]
    np.testing.assert_array_equal(theirs, array)


@settings(max_examples=300, deadline=None)
@given(frame=st.binary(max_size=200))
def test_random_bytes_never_raise_anything_but_invalid_request(frame: bytes) -> None:
    try:
        unpack_map(frame)
    except InvalidRequest as exc:
        assert exc.field
