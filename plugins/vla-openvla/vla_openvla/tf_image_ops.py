"""The TensorFlow image ops that OpenVLA's / OFT's evaluation code runs, in numpy float32, without TensorFlow.

- `center_crop_and_resize`: `crop_and_resize(image, crop_scale=0.9)` + the uint8 conversions around
  it, as `get_vla_action` (openvla) / `center_crop_image` (openvla-oft, `experiments/robot/openvla_utils.py`)
  run it: a centred box of `crop_scale` of the area (sides * sqrt(crop_scale)), bilinearly sampled
  to 224 x 224 by `tf.image.crop_and_resize`.
- `resize_lanczos3`: `tf.image.resize(image, size, method="lanczos3", antialias=True)` followed by
  `tf.cast(tf.clip_by_value(tf.round(x), 0, 255), tf.uint8)`, OFT's `resize_image_for_policy` after
  its JPEG round trip (see `jpeg_round_trip`).

Each follows the TensorFlow kernel step by step (`crop_and_resize_op.cc`, `scale_and_translate_op.cc`:
the same float32 operations in the same order), so the uint8 results equal TensorFlow's.
"""

from __future__ import annotations

import io

import numpy as np

from vla_core.errors import DataError

F32 = np.float32
#: OFT's OPENVLA_IMAGE_SIZE; `crop_and_resize` always resamples to it.
OPENVLA_IMAGE_SIZE = 224


def uint8_to_float(image: np.ndarray) -> np.ndarray:
    """`tf.image.convert_image_dtype(uint8 -> float32)`: x * float32(1 / 255)."""
    return image.astype(F32) * F32(1.0 / 255.0)


def float_to_uint8_saturate(image: np.ndarray) -> np.ndarray:
    """`tf.image.convert_image_dtype(float32 -> uint8, saturate=True)`: saturate_cast(x * 255.5),
    i.e. clamp to [0, 255] and truncate."""
    scaled = image.astype(F32) * F32(255.5)
    return np.clip(scaled, F32(0.0), F32(255.0)).astype(np.uint8)


def crop_and_resize(image: np.ndarray, box: tuple[float, float, float, float], size: tuple[int, int]) -> np.ndarray:
    """`tf.image.crop_and_resize` (bilinear, extrapolation 0) of one (H, W, C) float32 image with
    the normalised box (y1, x1, y2, x2) -> (crop_h, crop_w, C) float32."""
    height, width = image.shape[:2]
    crop_h, crop_w = size
    y1, x1, y2, x2 = (F32(v) for v in box)

    def sample_grid(v1: np.float32, v2: np.float32, length: int, crop: int) -> tuple[np.ndarray, np.ndarray]:
        if crop > 1:
            scale = (v2 - v1) * F32(length - 1) / F32(crop - 1)
            coords = v1 * F32(length - 1) + np.arange(crop, dtype=F32) * scale
        else:
            coords = np.full(1, F32(0.5) * (v1 + v2) * F32(length - 1), dtype=F32)
        inside = (coords >= 0) & (coords <= length - 1)
        return coords.astype(F32), inside

    in_y, inside_y = sample_grid(y1, y2, height, crop_h)
    in_x, inside_x = sample_grid(x1, x2, width, crop_w)
    top, bottom = np.floor(in_y).astype(np.int64), np.ceil(in_y).astype(np.int64)
    left, right = np.floor(in_x).astype(np.int64), np.ceil(in_x).astype(np.int64)
    y_lerp = (in_y - top.astype(F32))[:, None, None]
    x_lerp = (in_x - left.astype(F32))[None, :, None]
    clamp_y, clamp_x = (lambda i: np.clip(i, 0, height - 1)), (lambda i: np.clip(i, 0, width - 1))
    rows_top, rows_bottom = image[clamp_y(top)], image[clamp_y(bottom)]
    top_left, top_right = rows_top[:, clamp_x(left)], rows_top[:, clamp_x(right)]
    bottom_left, bottom_right = rows_bottom[:, clamp_x(left)], rows_bottom[:, clamp_x(right)]
    upper = top_left + (top_right - top_left) * x_lerp
    lower = bottom_left + (bottom_right - bottom_left) * x_lerp
    crops = upper + (lower - upper) * y_lerp
    crops[~inside_y] = 0.0
    crops[:, ~inside_x] = 0.0
    return crops.astype(F32)


def center_crop_and_resize(image: np.ndarray, crop_scale: float = 0.9) -> np.ndarray:
    """uint8 (H, W, 3) -> uint8 (224, 224, 3): openvla-oft's `center_crop_image` / openvla's
    `get_vla_action(center_crop=True)`: convert to float, `crop_and_resize` with a centred box of
    side sqrt(crop_scale) (float32, clipped to [0, 1]), clip to [0, 1], convert back saturating."""
    side = np.clip(np.sqrt(F32(crop_scale)), F32(0.0), F32(1.0)).astype(F32)
    offset = (F32(1.0) - side) / F32(2.0)
    box = (offset, offset, offset + side, offset + side)
    crop = crop_and_resize(uint8_to_float(image), box, (OPENVLA_IMAGE_SIZE, OPENVLA_IMAGE_SIZE))
    return float_to_uint8_saturate(np.clip(crop, F32(0.0), F32(1.0)))


# ---- tf.image.resize(method="lanczos3", antialias=True) --------------------------------------------------
def _lanczos3(x: np.ndarray) -> np.ndarray:
    """TensorFlow's LanczosKernelFunc(radius 3) in float32 (1 at |x| <= 1e-3, 0 beyond the radius)."""
    pi, radius = F32(3.14159265359), F32(3.0)
    x = np.abs(x).astype(F32)

    def sinf(v: np.ndarray) -> np.ndarray:  # glibc's sinf is correctly rounded; numpy's float32 sin may not be
        return np.sin(v.astype(np.float64)).astype(F32)

    with np.errstate(divide="ignore", invalid="ignore"):
        value = radius * sinf(pi * x) * sinf(pi * x / radius) / (pi * pi * x * x)
    value = np.where(x <= F32(1e-3), F32(1.0), value)
    return np.where(x > radius, F32(0.0), value).astype(F32)


def _spans(output_size: int, input_size: int) -> tuple[np.ndarray, np.ndarray]:
    """`ComputeSpansCore` for lanczos3 with antialiasing, translation 0 -> starts (out,) int,
    weights (out, span) float32 (zeros past each row's span)."""
    scale = F32(output_size) / F32(input_size)
    inv_scale = F32(1.0 / float(scale))
    kernel_scale = max(inv_scale, F32(1.0))
    radius = F32(3.0) * kernel_scale
    span_size = min(2 * int(np.ceil(radius)) + 1, input_size)
    starts = np.zeros(output_size, dtype=np.int64)
    weights = np.zeros((output_size, span_size), dtype=F32)
    inv_kernel_scale = F32(1.0) / kernel_scale
    for x in range(output_size):
        sample = (F32(x) + F32(0.5)) * inv_scale + F32(-0.0)
        if sample < 0 or sample > input_size:
            continue
        start = int(np.clip(np.ceil(sample - radius - F32(0.5)), 0, input_size - 1))
        end = int(np.clip(np.floor(sample + radius - F32(0.5)), 0, input_size - 1)) + 1
        positions = np.arange(start, end, dtype=F32) + F32(0.5) - sample
        values = _lanczos3(positions * inv_kernel_scale)
        total = F32(0.0)
        for value in values:  # sequential float32 sum, as the kernel accumulates
            total = F32(total + value)
        if abs(total) >= F32(1000.0) * np.finfo(F32).tiny:
            weights[x, : end - start] = values * (F32(1.0) / total)
        starts[x] = start
    return starts, weights


def _gather(image: np.ndarray, starts: np.ndarray, weights: np.ndarray, axis: int) -> np.ndarray:
    """GatherRows (axis 0) / GatherColumns (axis 1): out[i] = sum_k w[i, k] * in[start_i + k], summed
    in float32 in k order from 0; taps past the input's end are skipped (their weights are 0)."""
    length = image.shape[axis]
    moved = np.moveaxis(image.astype(F32), axis, 0)
    out = np.zeros((len(starts), *moved.shape[1:]), dtype=F32)
    for k in range(weights.shape[1]):
        index = starts + k
        valid = index < length
        taps = moved[np.minimum(index, length - 1)]
        term = weights[:, k].reshape((-1,) + (1,) * (moved.ndim - 1)) * taps
        out = np.where(valid.reshape((-1,) + (1,) * (moved.ndim - 1)), out + term, out).astype(F32)
    return np.moveaxis(out, 0, axis)


def resize_lanczos3(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 (H, W, C) -> uint8 (h, w, C): `tf.image.resize(method="lanczos3", antialias=True)` (rows,
    then columns), rounded half to even, clipped, cast (OFT's `resize_image_for_policy`)."""
    row_starts, row_weights = _spans(size[0], image.shape[0])
    col_starts, col_weights = _spans(size[1], image.shape[1])
    rows = _gather(image, row_starts, row_weights, axis=0)
    resized = _gather(rows, col_starts, col_weights, axis=1)
    return np.clip(np.round(resized), 0, 255).astype(np.uint8)


def jpeg_round_trip(image: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) -> uint8 (H, W, 3): `tf.image.encode_jpeg` (quality 95, 4:2:0 chroma, accurate
    integer DCT) then `tf.io.decode_image` (TensorFlow's default fast integer DCT, fancy upsampling), as
    OFT's `resize_image_for_policy` does before resizing. Both through libjpeg-turbo: Pillow's encoder
    writes the same coefficients as TensorFlow's; simplejpeg decodes with TensorFlow's DCT choice
    (Pillow cannot: its fast DCT also turns fancy upsampling off)."""
    from PIL import Image

    try:
        import simplejpeg
    except ImportError:  # pragma: no cover - a dependency of vla-openvla
        raise DataError("OFT's image resizing needs simplejpeg (pip install simplejpeg).") from None
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="JPEG", quality=95, subsampling="4:2:0")
    return simplejpeg.decode_jpeg(buffer.getvalue(), colorspace="RGB", fastdct=True, fastupsample=False)


def resize_like_rlds(image: np.ndarray, size: int = OPENVLA_IMAGE_SIZE) -> np.ndarray:
    """OFT's `resize_image_for_policy`: JPEG round trip, lanczos3 resize to size x size, uint8."""
    return resize_lanczos3(jpeg_round_trip(image), (size, size))

