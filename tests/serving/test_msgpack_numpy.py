"""openpi's msgpack + numpy encoding: round trips, and what is refused without being built."""

from __future__ import annotations

import pickle

import msgpack
import numpy as np
import pytest

from vla_core.serving.msgpack_numpy import WireFormatError, packb, unpackb


def test_arrays_scalars_and_nesting_round_trip_bit_exact():
    message = {
        "observation/image": np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3),
        "observation/state": np.array([0.5, -1.25, np.pi], dtype=np.float32),
        "big_endian": np.array([1, 2], dtype=">i4"),
        "prompt": "open the drawer",
        "scalar": np.float32(2.5),  # (np.float64 is a Python float: msgpack sends it as one)
        "nested": {"timing": [1, 2.0, None]},
    }
    back = unpackb(packb(message))
    for key in ("observation/image", "observation/state", "big_endian"):
        assert back[key].dtype == message[key].dtype and back[key].flags.writeable
        np.testing.assert_array_equal(back[key], message[key])
    assert back["prompt"] == "open the drawer" and back["nested"] == {"timing": [1, 2.0, None]}
    assert type(back["scalar"]) is np.float32 and back["scalar"] == 2.5


def test_the_encoding_is_openpi_clients():
    """Byte layout of openpi_client.msgpack_numpy.pack_array: bytes keys, dtype.str, shape."""
    raw = msgpack.unpackb(packb(np.zeros((2, 3), np.float32)), strict_map_key=False)
    assert raw == {b"__ndarray__": True, b"data": bytes(24), b"dtype": "<f4", b"shape": [2, 3]}


@pytest.mark.parametrize("dtype", [object, [("a", "<i4")], np.complex64])
def test_object_void_and_complex_arrays_are_refused_both_ways(dtype):
    with pytest.raises(WireFormatError, match="cannot be sent"):
        packb({"x": np.zeros(2, dtype=dtype)})
    forged = msgpack.packb(
        {"x": {b"__ndarray__": True, b"data": pickle.dumps([1, 2]), b"dtype": np.dtype(dtype).str, b"shape": [2]}},
        use_bin_type=True,
    )
    with pytest.raises(WireFormatError, match="is refused"):
        unpackb(forged)


def test_a_declared_shape_must_match_the_bytes_carried():
    """An 8 TB declaration is compared, never allocated; a truncated array is refused."""
    huge = {b"__ndarray__": True, b"data": bytes(16), b"dtype": "<f4", b"shape": [2**20, 2**20, 2**1]}
    with pytest.raises(WireFormatError, match="needs 8796093022208 bytes but carries 16"):
        unpackb(msgpack.packb({"x": huge}, use_bin_type=True))
    with pytest.raises(WireFormatError, match="non-negative"):
        unpackb(msgpack.packb({"x": {**huge, b"shape": [-4]}}, use_bin_type=True))


@pytest.mark.parametrize(
    "data", [b"", b"\xc1", pickle.dumps({"state": [1.0]}), msgpack.packb({"a": 1}) + b"\x00", b"\x92\x01"]
)
def test_malformed_msgpack_and_pickles_are_wire_errors(data):
    with pytest.raises(WireFormatError, match="not valid msgpack"):
        unpackb(data)


def test_a_message_over_the_limit_is_refused():
    with pytest.raises(WireFormatError, match="more than the limit of 10"):
        unpackb(packb({"x": np.zeros(16, np.uint8)}), max_bytes=10)
