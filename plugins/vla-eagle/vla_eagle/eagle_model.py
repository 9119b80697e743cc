"""The Eagle 2.5 VLM: SigLIP vision tower, `mlp1` connector, causal language model.

The parts are transformers' own SiglipVisionModel and Qwen3ForCausalLM (or Qwen2 /
LLaMA), so the computation is the reference one. The module tree reproduces Isaac-GR00T's
`Eagle2_5_VLForConditionalGeneration` (`gr00t/model/backbone/eagle2_hg_model/`), so
parameter names are those of a GR00T N1.5 checkpoint under `backbone.eagle_model.`:

    vision_model.vision_model.{embeddings,encoder,post_layernorm,head}.*   SigLIP
    mlp1.{0,1,3}.*  (or mlp1.0.* with one connector layer)                  connector
    language_model.model.{embed_tokens,layers.<i>,norm}.*, language_model.lm_head.*
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from vla_core.errors import ConfigError
from vla_eagle.pixel_shuffle import pixel_shuffle, shuffle_factor


class SiglipVisionWrapper(nn.Module):
    """Holds transformers' SiglipVisionModel as `.vision_model`.

    transformers < 5 nested the SigLIP transformer one level deeper
    (`SiglipVisionModel.vision_model`), and GR00T checkpoints were saved that way
    (`eagle_model.vision_model.vision_model.encoder...`); this wrapper keeps that path.
    The attention-pooling `head` is built (the checkpoint holds it) but never run.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        from transformers import SiglipVisionConfig, SiglipVisionModel

        self.vision_model = SiglipVisionModel(SiglipVisionConfig(**config))

    def forward(self, pixel_values: torch.Tensor, select_layer: int = -1) -> torch.Tensor:
        """pixel_values (N, C, H, W) -> patch features (N, P, D_vision).

        select_layer -1 is the last layer after `post_layernorm` (Eagle's
        `last_hidden_state`); other values index the encoder's hidden states (0 = the
        patch embeddings), without the post-norm, as `hidden_states[select_layer]` does.
        """
        siglip = self.vision_model
        hidden = siglip.embeddings(pixel_values)
        layers = siglip.encoder.layers
        stop = len(layers) if select_layer == -1 else select_layer % (len(layers) + 1)
        for layer in layers[:stop]:  # later layers do not contribute, so they are not run
            hidden = layer(hidden, attention_mask=None)
            hidden = hidden[0] if isinstance(hidden, tuple) else hidden
        return siglip.post_layernorm(hidden) if select_layer == -1 else hidden


def build_mlp1(
    vision_width: int, text_width: int, layers: int, use_pixel_shuffle: bool, ratio: float
) -> nn.Sequential:
    """Eagle's connector (..., vision_width * f^2 or vision_width) -> (..., text_width).

    Two layers: LayerNorm, Linear, GELU, Linear (keys mlp1.0, mlp1.1, mlp1.3), on
    pixel-shuffled tokens. One layer: a single Linear (mlp1.0), on shuffled tokens or on
    every patch (GR00T N1.5's "1mlp_nops").
    """
    in_width = vision_width * shuffle_factor(ratio) ** 2 if use_pixel_shuffle else vision_width
    if layers == 2:
        if not use_pixel_shuffle:
            raise ConfigError(
                "is 2, which Eagle only defines on pixel-shuffled tokens; set use_pixel_shuffle: true or "
                "mlp_connector_layers: 1.",
                "mlp_connector_layers",
            )
        return nn.Sequential(
            nn.LayerNorm(in_width),
            nn.Linear(in_width, text_width),
            nn.GELU(),
            nn.Linear(text_width, text_width),
        )
    if layers == 1:
        return nn.Sequential(nn.Linear(in_width, text_width))
    raise ConfigError(f"is {layers}; Eagle's connector has 1 or 2 layers.", "mlp_connector_layers")


def build_language_model(model_type: str, config: dict[str, Any], num_layers: int) -> nn.Module:
    """A transformers causal LM (`.model` decoder + `.lm_head`) with only its first `num_layers` layers.

    Building `num_layers` layers directly equals GR00T's build-all-then-pop: the layers
    after `select_layer` never influence the features it reads.
    """
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        hf_config = AutoConfig.for_model(model_type, **{**config, "num_hidden_layers": num_layers})
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"cannot build a '{model_type}' language model from text_config ({exc}).") from None
    language_model = AutoModelForCausalLM.from_config(hf_config)
    language_model.register_load_state_dict_pre_hook(_load_tied_lm_head_once)
    return language_model


def _load_tied_lm_head_once(module: nn.Module, state_dict: dict[str, Any], prefix: str, *_: Any) -> None:
    """With tied embeddings, load the shared matrix from `embed_tokens` only.

    A GR00T checkpoint may hold both `lm_head.weight` and `model.embed_tokens.weight`
    (its loaded model does not tie them); both names point at one tensor here, and the
    one loaded last (the head) would win. The head never takes part in the features, so
    the embedding's values are kept. (With only one of the two keys, that one is loaded.)
    """
    head_key, embed_key = prefix + "lm_head.weight", prefix + "model.embed_tokens.weight"
    tied = module.get_output_embeddings().weight is module.get_input_embeddings().weight
    if tied and head_key in state_dict and embed_key in state_dict:
        state_dict[head_key] = state_dict[embed_key]


class EagleModel(nn.Module):
    """The Eagle VLM parts GR00T uses (the module `backbone.eagle_model` of a GR00T checkpoint)."""

    def __init__(
        self,
        vision_config: dict[str, Any],
        text_config: dict[str, Any],
        text_model_type: str,
        num_text_layers: int,
        use_pixel_shuffle: bool,
        downsample_ratio: float,
        mlp_connector_layers: int,
        vision_select_layer: int,
    ) -> None:
        super().__init__()
        self.vision_model = SiglipVisionWrapper(vision_config)
        vision = self.vision_model.vision_model.config
        self.language_model = build_language_model(text_model_type, text_config, num_text_layers)
        text_width = self.language_model.config.hidden_size
        self.mlp1 = build_mlp1(
            vision.hidden_size, text_width, mlp_connector_layers, use_pixel_shuffle, downsample_ratio
        )
        self.use_pixel_shuffle = use_pixel_shuffle
        self.downsample_ratio = downsample_ratio
        self.vision_select_layer = vision_select_layer
        self.image_size: int = vision.image_size
        patches = (vision.image_size // vision.patch_size) ** 2
        folded = shuffle_factor(downsample_ratio) ** 2 if use_pixel_shuffle else 1
        self.tokens_per_image = patches // folded

    def extract_feature(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """pixel_values (N, C, H, W) -> image tokens (N, tokens_per_image, text hidden size)."""
        patches = self.vision_model(pixel_values, self.vision_select_layer)
        if self.use_pixel_shuffle:
            patches = pixel_shuffle(patches, self.downsample_ratio)
        return self.mlp1(patches)

    def embed_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, L) long -> (B, L, text hidden size)."""
        return self.language_model.get_input_embeddings()(tokens)

    def language_features(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """inputs_embeds (B, S, D), attention_mask (B, S) bool -> (B, S, D).

        The output of the last kept layer after the final RMSNorm: what GR00T reads as
        `hidden_states[select_layer]` (with `select_layer` layers kept, that is the last
        entry, which transformers returns after the norm). The LM head is not run.
        """
        decoder = self.language_model.get_decoder()
        out = decoder(inputs_embeds=inputs_embeds, attention_mask=attention_mask.long())
        return out.last_hidden_state
