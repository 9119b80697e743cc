"""msgpack with numpy arrays, byte-compatible with openpi-client's `msgpack_numpy`.

An array travels as a map with bytes keys `__ndarray__: True`, `data` (the raw bytes),
`dtype` (numpy's `dtype.str`, e.g. "<f4") and `shape`; a numpy scalar as `__npgeneric__`,
`data` (the Python value) and `dtype`. Decoding builds arrays from raw bytes only: object,
void and other non-numeric dtypes are refused, and the declared shape must match the bytes,
so a message can never run code (no pickle) nor claim more memory than it carries.
"""

from __future__ import annotations

import math
from typing import Any

import msgpack
import numpy as np

from vla_core.errors import VLAError

# Kinds a robot sends or receives: bool, ints, floats, bytes/str. "O" (object) would need
# pickle, "V" (void/structured) and "c" (complex) are refused as openpi-client refuses them.
ALLOWED_KINDS = frozenset("biufSU")
MAX_NDIM = 8


class WireFormatError(VLAError):
    """A message is not a valid msgpack observation or reply."""


def _pack_array(obj: Any) -> Any:
    """msgpack `default` hook: numpy arrays and scalars -> openpi's maps; anything else is an error."""
    if isinstance(obj, (np.ndarray, np.generic)) and obj.dtype.kind not in ALLOWED_KINDS:
        raise WireFormatError(f"arrays of dtype {obj.dtype} cannot be sent; use bool, int, float, bytes or str arrays.")
    if isinstance(obj, np.ndarray):
        return {b"__ndarray__": True, b"data": obj.tobytes(), b"dtype": obj.dtype.str, b"shape": obj.shape}
    if isinstance(obj, np.generic):
        return {b"__npgeneric__": True, b"data": obj.item(), b"dtype": obj.dtype.str}
    raise WireFormatError(f"a {type(obj).__name__} cannot be sent; send dicts, lists, str, numbers and numpy arrays.")


def _dtype(raw: Any) -> np.dtype:
    """A dtype string from the wire -> a numpy dtype of an allowed kind (never object)."""
    if isinstance(raw, bytes):
        raw = raw.decode("ascii", errors="replace")
    if not isinstance(raw, str):
        raise WireFormatError(f"an array's dtype must be a string such as '<f4', got {type(raw).__name__}.")
    try:
        dtype = np.dtype(raw)
    except (TypeError, ValueError):
        raise WireFormatError(f"an array's dtype {raw!r} is not a numpy dtype.") from None
    if dtype.kind not in ALLOWED_KINDS or dtype.itemsize == 0:
        raise WireFormatError(
            f"an array's dtype {raw!r} is refused (object, void, complex and flexible-without-size dtypes "
            "could smuggle pickled objects or have no fixed size); send bool, int, float, bytes or str arrays."
        )
    return dtype


def _unpack_array(obj: dict[Any, Any]) -> Any:
    """msgpack `object_hook`: openpi's array/scalar maps -> numpy; other maps unchanged."""
    if b"__ndarray__" in obj:
        dtype, data, shape = _dtype(obj.get(b"dtype")), obj.get(b"data"), obj.get(b"shape")
        if not isinstance(data, bytes):
            raise WireFormatError("an array's 'data' must be bytes.")
        if not isinstance(shape, (list, tuple)) or len(shape) > MAX_NDIM:
            raise WireFormatError(f"an array's 'shape' must be a list of at most {MAX_NDIM} sizes, got {shape!r}.")
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
            raise WireFormatError(f"an array's 'shape' must hold non-negative integers, got {shape!r}.")
        # Python ints: a declared 8 TB shape is compared, never allocated.
        expected = math.prod(shape) * dtype.itemsize
        if expected != len(data):
            raise WireFormatError(
                f"an array of shape {tuple(shape)} and dtype {dtype.str} needs {expected} bytes but carries "
                f"{len(data)}; the message is truncated or its header is wrong."
            )
        # A copy: the frombuffer view would be read-only and pin the whole message in memory.
        return np.frombuffer(data, dtype=dtype).reshape(shape).copy()
    if b"__npgeneric__" in obj:
        dtype = _dtype(obj.get(b"dtype"))
        try:
            return dtype.type(obj.get(b"data"))
        except (TypeError, ValueError, OverflowError) as exc:
            raise WireFormatError(f"a numpy scalar of dtype {dtype.str} has an invalid value ({exc}).") from None
    return obj


def packb(obj: Any) -> bytes:
    """Python/numpy value -> msgpack bytes that openpi-client's `unpackb` reads."""
    return msgpack.packb(obj, default=_pack_array, use_bin_type=True)


def unpackb(data: bytes, max_bytes: int | None = None) -> Any:
    """msgpack bytes (openpi-client's `packb`) -> Python/numpy value; WireFormatError if malformed.

    `max_bytes` bounds the message (the transport normally enforces it before this)."""
    if max_bytes is not None and len(data) > max_bytes:
        raise WireFormatError(f"the message has {len(data)} bytes, more than the limit of {max_bytes}.")
    try:
        # strict_map_key=False: openpi's array maps have bytes keys. unpackb bounds every declared
        # container/string length by len(data), so a header cannot make it allocate more.
        return msgpack.unpackb(data, object_hook=_unpack_array, raw=False, strict_map_key=False)
    except WireFormatError:
        raise
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise WireFormatError(f"the message is not valid msgpack ({type(exc).__name__}: {exc}).") from None
