"""PaliGemma as a VLM backbone: SigLIP vision tower, linear projector, Gemma language model.

The three parts are transformers' own modules under transformers' names
(`vision_tower.*`, `multi_modal_projector.linear.*`, `language_model.*`), so a
PaliGemma checkpoint, or the `model.vlm.*` part of transformers' PI0, loads by a prefix
rename. The prefix layout is openpi's: every camera's image tokens, then the language
tokens; a missing camera (img_masks False) is masked out, not dropped, so shapes stay
static. Attention over the prefix is bidirectional (prefix-LM), as in PaliGemma and pi0.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoModel, PaliGemmaConfig
from transformers.models.paligemma.modeling_paligemma import PaliGemmaMultiModalProjector

from vla_core.errors import ConfigError
from vla_core.models.architecture import transformers_config_dict
from vla_core.protocols import BackboneOutput
from vla_paligemma.attention import Rotary, key_padding_mask, positions_from_mask
from vla_paligemma.presets import PALIGEMMA_PRESETS, merge_config
from vla_paligemma.weights import load_component_weights


def resolve_paligemma_config(
    vlm_backbone_id: str | None, vlm_config: dict[str, Any] | None, pretrained_name_or_path: str | None
) -> PaliGemmaConfig:
    """The architecture: a checkpoint's config.json, else the preset, then `vlm_config` on top."""
    base: dict[str, Any] = {}
    config_file = Path(pretrained_name_or_path) / "config.json" if pretrained_name_or_path else None
    if config_file is not None and config_file.is_file():
        base = json.loads(config_file.read_text())
    elif vlm_backbone_id is not None:
        if vlm_backbone_id not in PALIGEMMA_PRESETS:
            raise ConfigError(
                f"unknown PaliGemma preset '{vlm_backbone_id}'; use one of {', '.join(PALIGEMMA_PRESETS)}, "
                "or set vlm_backbone_id: null and give the architecture in vlm_config.",
                "vlm_backbone_id",
            )
        base = PALIGEMMA_PRESETS[vlm_backbone_id]
    config = PaliGemmaConfig.from_dict(merge_config(base, vlm_config))
    # PaliGemmaConfig keeps a legacy top-level vocab_size that does not follow text_config's.
    config.vocab_size = config.text_config.vocab_size
    if config.text_config.model_type != "gemma":
        raise ConfigError(
            f"text_config.model_type is '{config.text_config.model_type}'; this backbone runs PaliGemma 1 "
            "(a Gemma language model, as pi0 uses). Set vlm_config.text_config.model_type: gemma.",
            "vlm_config",
        )
    return config


def _paligemma_key(key: str) -> str | None:
    """A transformers PaliGemma checkpoint key (v5 or v4 layout) -> ours; the tied LM head is dropped."""
    if key.startswith(("lm_head.", "language_model.lm_head.")):
        return None
    key = key[len("model."):] if key.startswith("model.") else key
    if key.startswith("vision_tower.vision_model."):
        key = "vision_tower." + key[len("vision_tower.vision_model."):]
    if key.startswith("language_model.model."):
        key = "language_model." + key[len("language_model.model."):]
    return key


class PaliGemma(nn.Module):
    """PaliGemma: images and instruction tokens -> one bidirectionally attended sequence.

    Args:
        vlm_backbone_id: architecture preset: paligemma_3b_pt_224 / _448 / _896, pi0_paligemma_3b_224;
            null to start from vlm_config alone.
        vlm_config: transformers PaliGemmaConfig fields over the preset (text_config / vision_config are
            merged key by key).
        pretrained_name_or_path: a local directory written by transformers' save_pretrained (PaliGemma);
            its config.json sets the architecture.
    """

    #: Its config.json sets the architecture; checkpoints record it (resolved_parameters).
    architecture_paths = ("pretrained_name_or_path",)

    def __init__(
        self,
        vlm_backbone_id: str | None = "paligemma_3b_pt_224",
        vlm_config: dict[str, Any] | None = None,
        pretrained_name_or_path: str | None = None,
    ) -> None:
        super().__init__()
        self.config = resolve_paligemma_config(vlm_backbone_id, vlm_config, pretrained_name_or_path)
        self.vision_tower = AutoModel.from_config(self.config.vision_config)
        self.multi_modal_projector = PaliGemmaMultiModalProjector(self.config)
        self.language_model = AutoModel.from_config(self.config.text_config)
        self.hidden_size: int = self.config.text_config.hidden_size
        vision = self.config.vision_config
        self.tokens_per_image: int = (vision.image_size // vision.patch_size) ** 2
        if pretrained_name_or_path:
            load_component_weights(self, pretrained_name_or_path, _paligemma_key)

    def resolved_parameters(self) -> dict[str, Any]:
        """The PaliGemma config it was built with, so a checkpoint rebuilds it without the directory."""
        return {"vlm_backbone_id": None, "vlm_config": transformers_config_dict(self.config),
                "pretrained_name_or_path": None}

    @property
    def layers(self) -> nn.ModuleList:
        """The Gemma decoder layers (pi0 pairs them with the expert's)."""
        return self.language_model.layers

    def rope(self, positions: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """positions (B, S) long -> cos, sin (B, S, head_dim)."""
        probe = torch.empty(0, dtype=dtype, device=positions.device)
        return self.language_model.rotary_emb(probe, positions)

    def rotary(self, positions: torch.Tensor, dtype: torch.dtype) -> Rotary:
        """positions (B, S) long -> RoPE tables for our attention kernels."""
        return Rotary.from_cos_sin(*self.rope(positions, dtype))

    def embed_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """pixel_values (B', C, H, W) normalised to [-1, 1] -> image tokens (B', tokens_per_image, hidden_size)."""
        pixel_values = pixel_values.to(self.multi_modal_projector.linear.weight.dtype)
        return self.multi_modal_projector(self.vision_tower(pixel_values).last_hidden_state)

    def embed_language(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, L) long -> (B, L, hidden_size), scaled by sqrt(hidden_size) as Gemma does."""
        return self.language_model.embed_tokens(tokens)

    def embed_prefix(
        self,
        images: torch.Tensor,
        img_masks: torch.Tensor,
        lang_tokens: torch.Tensor,
        lang_masks: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """images (B, N_cam, C, H, W); img_masks (B, N_cam); lang_tokens, lang_masks (B, L)
        -> embeddings (B, N_cam * P + L, D) and pad mask (B, N_cam * P + L) bool."""
        batch, n_cam = images.shape[:2]
        image_tokens = self.embed_images(images.flatten(0, 1))
        image_tokens = image_tokens.reshape(batch, n_cam * image_tokens.shape[1], -1)
        image_mask = img_masks.bool().repeat_interleave(self.tokens_per_image, dim=1)
        text = self.embed_language(lang_tokens)
        embeds = torch.cat([image_tokens.to(text.dtype), text], dim=1)
        return embeds, torch.cat([image_mask, lang_masks.bool()], dim=1)

    def encode(self, embeds: torch.Tensor, pad_mask: torch.Tensor) -> torch.Tensor:
        """embeds (B, S, D), pad_mask (B, S) -> last hidden states (B, S, D), before the final norm."""
        rope = self.rope(positions_from_mask(pad_mask), embeds.dtype)
        mask = key_padding_mask(pad_mask).expand(-1, 1, embeds.shape[1], -1)
        x = embeds
        for layer in self.layers:  # whole-layer calls, so FSDP units and hooks see them
            x = layer(x, attention_mask=mask, position_embeddings=rope)
        return x

    def forward(
        self,
        images: torch.Tensor,
        lang_tokens: torch.Tensor,
        img_masks: torch.Tensor,
        lang_masks: torch.Tensor,
    ) -> BackboneOutput:
        """images (B, N_cam, C, H, W); lang_tokens (B, L) long; img_masks (B, N_cam) bool;
        lang_masks (B, L) bool -> BackboneOutput(features (B, N_cam * P + L, hidden_size), mask)."""
        embeds, pad_mask = self.embed_prefix(images, img_masks, lang_tokens, lang_masks)
        hidden = self.language_model.norm(self.encode(embeds, pad_mask))
        return BackboneOutput(hidden, pad_mask, None)

    def fsdp_unit_types(self) -> set[type[nn.Module]]:
        """The SigLIP encoder and Gemma decoder layers: `forward` calls each as a whole."""
        return {type(self.vision_tower.encoder.layers[0]), type(self.layers[0])}
