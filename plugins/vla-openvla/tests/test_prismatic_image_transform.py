"""`PrismaticImageTransform` equals `PrismaticImageProcessor.apply_transform` (openvla
`prismatic/extern/hf/processing_prismatic.py`), written here with torchvision as the reference calls it,
for every resize strategy and for frames of odd sizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from vla_openvla.prismatic_image_transform import PrismaticImageTransform

MEANS = [[0.485, 0.456, 0.406], [0.5, 0.5, 0.5]]
STDS = [[0.229, 0.224, 0.225], [0.5, 0.5, 0.5]]


def reference_apply_transform(image, strategy: str, size: int) -> torch.Tensor:
    """PrismaticImageProcessor.__init__ (timm eval transform, crop_pct 1.0) + apply_transform."""
    import torchvision.transforms.functional as TVF
    from torchvision.transforms import InterpolationMode

    if strategy == "letterbox":  # letterbox_pad_transform with the last featurizer's mean as fill
        (w, h), max_wh = image.size, max(image.size)
        horizontal_pad, vertical_pad = int((max_wh - w) / 2), int((max_wh - h) / 2)
        fill = tuple(int(x * 255) for x in MEANS[-1])
        image = TVF.pad(image, (horizontal_pad, vertical_pad, horizontal_pad, vertical_pad), fill=fill,
                        padding_mode="constant")
    views = []
    for mean, std in zip(MEANS, STDS, strict=True):
        resize_size = (size, size) if strategy == "resize-naive" else size
        view = TVF.resize(image, resize_size, interpolation=InterpolationMode.BICUBIC, max_size=None, antialias=True)
        view = TVF.center_crop(view, (size, size))
        views.append(TVF.normalize(TVF.to_tensor(view), mean=mean, std=std))
    return torch.vstack(views)


@pytest.mark.parametrize("strategy", ["resize-naive", "resize-crop", "letterbox"])
@pytest.mark.parametrize("shape", [(48, 64), (65, 37), (32, 32)])
def test_transform_equals_prismatic_image_processor(strategy, shape):
    from PIL import Image

    frame = np.random.default_rng(sum(shape)).integers(0, 256, (*shape, 3), dtype=np.uint8)
    image = Image.fromarray(frame).convert("RGB")
    config = {"image_resize_strategy": strategy, "input_sizes": [[3, 28, 28]] * 2,
              "interpolations": ["bicubic"] * 2, "means": MEANS, "stds": STDS}
    got = PrismaticImageTransform.from_preprocessor_config(config)(image)
    assert got.shape == (6, 28, 28)
    torch.testing.assert_close(got, reference_apply_transform(image, strategy, 28), rtol=0, atol=0)


def test_saved_tvf_params_override_the_derived_ones():
    """ImageProcessingMixin sets the saved tvf_* attributes after __init__: they are what runs."""
    config = {"image_resize_strategy": "letterbox", "input_sizes": [[3, 28, 28]] * 2, "means": MEANS, "stds": STDS,
              "tvf_resize_params": [{"size": [20, 30], "interpolation": 2}] * 2,
              "tvf_crop_params": [{"output_size": [16, 16]}] * 2,
              "tvf_normalize_params": [{"mean": [0.1, 0.2, 0.3], "std": [0.5, 0.5, 0.5]}] * 2,
              "tvf_do_letterbox": False, "tvf_letterbox_fill": None}
    transform = PrismaticImageTransform.from_preprocessor_config(config)
    assert transform.letterbox_fill is None and transform.image_size == (16, 16)
    assert transform.resize_params[0] == {"size": [20, 30], "interpolation": 2}
    assert transform.means[0] == [0.1, 0.2, 0.3]
