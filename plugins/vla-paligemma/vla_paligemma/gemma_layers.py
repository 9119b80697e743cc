"""One Gemma decoder layer, split at the attention so that two models can share it.

pi0 runs the PaliGemma language model (prefix) and the action expert (suffix) layer by
layer with *one* attention over both sequences. Each layer is therefore split into
`attention_inputs` (norm, q/k/v projections, RoPE) and `attention_output` (o_proj,
residual, norm, MLP, residual), and the attention itself is computed in between over
the keys of both models. They work on any layer with Gemma's parameter names
(`self_attn.{q,k,v,o}_proj`, `mlp`, `input_layernorm`, `post_attention_layernorm`):
transformers' `GemmaDecoderLayer` and our `GemmaExpertLayer` alike. With `fused`
weights (inference, see fused_weights.py) the same computation takes fewer products.
"""

from __future__ import annotations

import torch
from torch import nn

from vla_paligemma.adarms import gated_residual, normalize
from vla_paligemma.attention import Rotary, apply_rope
from vla_paligemma.fused_weights import FusedLayer


def _heads(proj: nn.Linear, h: torch.Tensor, head_dim: int) -> torch.Tensor:
    """h (B, S, D) -> proj(h) as (B, S, heads, head_dim), a free view."""
    batch, seq, _ = h.shape
    return proj(h).view(batch, seq, -1, head_dim)


def attention_inputs(
    layer: nn.Module,
    x: torch.Tensor,
    rotary: Rotary,
    cond: torch.Tensor | None = None,
    fused: FusedLayer | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """x (B, S, D) residual stream; rotary tables at the tokens' positions; cond (B, C) for
    adaRMS layers -> q (B, S, H, Dh), k (B, Hkv, S, Dh), v (B, Hkv, S, Dh), gate of the
    attention residual."""
    attn = layer.self_attn
    h, gate = normalize(layer.input_layernorm, x, cond, None if fused is None else fused.input_scale)
    if fused is None:
        q = apply_rope(_heads(attn.q_proj, h, attn.head_dim), rotary)
        k, v = _key_value(layer, h, rotary)
        return q, k, v, gate
    batch, seq, _ = h.shape
    heads, kv_heads = fused.heads, fused.kv_heads
    qkv = fused.qkv(h).view(batch, seq, heads + 2 * kv_heads, attn.head_dim)
    qk = apply_rope(qkv[:, :, : heads + kv_heads], rotary)  # q and k rotated together
    return qk[:, :, :heads], qk[:, :, heads:].transpose(1, 2), qkv[:, :, heads + kv_heads :].transpose(1, 2), gate


def _key_value(layer: nn.Module, h: torch.Tensor, rotary: Rotary) -> tuple[torch.Tensor, torch.Tensor]:
    attn = layer.self_attn
    k = apply_rope(_heads(attn.k_proj, h, attn.head_dim), rotary).transpose(1, 2)
    return k, _heads(attn.v_proj, h, attn.head_dim).transpose(1, 2)


def key_value(
    layer: nn.Module, x: torch.Tensor, rotary: Rotary, cond: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Keys and values only (B, Hkv, S, Dh): all a layer contributes when its queries'
    outputs are never read (the prefix in the last layer)."""
    return _key_value(layer, normalize(layer.input_layernorm, x, cond)[0], rotary)


def attention_output(
    layer: nn.Module,
    x: torch.Tensor,
    attended: torch.Tensor,
    gate: torch.Tensor | None,
    cond: torch.Tensor | None = None,
    fused: FusedLayer | None = None,
) -> torch.Tensor:
    """x (B, S, D) residual stream; attended (B, S, H * Dh) attention result -> the layer's output (B, S, D)."""
    x = gated_residual(x, layer.self_attn.o_proj(attended), gate)
    h, mlp_gate = normalize(layer.post_attention_layernorm, x, cond, None if fused is None else fused.post_scale)
    if fused is None:
        return gated_residual(x, layer.mlp(h), mlp_gate)
    gate_proj, up_proj = fused.gate_up(h).chunk(2, dim=-1)
    return gated_residual(x, layer.mlp.down_proj(layer.mlp.act_fn(gate_proj) * up_proj), mlp_gate)
