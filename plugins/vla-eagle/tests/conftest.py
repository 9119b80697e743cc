"""Tiny Eagle configurations shared by the vla-eagle tests (random weights, CPU, fp32)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

#: SigLIP at 28 px with 7 px patches: a 4 x 4 patch grid (16 patches, 4 after pixel shuffle).
TINY_VISION: dict[str, Any] = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "image_size": 28,
    "patch_size": 7,
}

#: A 4-layer Qwen3; the backbone keeps `select_layer` = 2 of them.
TINY_TEXT: dict[str, Any] = {
    "vocab_size": 128,
    "hidden_size": 48,
    "intermediate_size": 96,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 12,
}

IMAGE_TOKEN_ID = 127


def eagle_pixel_shuffle(patches: torch.Tensor, scale: float) -> torch.Tensor:
    """Isaac-GR00T `Eagle2_5_VLForConditionalGeneration.pixel_shuffle` with the reshapes of
    `extract_feature` around it, step for step: (N, P, C) -> (N, P * scale^2, C / scale^2)."""
    side = int(patches.shape[1] ** 0.5)
    x = patches.reshape(patches.shape[0], side, side, -1)
    n, w, h, c = x.size()
    x = x.view(n, w, int(h * scale), int(c / scale))
    x = x.permute(0, 2, 1, 3).contiguous()
    x = x.view(n, int(h * scale), int(w * scale), int(c / (scale * scale)))
    x = x.permute(0, 2, 1, 3).contiguous()
    return x.reshape(x.shape[0], -1, x.shape[-1])


def tiny_backbone_kwargs(**overrides: Any) -> dict[str, Any]:
    """EagleBackbone keyword arguments for a tiny GR00T-N1.5-shaped backbone."""
    kwargs: dict[str, Any] = {
        "preset": None,  # the tiny sizes are complete; nothing is inherited from GR00T N1.5's
        "vision_config": dict(TINY_VISION),
        "text_config": dict(TINY_TEXT),
        "select_layer": 2,
        "image_token_id": IMAGE_TOKEN_ID,
    }
    kwargs.update(overrides)
    return kwargs


@pytest.fixture
def make_backbone():
    """make_backbone(**overrides) -> a seeded tiny EagleBackbone in eval mode."""
    from vla_eagle.eagle_backbone import EagleBackbone

    def make(seed: int = 0, **overrides: Any) -> EagleBackbone:
        torch.manual_seed(seed)
        return EagleBackbone(**tiny_backbone_kwargs(**overrides)).eval()

    return make


@pytest.fixture
def tiny_kwargs():
    """tiny_kwargs(**overrides) -> EagleBackbone keyword arguments (for specs and references)."""
    return tiny_backbone_kwargs


@pytest.fixture
def reference_pixel_shuffle():
    """Eagle's pixel shuffle as the reference writes it (not our implementation)."""
    return eagle_pixel_shuffle
