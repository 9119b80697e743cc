"""Architectures by name (`vlm_backbone_id`): the transformers PaliGemmaConfig fields of the
released models. A preset fixes the shapes only; weights come from `pretrained_name_or_path`.
"""

from __future__ import annotations

import copy
from typing import Any

_GEMMA_2B = {
    "model_type": "gemma",
    "hidden_size": 2048,
    "intermediate_size": 16384,
    "num_hidden_layers": 18,
    "num_attention_heads": 8,
    "num_key_value_heads": 1,
    "head_dim": 256,
    "hidden_act": "gelu_pytorch_tanh",
}
_SIGLIP_SO400M = {
    "model_type": "siglip_vision_model",
    "hidden_size": 1152,
    "intermediate_size": 4304,
    "num_hidden_layers": 27,
    "num_attention_heads": 16,
    "patch_size": 14,
    "vision_use_head": False,
}


def _paligemma(image_size: int, vocab_size: int) -> dict[str, Any]:
    return {
        "text_config": {**_GEMMA_2B, "vocab_size": vocab_size},
        "vision_config": {**_SIGLIP_SO400M, "image_size": image_size},
        "projection_dim": 2048,
        "image_token_id": 257152,
    }


PALIGEMMA_PRESETS: dict[str, dict[str, Any]] = {
    # google/paligemma-3b-pt-{224,448,896}: SigLIP So400m/14 + Gemma 2B, 257216 tokens.
    "paligemma_3b_pt_224": _paligemma(224, 257216),
    "paligemma_3b_pt_448": _paligemma(448, 257216),
    "paligemma_3b_pt_896": _paligemma(896, 257216),
    # The PaliGemma inside pi0 / pi0.5 (openpi, LeRobot, transformers' PI0): 257152 tokens.
    "pi0_paligemma_3b_224": _paligemma(224, 257152),
}


def merge_config(base: dict[str, Any], overrides: dict[str, Any] | None) -> dict[str, Any]:
    """`base` updated by `overrides`, nested dicts (text_config, vision_config) merged key by key."""
    merged = copy.deepcopy(base)
    for key, value in (overrides or {}).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_config(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged
