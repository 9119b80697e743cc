"""Sizes of the Eagle 2.5 VLM inside the released GR00T N1.5 (nvidia/GR00T-N1.5-3B).

Sources (read, not copied): the checkpoint's `config.json` (`backbone_cfg`: eagle_path
"...eagle_er-qwen3_1_7B-Siglip2_400M_..._1mlp_nops", select_layer 12, project_to_dim null)
and the Eagle config it names (`vision_config`, `text_config`; select_layer -1,
use_pixel_shuffle false, mlp_connector_layers 1, i.e. "1mlp_nops"), cross-checked with
the checkpoint's tensor shapes (`backbone.eagle_model.mlp1.0.weight` is [2048, 1152]).
The image context token `<IMG_CONTEXT>` is id 151669 in its Qwen3 tokenizer.

Plain dicts only: this module is imported to validate configs and must not import torch.
"""

from __future__ import annotations

from typing import Any

#: SigLIP-so400m/14 at 224 px (Siglip2 weights, built as transformers' SiglipVisionModel).
GROOT_N15_VISION_CONFIG: dict[str, Any] = {
    "hidden_size": 1152,
    "intermediate_size": 4304,
    "num_hidden_layers": 27,
    "num_attention_heads": 16,
    "num_channels": 3,
    "image_size": 224,
    "patch_size": 14,
    "hidden_act": "gelu_pytorch_tanh",
    "layer_norm_eps": 1e-6,
    "attention_dropout": 0.0,
}

#: Qwen3-1.7B (28 layers; GR00T N1.5 keeps the first 12).
GROOT_N15_TEXT_CONFIG: dict[str, Any] = {
    "vocab_size": 151680,
    "hidden_size": 2048,
    "intermediate_size": 6144,
    "num_hidden_layers": 28,
    "num_attention_heads": 16,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "hidden_act": "silu",
    "max_position_embeddings": 40960,
    "rms_norm_eps": 1e-6,
    "rope_theta": 1000000.0,
    "attention_bias": False,
    "attention_dropout": 0.0,
    "tie_word_embeddings": True,
    "use_sliding_window": False,
}

GROOT_N15_IMAGE_TOKEN_ID = 151669
GROOT_N15_SELECT_LAYER = 12

PRESETS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "groot_n15": (GROOT_N15_VISION_CONFIG, GROOT_N15_TEXT_CONFIG),
}


def resolve_configs(
    preset: str | None, vision_config: dict[str, Any] | None, text_config: dict[str, Any] | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(vision, text) transformers config kwargs: the preset's, updated with the overrides."""
    base_vision, base_text = PRESETS[preset] if preset else ({}, {})
    return {**base_vision, **(vision_config or {})}, {**base_text, **(text_config or {})}


#: Keys of an Eagle config.json that describe the runtime, not the architecture.
_NOT_ARCHITECTURE = ("architectures", "auto_map", "transformers_version", "torch_dtype", "dtype", "_name_or_path",
                     "model_type", "_attn_implementation_autoset")


def configs_from_directory(
    path: str, vision_config: dict[str, Any] | None, text_config: dict[str, Any] | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """FluxVLA's `vlm_path`: the Eagle directory's config.json gives the vision and text
    configs (the explicit overrides still win)."""
    import json
    from pathlib import Path

    from vla_core.errors import ConfigError

    config_file = Path(path) / "config.json"
    if not config_file.is_file():
        raise ConfigError(f"'{path}' has no config.json; point vlm_path to an Eagle 2.5 model directory, or set it "
                          "to null to use the preset (e.g. --set model.vlm_backbone.vlm_path=null).", "vlm_path")
    saved = json.loads(config_file.read_text())
    vision = {k: v for k, v in saved.get("vision_config", {}).items() if k not in _NOT_ARCHITECTURE}
    text = {k: v for k, v in saved.get("text_config", {}).items() if k not in _NOT_ARCHITECTURE}
    return {**vision, **(vision_config or {})}, {**text, **(text_config or {})}
