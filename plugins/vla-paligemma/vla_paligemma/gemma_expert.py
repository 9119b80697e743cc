"""GemmaLLMBackbone: the pi0 action expert, a Gemma decoder (Gemma 300M shape by default).

The parameter names are transformers' `GemmaModel` ones (`layers.N.self_attn.q_proj`,
`layers.N.mlp.gate_proj`, `norm`, optionally `embed_tokens`), so transformers' PI0 `dit`
and openpi's `gemma_expert.model` load by a prefix rename. With `adarms_cond_dim` set
every RMSNorm becomes adaptive (pi0.5): `layers.N.input_layernorm.dense`, as in openpi.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import GemmaConfig
from transformers.models.gemma.modeling_gemma import (
    GemmaAttention,
    GemmaMLP,
    GemmaRMSNorm,
    GemmaRotaryEmbedding,
    GemmaTextScaledWordEmbedding,
)

from vla_core.errors import ConfigError
from vla_core.protocols import BackboneOutput
from vla_paligemma.adarms import AdaptiveRMSNorm, normalize
from vla_paligemma.attention import Rotary, grouped_attention, positions_from_mask
from vla_paligemma.gemma_layers import attention_inputs, attention_output
from vla_paligemma.weights import load_component_weights


def rms_norm(config: GemmaConfig, cond_dim: int | None) -> nn.Module:
    if cond_dim:
        return AdaptiveRMSNorm(config.hidden_size, cond_dim, eps=config.rms_norm_eps)
    return GemmaRMSNorm(config.hidden_size, eps=config.rms_norm_eps)


class GemmaExpertLayer(nn.Module):
    """A Gemma decoder layer whose norms may be adaptive (pi0.5)."""

    def __init__(self, config: GemmaConfig, layer_idx: int, adarms_cond_dim: int | None = None) -> None:
        super().__init__()
        self.self_attn = GemmaAttention(config, layer_idx)  # holds q/k/v/o_proj; we run the attention
        self.mlp = GemmaMLP(config)
        self.input_layernorm = rms_norm(config, adarms_cond_dim)
        self.post_attention_layernorm = rms_norm(config, adarms_cond_dim)

    def forward(
        self, x: torch.Tensor, rotary: Rotary, mask: torch.Tensor, cond: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x (B, S, D); rotary tables at the positions; mask (B, 1, S, S) bool; cond (B, C) -> (B, S, D)."""
        q, k, v, gate = attention_inputs(self, x, rotary, cond)
        return attention_output(self, x, grouped_attention(q, k, v, mask), gate, cond)


class GemmaLLMBackbone(nn.Module):
    """A Gemma decoder used as pi0's action expert (or as a plain LLM backbone).

    Args:
        hidden_size: width of the residual stream (1024 in pi0's Gemma 300M expert).
        intermediate_size: width of the gated MLP.
        num_hidden_layers: decoder layers; pi0 needs as many as the VLM's language model.
        num_attention_heads: query heads; pi0 needs the VLM's count.
        num_key_value_heads: key/value heads (1: multi-query, as in Gemma 2B / 300M).
        head_dim: width of one head; pi0 needs the VLM's head_dim.
        vocab_size: rows of the token embedding table; 0 for none (openpi's expert has none,
            transformers' PI0 keeps one).
        rms_norm_eps: epsilon of the RMSNorms.
        rope_theta: RoPE base.
        hidden_act: MLP activation (transformers name).
        adarms_cond_dim: width of the conditioning vector for adaptive RMSNorm (pi0.5); None for plain RMSNorm.
        causal: whether `forward` (stand-alone use) attends causally; pi0 builds its own masks.
        pretrained_name_or_path: a local directory or .safetensors file with Gemma weights (keys as ours,
            or under `model.`).
        llm_backbone_id: FluxVLA's model id ("gemma-2b_causal"); there it picks the transformers class and
            a hub id, while the sizes come from its llm_config / llm_path. Here the sizes are the arguments
            above; the id is checked to name a Gemma model.
        llm_max_length: FluxVLA's tokenizer length limit; recorded, no effect on the weights.
    """

    def __init__(
        self,
        hidden_size: int = 1024,
        intermediate_size: int = 4096,
        num_hidden_layers: int = 18,
        num_attention_heads: int = 8,
        num_key_value_heads: int = 1,
        head_dim: int = 256,
        vocab_size: int = 0,
        rms_norm_eps: float = 1e-6,
        rope_theta: float = 10000.0,
        hidden_act: str = "gelu_pytorch_tanh",
        adarms_cond_dim: int | None = None,
        causal: bool = True,
        pretrained_name_or_path: str | None = None,
        llm_backbone_id: str | None = None,
        llm_max_length: int = 2048,
    ) -> None:
        super().__init__()
        if llm_backbone_id is not None and not llm_backbone_id.startswith("gemma"):
            raise ConfigError(f"is '{llm_backbone_id}', not a Gemma model id (FluxVLA's ids: gemma-2b_causal); "
                              "GemmaLLMBackbone builds Gemma decoders only.", "llm_backbone_id")
        # FluxVLA's ids pick the transformers class (Gemma) and a hub id to read the sizes from; the
        # sizes here are given by the arguments above (pi0's Gemma 300M expert by default).
        self.llm_backbone_id, self.llm_max_length = llm_backbone_id, llm_max_length
        self.config = GemmaConfig(
            hidden_size=hidden_size,
            intermediate_size=intermediate_size,
            num_hidden_layers=num_hidden_layers,
            num_attention_heads=num_attention_heads,
            num_key_value_heads=num_key_value_heads,
            head_dim=head_dim,
            vocab_size=max(vocab_size, 1),
            # Without an embedding table there are no special tokens to validate against the vocabulary.
            **({} if vocab_size > 0 else {"pad_token_id": None, "bos_token_id": None, "eos_token_id": None}),
            rms_norm_eps=rms_norm_eps,
            rope_parameters={"rope_type": "default", "rope_theta": rope_theta},
            hidden_act=hidden_act,
        )
        self.hidden_size = hidden_size
        self.adarms_cond_dim = adarms_cond_dim
        self.causal = causal
        self.embed_tokens: nn.Module | None = None
        if vocab_size > 0:
            self.embed_tokens = GemmaTextScaledWordEmbedding(
                vocab_size, hidden_size, self.config.pad_token_id, embed_scale=hidden_size**0.5
            )
        self.layers = nn.ModuleList(
            GemmaExpertLayer(self.config, i, adarms_cond_dim) for i in range(num_hidden_layers)
        )
        self.norm = rms_norm(self.config, adarms_cond_dim)
        self.rotary_emb = GemmaRotaryEmbedding(self.config)
        self.reset_parameters()
        if pretrained_name_or_path:
            load_component_weights(self, pretrained_name_or_path, _strip_gemma_prefix)

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """transformers' Gemma initialisation: N(0, 0.02) weights, zero biases; adaRMS keeps its own."""
        std = self.config.initializer_range
        adaptive = {id(m.dense) for m in self.modules() if isinstance(m, AdaptiveRMSNorm)}
        for module in self.modules():
            if id(module) in adaptive:
                continue
            if isinstance(module, nn.Linear):
                module.weight.normal_(0.0, std)
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, nn.Embedding):
                module.weight.normal_(0.0, std)

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def rope(self, positions: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """positions (B, S) long -> cos, sin (B, S, head_dim)."""
        probe = torch.empty(0, dtype=dtype, device=positions.device)
        return self.rotary_emb(probe, positions)

    def rotary(self, positions: torch.Tensor, dtype: torch.dtype) -> Rotary:
        """positions (B, S) long -> RoPE tables for our attention kernels."""
        return Rotary.from_cos_sin(*self.rope(positions, dtype))

    def final_norm(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, S, D) -> the last RMSNorm (adaptive with cond for pi0.5)."""
        return normalize(self.norm, x, cond)[0]

    def forward(
        self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor, cond: torch.Tensor | None = None
    ) -> BackboneOutput:
        """inputs_embeds (B, S, hidden_size); attention_mask (B, S) bool; cond (B, adarms_cond_dim)
        for adaptive norms -> BackboneOutput(features (B, S, hidden_size), mask (B, S))."""
        valid = attention_mask.bool()
        seq = inputs_embeds.shape[1]
        mask = valid[:, None, None, :].expand(-1, 1, seq, seq)
        if self.causal:
            mask = mask & torch.ones(seq, seq, dtype=torch.bool, device=valid.device).tril()
        # A query always sees itself, so a fully padded row (left padding) stays finite.
        mask = mask | torch.eye(seq, dtype=torch.bool, device=valid.device)
        rotary = self.rotary(positions_from_mask(valid).clamp(min=0), inputs_embeds.dtype)
        x = inputs_embeds
        for layer in self.layers:
            x = layer(x, rotary, mask, cond)
        return BackboneOutput(self.final_norm(x, cond), valid, None)

    def fsdp_unit_types(self) -> set[type[nn.Module]]:
        return {GemmaExpertLayer}


def _strip_gemma_prefix(key: str) -> str | None:
    """transformers' GemmaModel / GemmaForCausalLM keys -> ours (the LM head is not part of the expert)."""
    if key.startswith("lm_head."):
        return None
    return key[len("model."):] if key.startswith("model.") else key


def expert_spec_from_gemma_config(config: dict[str, Any]) -> dict[str, Any]:
    """A GemmaLLMBackbone spec with the architecture of a transformers Gemma config dict."""
    rope = config.get("rope_parameters") or {}
    return {
        "type": "GemmaLLMBackbone",
        "hidden_size": config["hidden_size"],
        "intermediate_size": config["intermediate_size"],
        "num_hidden_layers": config["num_hidden_layers"],
        "num_attention_heads": config["num_attention_heads"],
        "num_key_value_heads": config["num_key_value_heads"],
        "head_dim": config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"],
        "vocab_size": config.get("vocab_size", 0),
        "rms_norm_eps": config.get("rms_norm_eps", 1e-6),
        "rope_theta": rope.get("rope_theta", config.get("rope_theta", 10000.0)),
        "hidden_act": config.get("hidden_act") or config.get("hidden_activation") or "gelu_pytorch_tanh",
    }
