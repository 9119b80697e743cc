"""EagleBackbone: GR00T N1.5's vision-language backbone.

The computation of Isaac-GR00T's `EagleBackbone.forward_eagle` (gr00t/model/backbone/
eagle_backbone.py) on `Eagle2_5_VLForConditionalGeneration.forward`:

    images -> SigLIP (last layer, post-norm) -> [pixel shuffle] -> mlp1   image tokens
    lang_tokens -> Qwen3 embeddings; image tokens replace the placeholders
    -> the first `select_layer` Qwen3 layers -> final RMSNorm -> eagle_linear   features

Parameter names follow a GR00T N1.5 checkpoint under `backbone.` (`eagle_model.*`,
`eagle_linear.*`), so `name_mapping: {vlm_backbone: backbone, vla_head: action_head}`
loads one into LlavaVLA + EagleBackbone + FlowMatchingHead.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from vla_core.errors import ConfigError, DataError
from vla_core.models.packed_linear import packed_linears
from vla_core.protocols import BackboneOutput
from vla_eagle.eagle_model import EagleModel
from vla_eagle.image_tokens import prepend_image_tokens, scatter_into_placeholders
from vla_eagle.presets import (
    GROOT_N15_IMAGE_TOKEN_ID,
    GROOT_N15_SELECT_LAYER,
    configs_from_directory,
    resolve_configs,
)


class EagleBackbone(nn.Module):
    """The Eagle 2.5 VLM as GR00T N1.5 uses it: images + prompt -> (B, S, hidden_size) features.

    The defaults build the released GR00T N1.5 backbone (SigLIP-so400m/14 at 224 px, one
    Linear connector on all 256 patches, Qwen3-1.7B cut to 12 layers, no eagle_linear);
    `vision_config` / `text_config` override the preset's sizes (e.g. for a tiny model).

    Args:
        preset: base sizes of the vision tower and language model ("groot_n15"); null starts
            from transformers' defaults (then give complete configs).
        vision_config: transformers SiglipVisionConfig overrides (hidden_size, num_hidden_layers,
            image_size, patch_size, ...), applied on top of the preset.
        text_config: language-model config overrides (vocab_size, hidden_size, num_hidden_layers =
            the full depth, ...), applied on top of the preset.
        text_model_type: transformers model type of the language model: "qwen3" (GR00T N1.5),
            "qwen2" or "llama".
        select_layer: how many language-model layers to keep; the features are the output of the
            last kept one, after the final norm (GR00T N1.5: 12).
        project_to_dim: width of `eagle_linear`, a Linear on the features; null keeps the language
            model's width (GR00T N1.5 release: null; Isaac-GR00T's class default: 1536).
        use_pixel_shuffle: fold each 2x2 block of patches into one token before mlp1 (Eagle 2.5's
            default; GR00T N1.5: false).
        downsample_ratio: pixel-shuffle ratio; 0.5 folds 2x2 blocks.
        mlp_connector_layers: 2 = LayerNorm, Linear, GELU, Linear (needs pixel shuffle); 1 = one
            Linear (GR00T N1.5).
        vision_select_layer: SigLIP layer whose output is used; -1 = the last, after
            post_layernorm (GR00T N1.5).
        image_token_id: the prompt's image placeholder token (`<IMG_CONTEXT>`; 151669 in GR00T
            N1.5's tokenizer).
        image_token_placement: "placeholders" fills the prompt's image tokens (Eagle); "prepend"
            puts image tokens before a prompt without them; "auto" picks by whether the batch
            holds the placeholder id.
        tune_llm: train the language model; when false it is frozen and kept in eval mode
            (GR00T N1.5: false).
        tune_visual: train the vision tower and mlp1; when false they are frozen and kept in eval
            mode (GR00T N1.5: true).
        vlm_path: FluxVLA's Eagle 2.5 model directory; its config.json's vision_config / text_config
            (the architecture, as FluxVLA reads it) replace the preset's, under vision_config /
            text_config. No weights are read from it (load them with pretrained_name_or_path).
        prepack_weights: on CPU with grad disabled (inference, e.g. under a VLA's predict_action),
            forward runs every large linear layer (SigLIP, mlp1, the language model, eagle_linear) through
            oneDNN with its weight packed once and cached (2x faster products in fp32 than torch's default
            here, about even in bf16); costs a second copy of those weights in memory. No effect on CUDA or
            in training.
    """

    #: Its config.json gives the vision and text configs; checkpoints record them (resolved_parameters).
    architecture_paths = ("vlm_path",)

    def __init__(
        self,
        preset: Literal["groot_n15"] | None = "groot_n15",
        vision_config: dict[str, Any] | None = None,
        text_config: dict[str, Any] | None = None,
        text_model_type: Literal["qwen3", "qwen2", "llama"] = "qwen3",
        select_layer: int = GROOT_N15_SELECT_LAYER,
        project_to_dim: int | None = None,
        use_pixel_shuffle: bool = False,
        downsample_ratio: float = 0.5,
        mlp_connector_layers: int = 1,
        vision_select_layer: int = -1,
        image_token_id: int = GROOT_N15_IMAGE_TOKEN_ID,
        image_token_placement: Literal["auto", "placeholders", "prepend"] = "auto",
        tune_llm: bool = True,
        tune_visual: bool = True,
        prepack_weights: bool = True,
        vlm_path: str | None = None,
    ) -> None:
        super().__init__()
        if vlm_path is not None:
            vision_config, text_config = configs_from_directory(vlm_path, vision_config, text_config)
        vision, text = resolve_configs(preset, vision_config, text_config)
        self._configs = (vision, text)
        full_depth = text.get("num_hidden_layers", select_layer)
        if not 1 <= select_layer <= full_depth:
            raise ConfigError(
                f"is {select_layer}; it counts the language-model layers to keep, so it must be between 1 "
                f"and the model's {full_depth} layers (GR00T N1.5 keeps 12).",
                "select_layer",
            )
        self.eagle_model = EagleModel(
            vision, text, text_model_type, select_layer, use_pixel_shuffle, downsample_ratio,
            mlp_connector_layers, vision_select_layer,
        )
        text_width: int = self.eagle_model.language_model.config.hidden_size
        vocab_size: int = self.eagle_model.language_model.config.vocab_size
        if image_token_placement != "prepend" and not 0 <= image_token_id < vocab_size:
            raise ConfigError(
                f"is {image_token_id}, outside the vocabulary (size {vocab_size}); set the tokenizer's image "
                "placeholder id, or image_token_placement: prepend for prompts without placeholders.",
                "image_token_id",
            )
        self.eagle_linear: nn.Module = (
            nn.Identity() if project_to_dim is None else nn.Linear(text_width, project_to_dim)
        )
        self.hidden_size: int = project_to_dim or text_width
        self.select_layer = select_layer
        self.image_token_id = image_token_id
        self.image_token_placement = image_token_placement
        self.tokens_per_image: int = self.eagle_model.tokens_per_image
        self.tune_llm, self.tune_visual = tune_llm, tune_visual
        self.prepack_weights = prepack_weights
        self.eagle_model.language_model.requires_grad_(tune_llm)
        self.eagle_model.vision_model.requires_grad_(tune_visual)
        self.eagle_model.mlp1.requires_grad_(tune_visual)

    def resolved_parameters(self) -> dict[str, Any]:
        """The complete vision and text configs it was built with (no preset, no directory), so a
        checkpoint rebuilds it alone."""
        vision, text = self._configs
        return {"preset": None, "vision_config": dict(vision), "text_config": dict(text), "vlm_path": None}

    def train(self, mode: bool = True) -> EagleBackbone:
        """Like nn.Module.train, but parts that are not tuned stay in eval mode (dropout off), as
        GR00T's `set_frozen_modules_to_eval_mode` does."""
        super().train(mode)
        if mode and not self.tune_llm:
            self.eagle_model.language_model.eval()
        if mode and not self.tune_visual:
            self.eagle_model.vision_model.eval()
            self.eagle_model.mlp1.eval()
        return self

    def _check_images(self, images: torch.Tensor) -> None:
        size = self.eagle_model.image_size
        if images.ndim != 5 or tuple(images.shape[-2:]) != (size, size):
            raise DataError(
                f"EagleBackbone expects images (B, N_cam, C, {size}, {size}), got {tuple(images.shape)}. "
                f"Resize the cameras to {size}x{size} in the processor (SigLIP's position embeddings "
                "are fixed)."
            )

    def _uses_placeholders(self, lang_tokens: torch.Tensor) -> bool:
        if self.image_token_placement == "auto":
            return bool((lang_tokens == self.image_token_id).any())
        return self.image_token_placement == "placeholders"

    def forward(
        self,
        images: torch.Tensor,
        lang_tokens: torch.Tensor,
        img_masks: torch.Tensor,
        lang_masks: torch.Tensor,
    ) -> BackboneOutput:
        """images (B, N_cam, C, H, W) normalised; lang_tokens (B, L) long; img_masks (B, N_cam)
        bool; lang_masks (B, L) bool -> BackboneOutput(features (B, S, hidden_size), mask (B, S)).

        With placeholders S = L and the mask is `lang_masks`; with prepended images
        S = N_cam * tokens_per_image + L. With prepack_weights and grad disabled, the linear
        layers run through packed oneDNN kernels on CPU (the same numbers to float rounding).
        """
        with packed_linears(self, enabled=self.prepack_weights and not torch.is_grad_enabled()):
            return self._forward(images, lang_tokens, img_masks, lang_masks)

    def _forward(
        self,
        images: torch.Tensor,
        lang_tokens: torch.Tensor,
        img_masks: torch.Tensor,
        lang_masks: torch.Tensor,
    ) -> BackboneOutput:
        """forward's body (see there)."""
        self._check_images(images)
        text_embeds = self.eagle_model.embed_tokens(lang_tokens)
        if self._uses_placeholders(lang_tokens):
            valid = img_masks.bool()
            # Only real images are encoded, as Eagle's processor only sends those.
            image_tokens = self.eagle_model.extract_feature(images[valid])
            embeds = scatter_into_placeholders(
                text_embeds, lang_tokens, image_tokens, self.image_token_id, valid.sum(dim=1)
            )
            mask = lang_masks.bool()
        else:
            image_tokens = self.eagle_model.extract_feature(images.flatten(0, 1))
            embeds, mask = prepend_image_tokens(text_embeds, lang_masks, image_tokens, img_masks)
        features = self.eagle_model.language_features(embeds, mask)
        return BackboneOutput(self.eagle_linear(features), mask, None)
