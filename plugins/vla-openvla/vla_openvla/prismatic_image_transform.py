"""`PrismaticImageTransform`: the released `PrismaticImageProcessor` (openvla
`prismatic/extern/hf/processing_prismatic.py`) on one PIL image, without transformers' remote code.

Per featurizer (DINOv2, then SigLIP): optional letterbox pad, `TVF.resize` with PIL bicubic
(`resize-naive`: both sides to 224; `resize-crop` / `letterbox`: the short side to 224),
`TVF.center_crop` to 224, `to_tensor`, `normalize` with that featurizer's mean/std; the results
are stacked on channels -> (3 * n_featurizers, 224, 224), the `pixel_values` the fused backbone splits.

The settings are those of the checkpoint's `preprocessor_config.json`. As in the reference, its
`tvf_*` entries (what the processor applies) win over the values `__init__` derives from
`image_resize_strategy`, `input_sizes`, `means` and `stds`, because `ImageProcessingMixin`
sets every extra key of the file as an attribute after `__init__`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from vla_core.errors import CheckpointError

#: PIL resampling codes (`TVF.pil_modes_mapping`): the reference stores the int.
PIL_MODES = {"nearest": 0, "lanczos": 1, "bilinear": 2, "bicubic": 3, "box": 4, "hamming": 5}
STRATEGIES = ("resize-naive", "resize-crop", "letterbox")


def _pad(image: Any, left: int, top: int, right: int, bottom: int, fill: tuple[int, ...] | int) -> Any:
    """torchvision's PIL `pad(..., padding_mode="constant")` (RGB images)."""
    from PIL import Image

    width, height = image.size
    canvas = Image.new("RGB", (width + left + right, height + top + bottom),
                       fill if isinstance(fill, tuple) else (fill,) * 3)
    canvas.paste(image, (left, top))
    return canvas


class PrismaticImageTransform:
    """One PIL RGB image -> pixel_values (3 * n_featurizers, H, W) float32.

    Args:
        resize_params: per featurizer {"size": int or [h, w], "interpolation": PIL code or name}.
        crop_sizes: per featurizer [h, w] of the centre crop.
        means: per featurizer per-channel mean (after scaling to [0, 1]).
        stds: per featurizer per-channel std.
        letterbox_fill: the RGB fill of the letterbox pad, or None for no letterbox.
    """

    def __init__(
        self,
        resize_params: list[dict[str, Any]],
        crop_sizes: list[list[int]],
        means: list[list[float]],
        stds: list[list[float]],
        letterbox_fill: list[int] | None = None,
    ) -> None:
        count = len(resize_params)
        if not count or any(len(v) != count for v in (crop_sizes, means, stds)):
            raise CheckpointError("the image processor settings need one resize, crop, mean and std per featurizer.")
        self.resize_params, self.crop_sizes = resize_params, [list(c) for c in crop_sizes]
        self.means, self.stds = [list(m) for m in means], [list(s) for s in stds]
        self.letterbox_fill = None if letterbox_fill is None else tuple(int(v) for v in letterbox_fill)

    @classmethod
    def from_preprocessor_config(cls, config: dict[str, Any]) -> PrismaticImageTransform:
        """Settings from a `preprocessor_config.json` (PrismaticImageProcessor's save_pretrained)."""
        sizes = config.get("input_sizes") or [[3, 224, 224]]
        means = config.get("means") or [[0.5, 0.5, 0.5]]
        stds = config.get("stds") or [[0.5, 0.5, 0.5]]
        interpolations = config.get("interpolations") or ["bicubic"] * len(sizes)
        strategy = config.get("image_resize_strategy", "letterbox")
        if strategy not in STRATEGIES:
            raise CheckpointError(f"preprocessor_config.json has image_resize_strategy '{strategy}'; the reference "
                                  f"supports {list(STRATEGIES)}.")
        # What PrismaticImageProcessor.__init__ derives (timm's eval transform with crop_pct 1.0) ...
        resize = [{"size": [s[-1], s[-1]] if strategy == "resize-naive" else s[-1],
                   "interpolation": PIL_MODES.get(str(i), i)} for s, i in zip(sizes, interpolations, strict=True)]
        crops = [list(s[-2:]) for s in sizes]
        # ... the letterbox fill is set in the loop, so the last featurizer's mean wins.
        fill = [int(x * 255) for x in means[-1]] if strategy == "letterbox" else None
        # ... and the saved tvf_* attributes override all of it (ImageProcessingMixin's extra kwargs).
        if "tvf_resize_params" in config:
            resize = [{"size": p["size"], "interpolation": p.get("interpolation", 3)}
                      for p in config["tvf_resize_params"]]
        if "tvf_crop_params" in config:
            crops = [list(p["output_size"]) for p in config["tvf_crop_params"]]
        if "tvf_normalize_params" in config:
            means = [p["mean"] for p in config["tvf_normalize_params"]]
            stds = [p["std"] for p in config["tvf_normalize_params"]]
        if "tvf_do_letterbox" in config:
            fill = list(config.get("tvf_letterbox_fill") or []) if config["tvf_do_letterbox"] else None
        return cls(resize, crops, means, stds, fill)

    def to_config(self) -> dict[str, Any]:
        return {"resize_params": self.resize_params, "crop_sizes": self.crop_sizes, "means": self.means,
                "stds": self.stds, "letterbox_fill": None if self.letterbox_fill is None else list(self.letterbox_fill)}

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.crop_sizes[0][0]), int(self.crop_sizes[0][1])

    def __call__(self, image: Any) -> torch.Tensor:
        """PIL RGB image -> (3 * n_featurizers, H, W) float32 (`apply_transform`)."""
        if self.letterbox_fill is not None:  # letterbox_pad_transform
            (width, height), side = image.size, max(image.size)
            horizontal, vertical = int((side - width) / 2), int((side - height) / 2)
            image = _pad(image, horizontal, vertical, horizontal, vertical, self.letterbox_fill)
        views = []
        for resize, crop, mean, std in zip(self.resize_params, self.crop_sizes, self.means, self.stds, strict=True):
            view = self._resize(image, resize["size"], int(resize["interpolation"]))
            view = self._center_crop(view, crop)
            pixels = torch.from_numpy(np.asarray(view, dtype=np.uint8).copy()).permute(2, 0, 1).float().div(255)
            mean_t, std_t = torch.tensor(mean, dtype=torch.float32), torch.tensor(std, dtype=torch.float32)
            views.append((pixels - mean_t[:, None, None]) / std_t[:, None, None])
        return torch.cat(views, dim=0)

    @staticmethod
    def _resize(image: Any, size: int | list[int], interpolation: int) -> Any:
        """torchvision `F.resize` on a PIL image: an int sizes the short side (the long one
        truncated), [h, w] both; a no-op when the size already matches."""
        width, height = image.size
        if isinstance(size, int) or len(size) == 1:
            short_target = size if isinstance(size, int) else size[0]
            short, long = (width, height) if width <= height else (height, width)
            new_short, new_long = short_target, int(short_target * long / short)
            new_w, new_h = (new_short, new_long) if width <= height else (new_long, new_short)
        else:
            new_h, new_w = int(size[0]), int(size[1])
        if (new_h, new_w) == (height, width):
            return image
        return image.resize((new_w, new_h), interpolation)

    @staticmethod
    def _center_crop(image: Any, output_size: list[int]) -> Any:
        """torchvision `F.center_crop` on a PIL image (zero-padded first when too small)."""
        crop_h, crop_w = int(output_size[0]), int(output_size[1])
        width, height = image.size
        if crop_w > width or crop_h > height:
            pads = [(crop_w - width) // 2 if crop_w > width else 0, (crop_h - height) // 2 if crop_h > height else 0,
                    (crop_w - width + 1) // 2 if crop_w > width else 0,
                    (crop_h - height + 1) // 2 if crop_h > height else 0]
            image = _pad(image, *pads, fill=0)
            width, height = image.size
            if (crop_w, crop_h) == (width, height):
                return image
        top, left = round((height - crop_h) / 2.0), round((width - crop_w) / 2.0)
        return image.crop((left, top, left + crop_w, top + crop_h))
