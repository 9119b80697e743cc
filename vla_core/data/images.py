"""Inline images: PNG bytes in a parquet `struct<bytes: binary, path: string>` column
(the Hugging Face `datasets` Image feature that LeRobot uses for dtype "image")."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from vla_core.errors import DataError


def decode_png(data: bytes | dict[str, Any], where: str = "") -> np.ndarray:
    """PNG (or any Pillow-readable) bytes -> uint8 (H, W, 3) RGB."""
    from PIL import Image

    if isinstance(data, dict):
        data = data.get("bytes")
    if not data:
        raise DataError(
            f"{where}: the image cell is empty (no bytes); the dataset stores images elsewhere or is corrupt."
        )
    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.array(image.convert("RGB"))  # a writable copy (np.asarray of PIL is read-only)
    except OSError as exc:
        raise DataError(f"{where}: the image bytes could not be decoded ({exc}).") from None


def encode_png(rgb: np.ndarray, compress_level: int = 1) -> bytes:
    """uint8 (H, W, 3) -> PNG bytes (lossless; level 1 = fast, as lerobot's image writer)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()


def as_uint8_hwc(image: Any, key: str, shape: list[int] | None = None) -> np.ndarray:
    """Accept uint8 HWC, or float CHW/HWC in [0, 1] (lerobot's convention), -> uint8 (H, W, 3)."""
    array = np.asarray(image)
    if array.ndim != 3:
        raise DataError(f"image '{key}' must be 3-D (H, W, 3), got shape {array.shape}.")
    if array.shape[0] in (1, 3) and array.shape[-1] not in (1, 3):
        array = array.transpose(1, 2, 0)
    if array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.floating):
            raise DataError(f"image '{key}' must be uint8 or float in [0, 1], got {array.dtype}.")
        array = np.clip(np.rint(array * 255.0), 0, 255).astype(np.uint8)
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    if shape is not None and list(array.shape) != list(shape):
        raise DataError(f"image '{key}' has shape {list(array.shape)}, but the feature declares {list(shape)}.")
    return array
