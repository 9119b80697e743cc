"""Backbones that are transformers' own models (SigLIP, Dinov2, ViT; LLaMA, Qwen2, Gemma, ...).

The architecture comes from transformers (never remote code), configured by
`model_type` + `config` overrides, so the computation is the reference one. Weights come
from `pretrained_name_or_path`, a local directory written by `save_pretrained`; nothing
is downloaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from vla_core.errors import ConfigError
from vla_core.models.architecture import transformers_config_dict
from vla_core.protocols import BackboneOutput


def _build_transformers_model(model_type: str, config: dict[str, Any] | None,
                              pretrained_name_or_path: str | None) -> Any:
    from transformers import AutoConfig, AutoModel

    if config is None and not pretrained_name_or_path:
        # transformers' defaults for a model type are its full-size model (qwen2: a 7B-sized
        # config, 2.5 GB for the embeddings alone): never built unless asked for.
        raise ConfigError(
            f"is missing: give the architecture (config: {{hidden_size: ..., num_hidden_layers: ...}}) or "
            f"pretrained_name_or_path (a local model directory). To build transformers' default '{model_type}' "
            "(its full-size model) on purpose, set config: {}.",
            "config",
        )
    config = dict(config or {})
    config.pop("model_type", None)  # a recorded config carries it; the model_type argument decides
    if pretrained_name_or_path:
        path = Path(pretrained_name_or_path)
        if not path.is_dir():
            raise ConfigError(
                f"pretrained_name_or_path '{path}' is not a local directory. Nothing is downloaded at run "
                "time: download the model once (e.g. `hf download ...`) and point to that directory."
            )
        # fp32 like every other part (and like the rebuild from the recorded config): the engine's
        # precision setting decides the compute dtype, not the dtype the directory was saved in.
        return AutoModel.from_pretrained(str(path), local_files_only=True, dtype=torch.float32, **config)
    try:
        hf_config = AutoConfig.for_model(model_type, **config)
    except ValueError as exc:
        raise ConfigError(f"model_type '{model_type}' is not a transformers model type ({exc}).") from None
    return AutoModel.from_config(hf_config)


def _resolved(model: Any) -> dict[str, Any]:
    """A transformers model's architecture as this module's constructor arguments."""
    return {"model_type": model.config.model_type, "config": transformers_config_dict(model.config),
            "pretrained_name_or_path": None}


class TransformersVisionBackbone(nn.Module):
    """An image encoder from transformers: (B, C, H, W) -> patch features (B, P, embed_dim).

    Vision transformers give their token sequence; convolutional nets (ResNet, ConvNeXt)
    give their (B, C, h, w) feature map as h * w tokens of width C (row-major).

    Args:
        model_type: transformers model type, e.g. "siglip_vision_model", "dinov2", "vit", "resnet".
        config: the transformers config (hidden_size, num_hidden_layers, image_size, patch_size, ...), or
            overrides on the directory's; required without a directory ({} builds transformers' full-size
            default). For SigLIP set `vision_use_head: false`: its pooling head computes a vector we never read.
            A checkpoint records the complete config here.
        pretrained_name_or_path: local directory with a saved model; its config wins over `config`.
        feature_layer: which hidden state to return; -1 is the last, -2 the penultimate (LLaVA).
    """

    #: Its architecture comes from this directory when given; checkpoints record it (resolved_parameters).
    architecture_paths = ("pretrained_name_or_path",)

    def __init__(
        self,
        model_type: str = "siglip_vision_model",
        config: dict[str, Any] | None = None,
        pretrained_name_or_path: str | None = None,
        feature_layer: int = -1,
    ) -> None:
        super().__init__()
        self.model = _build_transformers_model(model_type, config, pretrained_name_or_path)
        hf_config = self.model.config
        width = getattr(hf_config, "hidden_size", None)
        if width is None:  # conv nets list one width per stage; hidden_states[i] has hidden_sizes[i - 1]
            width = list(hf_config.hidden_sizes)[feature_layer]
        self.embed_dim: int = int(width)
        self.feature_layer = feature_layer

    def resolved_parameters(self) -> dict[str, Any]:
        """The transformers config it was built with, so a checkpoint rebuilds it without the directory."""
        return _resolved(self.model)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, C, H, W) normalised -> (B, P, embed_dim)."""
        if self.feature_layer == -1:
            features = self.model(pixel_values=images).last_hidden_state
        else:
            features = self.model(pixel_values=images, output_hidden_states=True).hidden_states[self.feature_layer]
        if features.ndim == 4:  # a conv feature map (B, C, h, w) -> (B, h * w, C)
            features = features.flatten(2).transpose(1, 2)
        return features


class TransformersLLMBackbone(nn.Module):
    """A decoder-only language model from transformers (the base model, no LM head).

    Args:
        model_type: transformers model type, e.g. "qwen2", "llama", "gemma".
        config: the transformers config (vocab_size, hidden_size, num_hidden_layers, ...), or overrides on
            the directory's; required without a directory ({} builds transformers' full-size default). A
            checkpoint records the complete config here.
        pretrained_name_or_path: local directory with a saved model; its config wins over `config`.
    """

    #: Its architecture comes from this directory when given; checkpoints record it (resolved_parameters).
    architecture_paths = ("pretrained_name_or_path",)

    def __init__(
        self,
        model_type: str = "qwen2",
        config: dict[str, Any] | None = None,
        pretrained_name_or_path: str | None = None,
    ) -> None:
        super().__init__()
        self.model = _build_transformers_model(model_type, config, pretrained_name_or_path)
        self.hidden_size: int = self.model.config.hidden_size

    def resolved_parameters(self) -> dict[str, Any]:
        """The transformers config it was built with, so a checkpoint rebuilds it without the directory."""
        return _resolved(self.model)

    def embed_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, L) long -> (B, L, hidden_size)."""
        return self.model.get_input_embeddings()(tokens)

    def forward(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> BackboneOutput:
        """inputs_embeds (B, S, hidden_size), attention_mask (B, S) bool -> features (B, S, hidden_size)."""
        # No KV cache in a plain forward: it costs memory and breaks recomputation under
        # activation checkpointing.
        out = self.model(inputs_embeds=inputs_embeds, attention_mask=attention_mask.long(), use_cache=False)
        return BackboneOutput(out.last_hidden_state, attention_mask.bool(), None)
