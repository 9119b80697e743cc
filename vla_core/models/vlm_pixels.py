"""Normalised images -> the pixel inputs a transformers VLM's forward takes.

Our processor gives every camera as a resized, normalised (C, H, W) image. Most VLMs take
those as `pixel_values` (N, C, H, W) directly (Gemma 3, PaliGemma, LLaVA, ...); two
families need another layout, exactly as their image processors produce it:

* Qwen2-VL / Qwen2.5-VL / Qwen3-VL ("patches"): each image is cut into
  `temporal_patch_size x patch_size x patch_size` patches (the still image repeated over the
  temporal patch), ordered so that each `merge_size x merge_size` block of patches is
  contiguous, plus `image_grid_thw` (N, 3) = (1, H / patch, W / patch).
* Idefics3 / SmolVLM ("batched"): `pixel_values` (1, N, C, H, W) with a
  `pixel_attention_mask` (1, N, H, W) of ones (images are not padded here).
"""

from __future__ import annotations

from typing import Any, Literal

import torch

PixelLayout = Literal["images", "patches", "batched"]

#: transformers model types whose pixel inputs are not plain (N, C, H, W) images.
FAMILY_LAYOUTS: dict[str, PixelLayout] = {
    "qwen2_vl": "patches",
    "qwen2_5_vl": "patches",
    "qwen3_vl": "patches",
    "qwen3_vl_moe": "patches",
    "idefics3": "batched",
    "smolvlm": "batched",
}


def patch_grid(config: Any) -> tuple[int, int, int]:
    """(patch_size, temporal_patch_size, merge_size) of a Qwen-VL vision config."""
    vision = config.vision_config
    return int(vision.patch_size), int(vision.temporal_patch_size), int(vision.spatial_merge_size)


def qwen_patches(images: torch.Tensor, patch: int, temporal: int, merge: int) -> tuple[torch.Tensor, torch.Tensor]:
    """images (N, C, H, W) -> pixel_values (N * h * w, C * temporal * patch * patch) and
    image_grid_thw (N, 3) = (1, h, w), h = H / patch, w = W / patch; the same order as
    transformers' Qwen2VLImageProcessor (merge blocks contiguous, row-major inside)."""
    n, channels, height, width = images.shape
    h, w = height // patch, width // patch
    frames = images.unsqueeze(1).expand(n, temporal, channels, height, width)  # a still image fills the time patch
    x = frames.reshape(n, 1, temporal, channels, h // merge, merge, patch, w // merge, merge, patch)
    # -> (n, t, h/m, w/m, m, m, C, temporal, p, p)
    x = x.permute(0, 1, 4, 7, 5, 8, 3, 2, 6, 9)
    pixel_values = x.reshape(n * h * w, channels * temporal * patch * patch)
    grid = torch.tensor([[1, h, w]] * n, dtype=torch.long, device=images.device)
    return pixel_values, grid


def pixel_inputs(layout: PixelLayout, images: torch.Tensor, config: Any) -> dict[str, torch.Tensor]:
    """images (N, C, H, W) normalised, the valid images of the batch in prompt order ->
    the keyword arguments for the model's forward."""
    if layout == "patches":
        pixel_values, grid = qwen_patches(images, *patch_grid(config))
        return {"pixel_values": pixel_values, "image_grid_thw": grid}
    if layout == "batched":
        mask = torch.ones(1, images.shape[0], *images.shape[-2:], dtype=torch.bool, device=images.device)
        return {"pixel_values": images.unsqueeze(0), "pixel_attention_mask": mask}
    return {"pixel_values": images}
