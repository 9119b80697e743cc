"""GR00T N1.5's evaluation image pipeline, camera frame -> Eagle pixel values.

The steps of Isaac-GR00T's data config transforms in eval mode (`gr00t/data/transform/video.py`)
and then of Eagle's image processor (`image_processing_eagle2_5_vl_fast.py`):

    VideoToTensor   uint8 (H, W, 3) -> float32 (3, H, W) / 255
    VideoCrop       eval: centre crop to (int(H * scale), int(W * scale)) (torchvision CenterCrop)
    VideoResize     to 224 x 224, bilinear with antialiasing (torchvision Resize on float)
    VideoToNumpy    (x * 255).to(uint8): truncation, not rounding
    Eagle           one 224 px tile (no resize at that size), (x - mean / rescale) / (std / rescale)
                    with rescale 1/255 and mean = std = 0.5, i.e. (x - 127.5) / 127.5

Colour jitter and the other augmentations only run in training.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vla_core.errors import DataError

RESCALE = 1 / 255  # Eagle's preprocessor_config.json rescale_factor


def frame_to_tensor(frame: Any, camera: str) -> torch.Tensor:
    """uint8 (H, W, 3) (or GR00T's (1, H, W, 3)) -> float32 (3, H, W) in [0, 1] (`VideoToTensor.to_tensor`)."""
    array = np.asarray(frame)
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[-1] != 3:
        raise DataError(
            f"camera '{camera}': GR00T's pipeline takes uint8 frames (H, W, 3) at the camera's resolution, got "
            f"{array.dtype} {tuple(array.shape)}."
        )
    return torch.from_numpy(np.ascontiguousarray(array)).to(torch.float32).div(255.0).permute(2, 0, 1)


def center_crop(pixels: torch.Tensor, scale: float) -> torch.Tensor:
    """(3, H, W) -> (3, int(H * scale), int(W * scale)), offsets as torchvision's `center_crop`."""
    height, width = pixels.shape[-2:]
    crop_h, crop_w = int(height * scale), int(width * scale)
    top, left = round((height - crop_h) / 2.0), round((width - crop_w) / 2.0)  # Python's round, as torchvision
    return pixels[..., top : top + crop_h, left : left + crop_w]


def gr00t_eval_frame(frame: Any, camera: str, crop_scale: float | None, size: int) -> torch.Tensor:
    """A camera frame -> uint8 (3, size, size), the image GR00T hands to Eagle's processor."""
    pixels = frame_to_tensor(frame, camera)
    if crop_scale is not None:
        pixels = center_crop(pixels, crop_scale)
    if tuple(pixels.shape[-2:]) != (size, size):  # torchvision's resize returns the input at the target size
        pixels = F.interpolate(pixels[None], size=(size, size), mode="bilinear", align_corners=False,
                               antialias=True)[0]
    return (pixels * 255).to(torch.uint8)


def eagle_pixel_values(image: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """uint8 (3, H, W) -> float32 (3, H, W): rescale and normalise fused, as the fast image processor does."""
    return (image.to(torch.float32) - mean / RESCALE) / (std / RESCALE)
