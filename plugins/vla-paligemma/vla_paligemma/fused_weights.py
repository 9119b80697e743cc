"""Inference-time fused weights of Gemma layers: fewer, larger matrix products.

Each denoising step runs every expert layer on the action tokens, and the prefix runs
every VLM layer once. Reading q/k/v through one concatenated matrix and gate/up through
another turns seven matrix products per layer into four, and the RMSNorm scales
`1 + weight` are formed once. With `pack`, the concatenated matrices are packed for
oneDNN on CPU (`vla_core.models.packed_linear`; 2-3x faster than MKL's fp32 products
here). The fused copies (one extra copy of the q/k/v and gate/up weights) are rebuilt
whenever a source parameter changes (another tensor, or an in-place update: its version
counter moves), so training between calls is safe.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from vla_core.models import packed_linear
from vla_core.models.packed_linear import PackedLinear
from vla_paligemma.adarms import AdaptiveRMSNorm


@dataclass
class FusedLayer:
    """One expert layer's fused weights.

    Attributes:
        qkv: D -> H * Dh + 2 * Hkv * Dh: q_proj, k_proj, v_proj in one product.
        gate_up: D -> 2 * I: gate_proj then up_proj in one product.
        heads, kv_heads: H and Hkv, to split the qkv product.
        input_scale, post_scale: (D,) `1 + weight` of plain Gemma norms; None for adaptive ones.
    """

    qkv: PackedLinear
    gate_up: PackedLinear
    heads: int
    kv_heads: int
    input_scale: torch.Tensor | None
    post_scale: torch.Tensor | None


def _scale(norm: nn.Module) -> torch.Tensor | None:
    return None if isinstance(norm, AdaptiveRMSNorm) else 1.0 + norm.weight.float()


class FusedGemmaWeights:
    """The fused weights of a stack of Gemma layers (`model.layers`), cached across calls
    while its parameters (and the packing choice) are unchanged."""

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._layers: list[FusedLayer] = []

    @staticmethod
    def _sources(model: nn.Module) -> list[torch.Tensor]:
        return [p for layer in model.layers for p in layer.parameters()]

    def get(self, model: nn.Module, pack: bool = False) -> list[FusedLayer] | None:
        """The fused layers of `model` (rebuilt if a parameter changed); None when a layer
        has biased projections (Gemma has none) and must run unfused. `pack`: pack the
        fused matrices for oneDNN where `can_pack` allows (CPU, fp32/bf16, large enough)."""
        if any(layer.self_attn.q_proj.bias is not None or layer.mlp.gate_proj.bias is not None
               for layer in model.layers):
            return None
        key = (pack, packed_linear.PACK_MIN_NUMEL, *((p.data_ptr(), p._version) for p in self._sources(model)))
        if key != self._key:
            self._layers = []  # free the old copies before building the new ones
            with torch.no_grad():
                self._layers = [self._fuse(layer, pack) for layer in model.layers]
            self._key = key
        return self._layers

    @staticmethod
    def _fuse(layer: nn.Module, pack: bool) -> FusedLayer:
        attn, mlp = layer.self_attn, layer.mlp
        heads = attn.q_proj.out_features // attn.head_dim
        kv_heads = attn.k_proj.out_features // attn.head_dim
        return FusedLayer(
            PackedLinear.concat([attn.q_proj, attn.k_proj, attn.v_proj], pack=pack),
            PackedLinear.concat([mlp.gate_proj, mlp.up_proj], pack=pack),
            heads, kv_heads, _scale(layer.input_layernorm), _scale(layer.post_attention_layernorm),
        )
