"""Attention and feed-forward layers with diffusers' parameter names.

GR00T builds its DiT from diffusers' `Attention` and `FeedForward`; we do not depend on
diffusers, so these reproduce their math (scaled dot-product attention, tanh-approximate
GELU MLP) and their key names (`to_q`, `to_k`, `to_v`, `to_out.0`, `net.0.proj`, `net.2`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, L, heads * d) -> (B, heads, L, d)."""
    batch, length, width = x.shape
    return x.view(batch, length, heads, width // heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, heads, L, d) -> (B, L, heads * d)."""
    batch, heads, length, dim = x.shape
    return x.transpose(1, 2).reshape(batch, length, heads * dim)


def key_padding_mask(mask: torch.Tensor | None) -> torch.Tensor | None:
    """(B, S) bool, True = attend -> (B, 1, 1, S) for scaled_dot_product_attention.

    A row with no valid position would make softmax undefined (NaN); such rows attend to
    every position instead, which keeps them finite (their values are padding anyway).
    """
    if mask is None:
        return None
    mask = mask.bool()
    mask = mask | ~mask.any(dim=1, keepdim=True)
    return mask[:, None, None, :]


class Attention(nn.Module):
    """Multi-head attention (diffusers `Attention` with `AttnProcessor2_0`).

    Self-attention when `cross_attention_dim` is None; otherwise keys and values are
    projected from a context of that width.

    Args:
        query_dim: width of the queries (and of the output).
        heads: number of heads.
        dim_head: width of one head.
        cross_attention_dim: width of the context for cross-attention; None = self-attention.
        bias: bias on the q/k/v projections.
        out_bias: bias on the output projection.
        dropout: dropout after the output projection.
    """

    def __init__(
        self,
        query_dim: int,
        heads: int,
        dim_head: int,
        cross_attention_dim: int | None = None,
        bias: bool = True,
        out_bias: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        inner_dim = heads * dim_head
        context_dim = cross_attention_dim or query_dim
        self.heads = heads
        self.is_cross_attention = cross_attention_dim is not None
        self.to_q = nn.Linear(query_dim, inner_dim, bias=bias)
        self.to_k = nn.Linear(context_dim, inner_dim, bias=bias)
        self.to_v = nn.Linear(context_dim, inner_dim, bias=bias)
        self.to_out = nn.ModuleList([nn.Linear(inner_dim, query_dim, bias=out_bias), nn.Dropout(dropout)])

    def project_key_value(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """context (B, S, context_dim) -> keys, values (B, heads, S, dim_head)."""
        return split_heads(self.to_k(context), self.heads), split_heads(self.to_v(context), self.heads)

    def attend(
        self, hidden_states: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """hidden_states (B, L, query_dim) attend to key/value (B, heads, S, d); mask (B, 1, 1, S)
        from `key_padding_mask` -> (B, L, query_dim)."""
        query = split_heads(self.to_q(hidden_states), self.heads)
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask)
        return self.to_out[1](self.to_out[0](merge_heads(out)))

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """hidden_states (B, L, query_dim); encoder_hidden_states (B, S, context_dim) or None
        (self-attention); mask (B, 1, 1, S) bool or None -> (B, L, query_dim)."""
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        key, value = self.project_key_value(context)
        return self.attend(hidden_states, key, value, mask)


class GELUProjection(nn.Module):
    """diffusers' `GELU` layer: a linear projection followed by tanh-approximate GELU.

    Args:
        dim_in: input width.
        dim_out: output width.
        bias: learn a bias.
    """

    def __init__(self, dim_in: int, dim_out: int, bias: bool = True) -> None:
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.proj(x), approximate="tanh")


class FeedForward(nn.Module):
    """diffusers' `FeedForward` with activation "gelu-approximate":
    `net` = [GELUProjection(dim, 4 dim), Dropout, Linear(4 dim, dim), (Dropout if final_dropout)].

    Args:
        dim: input and output width.
        mult: hidden width multiplier.
        dropout: dropout after the activation (and at the end with final_dropout).
        final_dropout: add a dropout after the output projection.
        bias: biases on both projections.
    """

    def __init__(
        self, dim: int, mult: int = 4, dropout: float = 0.0, final_dropout: bool = False, bias: bool = True
    ) -> None:
        super().__init__()
        inner_dim = dim * mult
        layers: list[nn.Module] = [
            GELUProjection(dim, inner_dim, bias),
            nn.Dropout(dropout),
            nn.Linear(inner_dim, dim, bias=bias),
        ]
        if final_dropout:
            layers.append(nn.Dropout(dropout))
        self.net = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, dim) -> (B, L, dim)."""
        for layer in self.net:
            x = layer(x)
        return x
