"""Regenerates `test_tf_image_ops.TENSORFLOW_SHA256` with TensorFlow itself (not run by the tests).

    python -m venv /tmp/tf && /tmp/tf/bin/pip install tensorflow-cpu==2.21.0
    /tmp/tf/bin/python plugins/vla-openvla/tests/tf_digests.py /tmp/tf_outputs.npz

Each function is the TensorFlow code of openvla-oft's `experiments/robot/openvla_utils.py`
(`resize_image_for_policy`, `center_crop_image` / `crop_and_resize`) or one of its calls;
the inputs are those of `test_tf_image_ops.inputs()` (keep the two equal).
"""
import hashlib
import sys

import numpy as np
import tensorflow as tf


def inputs():
    rng = np.random.default_rng(7)
    noise = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:300, 0:400]
    smooth = np.stack([(xx * 255 // 399), (yy * 255 // 299), ((xx + yy) * 255 // 698)], -1).astype(np.uint8)
    smooth = np.clip(smooth.astype(int) + rng.integers(-20, 21, smooth.shape), 0, 255).astype(np.uint8)
    square = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
    odd = rng.integers(0, 256, (137, 211, 3), dtype=np.uint8)
    return noise, smooth, square, odd

def resize_image_for_policy(img, size=224):
    img = tf.image.encode_jpeg(img)
    img = tf.io.decode_image(img, expand_animations=False, dtype=tf.uint8)
    img = tf.image.resize(img, (size, size), method="lanczos3", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(img), 0, 255), tf.uint8).numpy()

def lanczos(img, size):
    out = tf.image.resize(img, size, method="lanczos3", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(out), 0, 255), tf.uint8).numpy()

def jpeg(img):
    return tf.io.decode_image(tf.image.encode_jpeg(img), expand_animations=False, dtype=tf.uint8).numpy()

def center_crop(image, crop_scale=0.9, batch_size=1):
    image = tf.convert_to_tensor(np.array(image))
    orig_dtype = image.dtype
    image = tf.image.convert_image_dtype(image, tf.float32)
    image = tf.expand_dims(image, axis=0)
    new_heights = tf.reshape(tf.clip_by_value(tf.sqrt(crop_scale), 0, 1), shape=(batch_size,))
    new_widths = tf.reshape(tf.clip_by_value(tf.sqrt(crop_scale), 0, 1), shape=(batch_size,))
    height_offsets = (1 - new_heights) / 2
    width_offsets = (1 - new_widths) / 2
    boxes = tf.stack([height_offsets, width_offsets, height_offsets + new_heights, width_offsets + new_widths], axis=1)
    image = tf.image.crop_and_resize(image, boxes, tf.range(batch_size), (224, 224))[0]
    image = tf.clip_by_value(image, 0, 1)
    return tf.image.convert_image_dtype(image, orig_dtype, saturate=True).numpy()

noise, smooth, square, odd = inputs()
results = {
    "lanczos_up": lanczos(noise, (224, 224)),
    "lanczos_down": lanczos(smooth, (224, 224)),
    "jpeg_noise": jpeg(noise),
    "jpeg_smooth": jpeg(smooth),
    "rlds_smooth": resize_image_for_policy(smooth),
    "crop_square": center_crop(square),
    "crop_noise": center_crop(noise),
    "lanczos_odd": lanczos(odd, (224, 224)),
    "crop_odd": center_crop(odd),
    "rlds_odd": resize_image_for_policy(odd),
}
np.savez(sys.argv[1], **results)
for k, v in results.items():
    print(k, v.shape, hashlib.sha256(v.tobytes()).hexdigest())
print("tf", tf.__version__)
