"""`tf_image_ops` equals the TensorFlow ops that openvla / openvla-oft evaluate with, bit for bit.

The digests are sha256 of TensorFlow's uint8 outputs (tensorflow-cpu 2.21.0, run once in a scratch
environment on the inputs below, the Python 3.11 wheel; the script follows each call of openvla-oft's
`experiments/robot/openvla_utils.py`: `resize_image_for_policy`, `center_crop_image`):

    tf.image.resize(img, size, method="lanczos3", antialias=True) -> round, clip, uint8
    tf.io.decode_image(tf.image.encode_jpeg(img), expand_animations=False, dtype=tf.uint8)
    center_crop_image: convert_image_dtype, crop_and_resize(sqrt(0.9) box, 224), clip, convert back (saturate)

numpy's PCG64 streams are stable across versions, so the inputs are the same everywhere.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from vla_openvla.tf_image_ops import center_crop_and_resize, jpeg_round_trip, resize_lanczos3, resize_like_rlds

TENSORFLOW_SHA256 = {
    "lanczos_up": "39579053c677eaff5534d48de31688131b31e310b66b4c2474ba6fa95f93c0a1",
    "lanczos_down": "0236596c3dc150d4746fd58626c8755ac4dcd4d1994d0e549b4edabf9469dfb7",
    "lanczos_odd": "0d0b1c9cc2ae8a5ead2c3750af5ef87aa6987d558322a98ab53ea7eb5eec9aaf",
    "jpeg_noise": "1dcde64e91b0195c6606dc831980310848ef428651e31f4a18c77b43d0e201de",
    "jpeg_smooth": "4ae1b029b434243a5017440b28bfa0ce43867454dd99506060893f05f23e142a",
    "rlds_smooth": "ed5d0c994b9ea60490a97a7d5b446db02db9d63c2dbbfd8ec86a08e92b233c8a",
    "rlds_odd": "7738070fd0ef065cf406d69613d6a7e9c0d0d859761bf837776fa53cd3467a5f",
    "crop_square": "30712d704a86d8e696dddc1edd6e74af1ee75090552213a3b860ac2255c41b5d",
    "crop_noise": "81cc5ecdf74693a3d28f217af6ea7516865a71ef49f24a7b3f92328f55a488e0",
    "crop_odd": "1829cd3c34525d1b79bfa9873bb1972b31dd70db722796187620a2544055b95a",
}


def inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    noise = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:300, 0:400]
    smooth = np.stack([(xx * 255 // 399), (yy * 255 // 299), ((xx + yy) * 255 // 698)], -1).astype(np.uint8)
    smooth = np.clip(smooth.astype(int) + rng.integers(-20, 21, smooth.shape), 0, 255).astype(np.uint8)
    square = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
    odd = rng.integers(0, 256, (137, 211, 3), dtype=np.uint8)
    return noise, smooth, square, odd


@pytest.fixture(scope="module")
def ours() -> dict[str, np.ndarray]:
    noise, smooth, square, odd = inputs()
    return {
        "lanczos_up": resize_lanczos3(noise, (224, 224)),
        "lanczos_down": resize_lanczos3(smooth, (224, 224)),
        "jpeg_noise": jpeg_round_trip(noise),
        "jpeg_smooth": jpeg_round_trip(smooth),
        "rlds_smooth": resize_like_rlds(smooth),
        "crop_square": center_crop_and_resize(square),
        "crop_noise": center_crop_and_resize(noise),
        "lanczos_odd": resize_lanczos3(odd, (224, 224)),
        "crop_odd": center_crop_and_resize(odd),
        "rlds_odd": resize_like_rlds(odd),
    }


@pytest.mark.parametrize("name", sorted(TENSORFLOW_SHA256))
def test_equals_tensorflow(ours, name):
    assert hashlib.sha256(ours[name].tobytes()).hexdigest() == TENSORFLOW_SHA256[name]
