"""LayerScale with its parameter named `scale_factor`, as in OpenVLA's checkpoints.

timm's `LayerScale` stores its per-channel scale as `gamma`. Older transformers renamed
any parameter containing "gamma" when loading, so OpenVLA's Hugging Face port renamed it
to `scale_factor` (keys like `vision_backbone.featurizer.blocks.0.ls1.scale_factor`).
Instead of monkey-patching timm's module as the reference does, we swap in this module,
which computes the same `x * scale_factor`.
"""

from __future__ import annotations

import torch
from torch import nn


class ScaleFactorLayerScale(nn.Module):
    """Per-channel scaling (..., dim) -> (..., dim) with the weight named `scale_factor`."""

    def __init__(self, scale_factor: torch.Tensor, inplace: bool = False) -> None:
        super().__init__()
        self.scale_factor = nn.Parameter(scale_factor.detach().clone())
        self.inplace = inplace

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul_(self.scale_factor) if self.inplace else x * self.scale_factor


def rename_layer_scales(module: nn.Module) -> int:
    """Replace every timm `LayerScale` inside `module` by a `ScaleFactorLayerScale`
    holding the same values; returns how many were replaced."""
    from timm.layers import LayerScale

    replaced = 0
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, LayerScale):
                setattr(parent, name, ScaleFactorLayerScale(child.gamma, inplace=child.inplace))
                replaced += 1
    return replaced
