"""pi0's two-model transformer: the VLM's layers run the prefix, the expert's the suffix,
and at every layer one attention spans both.

Two ways to run it, with the same result:

* `joint_pass` (training, and sampling without a cache): prefix and suffix go through the
  layers together under the block-causal mask (the prefix never attends to the suffix).
* `prefix_cache` + `expert_block` (sampling): because the prefix never attends to the
  suffix, its keys and values do not depend on the noisy actions. They are computed once
  into a `StaticKVCache` sized for the whole sequence; each denoising step writes its own
  keys into the tail of the same buffers, so nothing is concatenated or cropped per step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.utils.checkpoint
from torch import nn

from vla_paligemma.attention import (
    Rotary,
    additive_mask,
    block_causal_mask,
    grouped_attention,
    key_padding_mask,
    positions_from_mask,
)
from vla_paligemma.fused_weights import FusedLayer
from vla_paligemma.gemma_layers import attention_inputs, attention_output, key_value


@dataclass
class StaticKVCache:
    """Keys and values of the tokens processed so far, in buffers of a fixed capacity.

    Attributes:
        keys, values: per layer (B, Hkv, capacity, Dh); positions [0, length) are filled.
        key_mask: (B, capacity) bool, True where a cached (or about to be written) token is valid.
        length: how many positions are filled.
        next_position: (B,) long, the RoPE position of the next token (valid tokens so far).
    """

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    key_mask: torch.Tensor
    length: int
    next_position: torch.Tensor

    @property
    def capacity(self) -> int:
        return self.keys[0].shape[2]

    def commit(self, num_tokens: int) -> None:
        """Keep the last `num_tokens` written by `expert_block` as context for what follows."""
        self.length += num_tokens
        self.next_position = self.next_position + num_tokens


def prefix_cache(
    vlm: nn.Module,
    embeds: torch.Tensor,
    pad_mask: torch.Tensor,
    capacity: int,
    fused: list[FusedLayer] | None = None,
) -> StaticKVCache:
    """Run the prefix through the VLM's language model once and keep every layer's keys and values.

    vlm: a PaliGemma backbone (`layers`, `rotary`); embeds (B, P, D); pad_mask (B, P) bool;
    capacity >= P: the total sequence the cache will hold (prefix + every suffix token);
    fused: the VLM layers' fused weights, if any. The last layer's queries, output
    projection and MLP are skipped: only its keys and values are ever read.
    """
    batch, prefix_len, _ = embeds.shape
    rotary = vlm.rotary(positions_from_mask(pad_mask), embeds.dtype)
    mask = additive_mask(key_padding_mask(pad_mask), embeds.dtype)
    keys, values = [], []
    x = embeds
    last = len(vlm.layers) - 1
    for index, layer in enumerate(vlm.layers):
        if index == last:
            k, v = key_value(layer, x, rotary)
        else:
            weights = None if fused is None else fused[index]
            q, k, v, gate = attention_inputs(layer, x, rotary, None, weights)
            x = attention_output(layer, x, grouped_attention(q, k, v, mask), gate, None, weights)
        key_buffer = k.new_zeros(batch, k.shape[1], capacity, k.shape[3])
        value_buffer = v.new_zeros(batch, v.shape[1], capacity, v.shape[3])
        key_buffer[:, :, :prefix_len] = k
        value_buffer[:, :, :prefix_len] = v
        keys.append(key_buffer)
        values.append(value_buffer)
    key_mask = torch.ones(batch, capacity, dtype=torch.bool, device=embeds.device)
    key_mask[:, :prefix_len] = pad_mask
    return StaticKVCache(keys, values, key_mask, prefix_len, pad_mask.long().sum(dim=1))


def expert_block(
    expert: nn.Module,
    cache: StaticKVCache,
    embeds: torch.Tensor,
    rotary: Rotary,
    mask: torch.Tensor,
    cond: torch.Tensor | None = None,
    fused: list[FusedLayer] | None = None,
) -> torch.Tensor:
    """Run a block of suffix tokens through the expert against the cache.

    embeds (B, S, De); rotary: tables at the block's positions; mask (B, 1, 1 or S, length + S),
    bool or additive, over [cached tokens, this block]; cond (B, C) for adaRMS experts;
    fused: the expert's fused weights, if any. The block's keys and values are written at
    [length, length + S) of the cache buffers (call `cache.commit(S)` to keep them)
    -> hidden states (B, S, De) before the final norm.
    """
    start, end = cache.length, cache.length + embeds.shape[1]
    x = embeds
    for index, layer in enumerate(expert.layers):
        weights = None if fused is None else fused[index]
        q, k, v, gate = attention_inputs(layer, x, rotary, cond, weights)
        keys, values = cache.keys[index], cache.values[index]
        keys[:, :, start:end] = k
        values[:, :, start:end] = v
        attended = grouped_attention(q, keys[:, :, :end], values[:, :, :end], mask)
        x = attention_output(layer, x, attended, gate, cond, weights)
    return x


def joint_layer(
    vlm_layer: nn.Module,
    expert_layer: nn.Module,
    xp: torch.Tensor,
    xs: torch.Tensor,
    rotary_p: Rotary,
    rotary_s: Rotary,
    mask: torch.Tensor,
    cond: torch.Tensor | None,
    last: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One layer of both models with one attention over [prefix, suffix] -> (xp, xs).

    In the last layer the prefix's output is never read again: it contributes keys and
    values only, and xp is returned unchanged.
    """
    prefix_len = xp.shape[1]
    qs, ks, vs, gate_s = attention_inputs(expert_layer, xs, rotary_s, cond)
    if last:
        kp, vp = key_value(vlm_layer, xp, rotary_p)
        attended = grouped_attention(qs, torch.cat([kp, ks], 2), torch.cat([vp, vs], 2), mask[:, :, prefix_len:])
        return xp, attention_output(expert_layer, xs, attended, gate_s, cond)
    qp, kp, vp, gate_p = attention_inputs(vlm_layer, xp, rotary_p)
    attended = grouped_attention(torch.cat([qp, qs], 1), torch.cat([kp, ks], 2), torch.cat([vp, vs], 2), mask)
    xp = attention_output(vlm_layer, xp, attended[:, :prefix_len], gate_p)
    return xp, attention_output(expert_layer, xs, attended[:, prefix_len:], gate_s, cond)


def joint_pass(
    vlm: nn.Module,
    expert: nn.Module,
    prefix_embeds: torch.Tensor,
    prefix_pad_mask: torch.Tensor,
    suffix_embeds: torch.Tensor,
    suffix_blocks: torch.Tensor,
    cond: torch.Tensor | None = None,
    checkpoint_layers: bool = False,
) -> torch.Tensor:
    """Prefix and suffix through both models at once, layer by layer, one attention per layer.

    prefix_embeds (B, P, D); prefix_pad_mask (B, P) bool; suffix_embeds (B, S, De);
    suffix_blocks (S,) long block ids >= 1 (pi0: state 1, actions 2; pi0.5: actions 1);
    cond (B, C) for an adaRMS expert; checkpoint_layers recomputes each layer pair's
    activations in the backward pass -> the expert's hidden states (B, S, De) before the final norm.
    """
    batch, prefix_len = prefix_pad_mask.shape
    suffix_len = suffix_embeds.shape[1]
    pad_mask = torch.cat([prefix_pad_mask.bool(), prefix_pad_mask.new_ones(batch, suffix_len, dtype=torch.bool)], 1)
    blocks = torch.cat([suffix_blocks.new_zeros(prefix_len), suffix_blocks])
    mask = additive_mask(block_causal_mask(pad_mask, blocks), prefix_embeds.dtype)
    positions = positions_from_mask(pad_mask)
    rotary_p = vlm.rotary(positions[:, :prefix_len], prefix_embeds.dtype)
    rotary_s = expert.rotary(positions[:, prefix_len:], suffix_embeds.dtype)
    xp, xs = prefix_embeds, suffix_embeds
    last = len(vlm.layers) - 1
    for index, (vlm_layer, expert_layer) in enumerate(zip(vlm.layers, expert.layers, strict=True)):
        args = (vlm_layer, expert_layer, xp, xs, rotary_p, rotary_s, mask, cond, index == last)
        if checkpoint_layers and torch.is_grad_enabled():
            xp, xs = torch.utils.checkpoint.checkpoint(joint_layer, *args, use_reentrant=False)
        else:
            xp, xs = joint_layer(*args)
    return xs
