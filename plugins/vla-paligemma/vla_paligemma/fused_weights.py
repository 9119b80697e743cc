"""Inference-time fused weights of the action expert: fewer, larger matrix products per step.

Each denoising step runs every expert layer on the action tokens. Reading q/k/v through
one concatenated matrix and gate/up through another turns seven matrix products per
layer into four, and the RMSNorm scales `1 + weight` are formed once. The fused copies
(one extra copy of the expert's q/k/v and gate/up weights) are rebuilt whenever a source
parameter changes (another tensor, or an in-place update: its version counter moves),
so training between calls is safe.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from vla_paligemma.adarms import AdaptiveRMSNorm


@dataclass
class FusedLayer:
    """One expert layer's fused weights.

    Attributes:
        qkv: (H * Dh + 2 * Hkv * Dh, D) rows of q_proj, k_proj, v_proj.
        gate_up: (2 * I, D) rows of gate_proj then up_proj.
        heads, kv_heads: H and Hkv, to split the qkv product.
        input_scale, post_scale: (D,) `1 + weight` of plain Gemma norms; None for adaptive ones.
    """

    qkv: torch.Tensor
    gate_up: torch.Tensor
    heads: int
    kv_heads: int
    input_scale: torch.Tensor | None
    post_scale: torch.Tensor | None


def _scale(norm: nn.Module) -> torch.Tensor | None:
    return None if isinstance(norm, AdaptiveRMSNorm) else 1.0 + norm.weight.float()


class FusedExpertWeights:
    """The fused weights of an expert, cached across calls while its parameters are unchanged."""

    def __init__(self) -> None:
        self._key: tuple[tuple[int, int], ...] | None = None
        self._layers: list[FusedLayer] = []

    @staticmethod
    def _sources(expert: nn.Module) -> list[torch.Tensor]:
        return [p for layer in expert.layers for p in layer.parameters()]

    def get(self, expert: nn.Module) -> list[FusedLayer] | None:
        """The fused layers of `expert` (rebuilt if a parameter changed); None when a layer
        has biased projections (Gemma has none) and must run unfused."""
        if any(layer.self_attn.q_proj.bias is not None or layer.mlp.gate_proj.bias is not None
               for layer in expert.layers):
            return None
        key = tuple((p.data_ptr(), p._version) for p in self._sources(expert))
        if key != self._key:
            with torch.no_grad():
                self._layers = [self._fuse(layer) for layer in expert.layers]
            self._key = key
        return self._layers

    @staticmethod
    def _fuse(layer: nn.Module) -> FusedLayer:
        attn, mlp = layer.self_attn, layer.mlp
        qkv = torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight])
        heads = attn.q_proj.out_features // attn.head_dim
        kv_heads = attn.k_proj.out_features // attn.head_dim
        gate_up = torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight])
        return FusedLayer(qkv, gate_up, heads, kv_heads, _scale(layer.input_layernorm),
                          _scale(layer.post_attention_layernorm))
