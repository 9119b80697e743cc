"""One Gemma decoder layer, split at the attention so that two models can share it.

pi0 runs the PaliGemma language model (prefix) and the action expert (suffix) layer by
layer with *one* attention over both sequences. Each layer is therefore split into
`attention_inputs` (norm, q/k/v projections, RoPE) and `attention_output` (o_proj,
residual, norm, MLP, residual), and the attention itself is computed in between over
the keys of both models. They work on any layer with Gemma's parameter names
(`self_attn.{q,k,v,o}_proj`, `mlp`, `input_layernorm`, `post_attention_layernorm`):
transformers' `GemmaDecoderLayer` and our `GemmaExpertLayer` alike.
"""

from __future__ import annotations

import torch
from torch import nn

from vla_paligemma.adarms import gated_residual, normalize
from vla_paligemma.attention import apply_rope


def _heads(proj: nn.Linear, h: torch.Tensor, head_dim: int) -> torch.Tensor:
    """h (B, S, D) -> proj(h) as (B, S, heads, head_dim), a free view."""
    batch, seq, _ = h.shape
    return proj(h).view(batch, seq, -1, head_dim)


def attention_inputs(
    layer: nn.Module, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, cond: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """x (B, S, D) residual stream; cos, sin (B, S, Dh); cond (B, C) for adaRMS layers
    -> q (B, S, H, Dh), k (B, Hkv, S, Dh), v (B, Hkv, S, Dh), gate of the attention residual."""
    h, gate = normalize(layer.input_layernorm, x, cond)
    q = apply_rope(_heads(layer.self_attn.q_proj, h, layer.self_attn.head_dim), cos, sin)
    k, v = _key_value(layer, h, cos, sin)
    return q, k, v, gate


def _key_value(
    layer: nn.Module, h: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    attn = layer.self_attn
    k = apply_rope(_heads(attn.k_proj, h, attn.head_dim), cos, sin).transpose(1, 2)
    return k, _heads(attn.v_proj, h, attn.head_dim).transpose(1, 2)


def key_value(
    layer: nn.Module, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, cond: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Keys and values only (B, Hkv, S, Dh): all a layer contributes when its queries'
    outputs are never read (the prefix in the last layer)."""
    return _key_value(layer, normalize(layer.input_layernorm, x, cond)[0], cos, sin)


def attention_output(
    layer: nn.Module,
    x: torch.Tensor,
    attended: torch.Tensor,
    gate: torch.Tensor | None,
    cond: torch.Tensor | None = None,
) -> torch.Tensor:
    """x (B, S, D) residual stream; attended (B, S, H * Dh) attention result -> the layer's output (B, S, D)."""
    x = gated_residual(x, layer.self_attn.o_proj(attended), gate)
    h, mlp_gate = normalize(layer.post_attention_layernorm, x, cond)
    return gated_residual(x, layer.mlp(h), mlp_gate)
