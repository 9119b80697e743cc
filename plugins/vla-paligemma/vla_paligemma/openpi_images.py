"""openpi's image steps for pi0 / pi0.5: camera slots, resize-with-pad, [-1, 1].

* slots (`openpi/models/model.py` `IMAGE_KEYS`): `base_0_rgb`, `left_wrist_0_rgb`,
  `right_wrist_0_rgb`, in that order in the prefix. A camera the robot lacks is a black
  (zero) uint8 image with mask False, as the policies' input transforms write it
  (`libero_policy.LiberoInputs`, `droid_policy.DroidInputs`; pi0 and pi0.5 alike — only
  pi0-FAST keeps such images unmasked);
* frames are first made uint8 HWC (`_parse_image` of those transforms: float images become
  `(255 * image).astype(uint8)`, CHW becomes HWC);
* `transforms.ResizeImages(224, 224)` -> `openpi_client.image_tools.resize_with_pad`: PIL
  bilinear to fit inside 224 x 224 keeping the aspect ratio (`int(size / ratio)`), pasted on
  black at `int((224 - size) / 2)`; a frame already 224 x 224 is left as it is;
* `Observation.from_dict`: uint8 -> `x.astype(float32) / 255 * 2 - 1`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vla_core.errors import DataError

#: openpi's camera slots, in prefix order.
IMAGE_KEYS = ("base_0_rgb", "left_wrist_0_rgb", "right_wrist_0_rgb")
IMAGE_RESOLUTION = (224, 224)


def parse_image(image: Any, camera: str) -> np.ndarray:
    """A frame as the policies' `_parse_image`: float -> `(255 * x).astype(uint8)`, CHW -> HWC -> uint8 (H, W, 3)."""
    array = np.asarray(image.cpu() if hasattr(image, "cpu") else image)
    if array.ndim != 3:
        raise DataError(f"image '{camera}' must be 3-D (H, W, 3) or (3, H, W), got shape {array.shape}.")
    if np.issubdtype(array.dtype, np.floating):
        array = (255 * array).astype(np.uint8)
    if array.shape[0] == 3:
        array = array.transpose(1, 2, 0)
    if array.dtype != np.uint8 or array.shape[-1] != 3:
        raise DataError(
            f"image '{camera}' must be uint8 (H, W, 3) RGB (or float in [0, 1]), got {array.dtype} {array.shape}."
        )
    return np.ascontiguousarray(array)


def resize_with_pad(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 (H, W, 3) -> uint8 (height, width, 3): openpi_client `image_tools._resize_with_pad_pil`."""
    from PIL import Image

    cur_height, cur_width = image.shape[:2]
    if (cur_height, cur_width) == (height, width):
        return image
    ratio = max(cur_width / width, cur_height / height)
    resized_height, resized_width = int(cur_height / ratio), int(cur_width / ratio)
    resized = Image.fromarray(image).resize((resized_width, resized_height), resample=Image.BILINEAR)
    canvas = Image.new(resized.mode, (width, height), 0)
    canvas.paste(resized, (max(0, int((width - resized_width) / 2)), max(0, int((height - resized_height) / 2))))
    return np.asarray(canvas)


def to_model_range(image: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) -> float32 (3, H, W) in [-1, 1]: openpi `Observation.from_dict`, channels first."""
    return (image.astype(np.float32) / 255.0 * 2.0 - 1.0).transpose(2, 0, 1)
