"""Attention pieces shared by the prefix, the suffix and the joint pass.

Masks are boolean, True where a query may attend to a key, and only ever hide *keys*
(padding, later blocks): a padded query row still sees the valid keys, so no row is all
False and SDPA never produces NaNs that could leak through a masked value.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F


class Rotary(NamedTuple):
    """RoPE tables as our kernels use them, built once per call.

    Attributes:
        cos: (B, S, 1, Dh) cosines, broadcast over heads.
        sin: (B, S, 1, Dh) sines with the first half negated, so that rotating is
            `x * cos + swap_halves(x) * sin` (Gemma's `rotate_half` folded into the table).
    """

    cos: torch.Tensor
    sin: torch.Tensor

    @classmethod
    def from_cos_sin(cls, cos: torch.Tensor, sin: torch.Tensor) -> Rotary:
        """cos, sin (B, S, Dh) as transformers' rotary embedding returns them."""
        half = sin.shape[-1] // 2
        return cls(cos[:, :, None], torch.cat([-sin[..., :half], sin[..., half:]], dim=-1)[:, :, None])


def apply_rope(x: torch.Tensor, rotary: Rotary) -> torch.Tensor:
    """x (B, S, heads, Dh) -> x rotated by its positions (Gemma's half-split RoPE), in three ops."""
    swapped = x.unflatten(-1, (2, x.shape[-1] // 2)).flip(-2).flatten(-2)
    return torch.addcmul(x * rotary.cos, swapped, rotary.sin)


def grouped_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Multi-query / grouped-query attention through one SDPA call.

    q (B, Q, H, Dh); k, v (B, Hkv, K, Dh); mask (B, 1, Q, K) or (B, 1, 1, K), bool (True =
    attend) or additive float -> (B, Q, H * Dh).

    The H / Hkv query heads that share a key head are folded into the query axis (row
    t * rep + r), so keys and values are never repeated and, with Gemma's single key head,
    q goes in and the result comes out without a transpose or a copy.
    """
    batch, q_len, heads, head_dim = q.shape
    kv_heads = k.shape[1]
    rep = heads // kv_heads
    folded = q.view(batch, q_len, kv_heads, rep, head_dim).permute(0, 2, 1, 3, 4).reshape(
        batch, kv_heads, q_len * rep, head_dim
    )
    if mask.shape[2] != 1 and rep > 1:
        mask = mask.repeat_interleave(rep, dim=2)
    out = F.scaled_dot_product_attention(folded, k, v, attn_mask=mask)
    out = out.view(batch, kv_heads, q_len, rep, head_dim).permute(0, 2, 1, 3, 4)
    return out.reshape(batch, q_len, heads * head_dim)


def additive_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """bool mask (True = attend) -> float bias (0 or the dtype's lowest value): SDPA's fast
    path on CPU, built once per call instead of at every step and layer."""
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(~mask, torch.finfo(dtype).min)


def block_causal_mask(pad_mask: torch.Tensor, block_ids: torch.Tensor) -> torch.Tensor:
    """The pi0 attention pattern (big_vision's `make_attn_mask`).

    pad_mask (B, N) bool, True = a real token; block_ids (N,) or (B, N) long, non-decreasing
    -> (B, 1, N, N) bool. A token attends to every valid token of its own block and of
    earlier blocks: the prefix (block 0) is bidirectional and never sees the suffix, the
    state token sees the prefix, the action tokens see everything.
    """
    if block_ids.ndim == 1:
        block_ids = block_ids[None].expand(pad_mask.shape[0], -1)
    allowed = block_ids[:, None, :] <= block_ids[:, :, None]  # (B, Q, K)
    return (allowed & pad_mask[:, None, :])[:, None]


def key_padding_mask(key_mask: torch.Tensor) -> torch.Tensor:
    """key_mask (B, K) bool -> (B, 1, 1, K): every query sees every valid key."""
    return key_mask[:, None, None, :]


def positions_from_mask(pad_mask: torch.Tensor) -> torch.Tensor:
    """pad_mask (B, N) bool -> RoPE positions (B, N) long: padding does not advance them."""
    return torch.cumsum(pad_mask.long(), dim=1) - 1
