"""FluxVLA's names for transformers backbones, with FluxVLA's parameter names, building ours.

    QWen2_5VL         -> TransformersVLMBackbone on Qwen2.5-VL (vlm_backbone_id -> the released sizes)
    SigLIPViTBackbone -> TransformersVisionBackbone on SigLIP (vision_backbone_id -> SO400M/14 sizes)
    Qwen2LLMBackbone  -> TransformersLLMBackbone on Qwen2, embeddings resized to tokenizer_length (x64)

The sizes are those of the hub models FluxVLA's ids name (their config.json), written out
so nothing is downloaded; `vlm_config` / `vision_config` / `llm_config` override them.
"""

from __future__ import annotations

from typing import Any

from vla_core.errors import ConfigError
from vla_core.models.transformers_backbones import TransformersLLMBackbone, TransformersVisionBackbone
from vla_core.models.transformers_vlm import TransformersVLMBackbone

#: Qwen/Qwen2.5-VL-3B-Instruct's config.json (architecture fields).
QWEN2_5_VL_3B: dict[str, Any] = {
    "model_type": "qwen2_5_vl",
    "image_token_id": 151655, "video_token_id": 151656, "vision_start_token_id": 151652,
    "vision_end_token_id": 151653, "tie_word_embeddings": True,
    "text_config": {"vocab_size": 151936, "hidden_size": 2048, "intermediate_size": 11008, "num_hidden_layers": 36,
                    "num_attention_heads": 16, "num_key_value_heads": 2, "rms_norm_eps": 1e-6,
                    "max_position_embeddings": 128000, "tie_word_embeddings": True,
                    "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0,
                                        "mrope_section": [16, 24, 24]}},
    "vision_config": {"depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16,
                      "out_hidden_size": 2048, "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2,
                      "window_size": 112, "fullatt_block_indexes": [7, 15, 23, 31], "hidden_act": "silu"},
}
VLM_IDS: dict[str, dict[str, Any]] = {"qwen2_5_3b_vl_pt_224": QWEN2_5_VL_3B}

#: google/siglip-so400m-patch14-224 / -384 vision towers (the pooling head is never read: off).
_SO400M = {"hidden_size": 1152, "intermediate_size": 4304, "num_hidden_layers": 27, "num_attention_heads": 16,
           "patch_size": 14, "vision_use_head": False}
VISION_IDS: dict[str, dict[str, Any]] = {"siglip_224": {**_SO400M, "image_size": 224},
                                         "siglip_384": {**_SO400M, "image_size": 384}}

#: Qwen/Qwen2-0.5B and Qwen/Qwen2.5-7B config.json sizes (FluxVLA's "qwen2-3b" also names Qwen2-0.5B).
_QWEN2_05B = {"vocab_size": 151936, "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
              "num_attention_heads": 14, "num_key_value_heads": 2, "tie_word_embeddings": True}
_QWEN25_7B = {"vocab_size": 152064, "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
              "num_attention_heads": 28, "num_key_value_heads": 4, "tie_word_embeddings": False}
LLM_IDS: dict[str, dict[str, Any]] = {"qwen2-0.5b": _QWEN2_05B, "qwen2-3b": _QWEN2_05B,
                                      "qwen2-0.5b_causal": _QWEN2_05B, "qwen2_5-7b": _QWEN25_7B,
                                      "qwen2_5-7b_causal": _QWEN25_7B}


def _merge(base: dict[str, Any], overrides: dict[str, Any] | None) -> dict[str, Any]:
    """base updated with overrides, nested dicts merged key by key."""
    merged = dict(base)
    for key, value in (overrides or {}).items():
        merged[key] = _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) \
            else value
    return merged


def _sizes(table: dict[str, Any], key: str | None, name: str) -> dict[str, Any]:
    if key is None:
        return {}
    if key not in table:
        raise ConfigError(f"'{key}' is not one of FluxVLA's ids here: {', '.join(table)}; or set it to null and give "
                          "the sizes in the config.", name)
    return table[key]


class QWen2_5VL(TransformersVLMBackbone):
    """FluxVLA's Qwen2.5-VL backbone: TransformersVLMBackbone on a Qwen2.5-VL model.

    FluxVLA prepends the image tokens and returns the last hidden state; here the model's chat
    template places them (with its saved processor) and `select_layer` picks the layer (-1: the last).

    Args:
        vlm_backbone_id: "qwen2_5_3b_vl_pt_224" (Qwen2.5-VL-3B sizes) or null (sizes from vlm_path / vlm_config).
        vlm_config: Qwen2_5_VLConfig overrides (nested text_config / vision_config dicts merge key by key).
        vlm_path: a local Qwen2.5-VL directory (weights, config, processor); nothing is downloaded.
        select_layer: hidden state used as features (see TransformersVLMBackbone).
        image_size: [H, W], multiples of 28 (default 224).
        max_cameras: most images per sample.
        config: the resolved transformers config a checkpoint stores (leave unset).
        prompt_layout: the resolved prompt layout a checkpoint stores (leave unset).
        image_mean: per-channel mean; null: the processor's (CLIP's without one).
        image_std: per-channel std; null: the processor's (CLIP's without one).
    """

    def __init__(
        self,
        vlm_backbone_id: str | None = "qwen2_5_3b_vl_pt_224",
        vlm_config: dict[str, Any] | None = None,
        vlm_path: str | None = None,
        select_layer: int = -1,
        image_size: list[int] | None = None,
        max_cameras: int = 3,
        config: dict[str, Any] | None = None,
        prompt_layout: dict[str, Any] | None = None,
        image_mean: list[float] | None = None,
        image_std: list[float] | None = None,
    ) -> None:
        if config is None:
            base = {} if vlm_path else _sizes(VLM_IDS, vlm_backbone_id, "vlm_backbone_id")
            config = _merge(base, vlm_config)
        super().__init__(model_type="qwen2_5_vl", config=config, pretrained_name_or_path=vlm_path,
                         select_layer=select_layer, max_cameras=max_cameras, image_size=image_size,
                         image_mean=image_mean, image_std=image_std, prompt_layout=prompt_layout)
        self.vlm_backbone_id = vlm_backbone_id

    architecture_paths = ("vlm_path",)

    def resolved_parameters(self) -> dict[str, Any]:
        """The resolved config and layout under this class's parameter names; vlm_path is no longer
        needed (a checkpoint holds the weights)."""
        resolved = super().resolved_parameters()
        resolved.pop("model_type")
        resolved.pop("pretrained_name_or_path")
        return {**resolved, "vlm_path": None}


class SigLIPViTBackbone(TransformersVisionBackbone):
    """FluxVLA's SigLIP backbone: transformers' SiglipVisionModel, (B, C, H, W) -> (B, P, 1152) last hidden state.

    Args:
        vision_backbone_id: "siglip_224" or "siglip_384" (SigLIP SO400M/14 sizes) or null.
        vision_config: SiglipVisionConfig overrides.
        pretrained_cfg: FluxVLA's from_pretrained arguments; its pretrained_model_name_or_path (a local
            directory) is loaded.
    """

    def __init__(
        self,
        vision_backbone_id: str | None = "siglip_224",
        vision_config: dict[str, Any] | None = None,
        pretrained_cfg: dict[str, Any] | None = None,
    ) -> None:
        path = (pretrained_cfg or {}).get("pretrained_model_name_or_path")
        config = {} if path else _merge(_sizes(VISION_IDS, vision_backbone_id, "vision_backbone_id"), vision_config)
        super().__init__(model_type="siglip_vision_model", config=config, pretrained_name_or_path=path)
        self.vision_backbone_id = vision_backbone_id

    architecture_paths = ("pretrained_cfg",)

    def resolved_parameters(self) -> dict[str, Any]:
        """The SigLIP config it was built with, under this class's parameter names (no directory)."""
        config = super().resolved_parameters()["config"]
        return {"vision_backbone_id": None, "vision_config": config, "pretrained_cfg": None}


class Qwen2LLMBackbone(TransformersLLMBackbone):
    """FluxVLA's Qwen2 backbone: transformers' Qwen2Model, embeddings resized to `tokenizer_length`
    rounded up to a multiple of 64 (as FluxVLA does after adding its pad token).

    Args:
        llm_backbone_id: "qwen2-0.5b", "qwen2_5-7b", ... (the hub model's sizes) or null.
        llm_family: FluxVLA's family name ("qwen2"); checked.
        llm_path: a local Qwen2 directory; nothing is downloaded.
        llm_config: Qwen2Config overrides.
        llm_max_length: the tokenizer's length limit; recorded, no effect on the weights.
        pad_token_id: id of the added pad token.
        tokenizer_length: the tokenizer's size; the embedding table gets it rounded up to a multiple of 64.
    """

    def __init__(
        self,
        llm_backbone_id: str | None = "qwen2-0.5b",
        llm_family: str = "qwen2",
        llm_path: str | None = None,
        llm_config: dict[str, Any] | None = None,
        llm_max_length: int = 2048,
        pad_token_id: int = 0,
        tokenizer_length: int = 151666,
    ) -> None:
        if llm_family != "qwen2":
            raise ConfigError(f"is '{llm_family}'; Qwen2LLMBackbone builds the qwen2 family.", "llm_family")
        config = {} if llm_path else _merge(_sizes(LLM_IDS, llm_backbone_id, "llm_backbone_id"), llm_config)
        config = {**config, "pad_token_id": pad_token_id}
        super().__init__(model_type="qwen2", config=config, pretrained_name_or_path=llm_path)
        self.model.resize_token_embeddings(tokenizer_length, pad_to_multiple_of=64)
        self.llm_backbone_id, self.llm_max_length = llm_backbone_id, llm_max_length

    architecture_paths = ("llm_path",)

    def resolved_parameters(self) -> dict[str, Any]:
        """The Qwen2 config it was built with (embeddings already resized), under this class's
        parameter names (no directory)."""
        config = super().resolved_parameters()["config"]
        return {"llm_backbone_id": None, "llm_config": config, "llm_path": None}
