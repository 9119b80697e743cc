"""One Euler step of the fast inference path, and the per-call inputs it reuses.

`CallInputs` is filled once per `predict_action`: the backbone features' keys and values
of every cross-attention block, the token buffer with the state and future tokens already
written, the per-embodiment encoder/decoder weights and the time terms of every step.
`denoise_step` then only runs what depends on the current actions:

    action encoder -> DiT blocks (queries and the self-attention blocks) -> output norm
    -> decoder -> actions += dt * v

It computes the same function as `FlowMatchingHead.velocity`, with three exact
shortcuts: the time half of the action encoder's W2 is a per-step constant (every chunk
step has the same time), the last DiT block and the output layers only run on the action
tokens (the only ones the decoder reads), and padded action dims are zeroed by a mask
(with `zero_padded_action_dims`; all ones otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, is_dataclass
from typing import Any

import torch
import torch.nn.functional as F

from vla_heads_flow.action_encoder import swish
from vla_heads_flow.attention import merge_heads, split_heads
from vla_heads_flow.inference_kernels import BlockKernels, EmbodimentKernels, HeadKernels


@dataclass
class CallInputs:
    """Per-call tensors; every step reads them, only `actions` and the tail of `tokens` change."""

    actions: torch.Tensor  # (B, T, A) the sample being integrated, updated in place
    keep: torch.Tensor  # (A,) 0 for dims held at zero (zero_padded_action_dims), else 1
    tokens: torch.Tensor  # (B, P + T, D) [state, future tokens, action tokens]
    cross_kv: list[tuple[torch.Tensor, torch.Tensor] | None]  # per DiT block: (B, H, S, d) keys, values
    mask: torch.Tensor | None  # (B, 1, 1, S) backbone key mask
    embodiment: EmbodimentKernels  # action encoder / decoder linears of this batch's embodiments
    uniform_embodiment: int | None  # the embodiment of every row, or None when they differ
    tau: list[torch.Tensor]  # per step (B, 1, D): time half of W2 applied to the time encoding, plus W2's bias
    pos: torch.Tensor  # (T, D) position embedding (zeros without add_pos_embed)
    dt: float


def attention(
    block: BlockKernels,
    normed: torch.Tensor,
    cross_kv: tuple[torch.Tensor, torch.Tensor] | None,
    mask: torch.Tensor | None,
    tail_from: int | None,
) -> torch.Tensor:
    """Attention output of a block; with `tail_from`, only for the tokens from that index on."""
    if block.self_attention:
        assert block.qkv is not None
        query, key, value = block.qkv(normed).chunk(3, dim=-1)
        if tail_from is not None:
            query = query[:, tail_from:]
        key, value = split_heads(key, block.heads), split_heads(value, block.heads)
    else:
        assert block.q is not None and cross_kv is not None
        query = block.q(normed if tail_from is None else normed[:, tail_from:])
        key, value = cross_kv
    out = F.scaled_dot_product_attention(split_heads(query, block.heads), key, value, attn_mask=mask)
    return block.out(merge_heads(out))


def feed_forward(block: BlockKernels, hidden: torch.Tensor) -> torch.Tensor:
    """h + FF(LN(h))."""
    return block.ff_out(block.ff_in(block.norm3(hidden))) + hidden


def vl_block(block: BlockKernels, hidden: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """One vl_self_attention block (pre-LN, affine norms) over the backbone features."""
    assert block.norm1 is not None
    hidden = attention(block, block.norm1(hidden), None, mask, None) + hidden
    return feed_forward(block, hidden)


def dit_block(
    block: BlockKernels,
    hidden: torch.Tensor,
    mods: torch.Tensor,
    cross_kv: tuple[torch.Tensor, torch.Tensor] | None,
    mask: torch.Tensor | None,
    tail_from: int | None,
) -> torch.Tensor:
    """One DiT block; mods (2, D) = AdaLN (1 + scale, shift) of this step."""
    # LN(h) * (1 + scale) + shift is LayerNorm with (1 + scale, shift) as its affine parameters.
    normed = F.layer_norm(hidden, hidden.shape[-1:], mods[0], mods[1], eps=block.ada_eps)
    attn = attention(block, normed, cross_kv, None if block.self_attention else mask, tail_from)
    if tail_from is not None:
        hidden = hidden[:, tail_from:]
    return feed_forward(block, attn + hidden)


def denoise_step(
    block_mods: torch.Tensor, out_mods: torch.Tensor, tau: torch.Tensor, call: CallInputs, kernels: HeadKernels
) -> None:
    """One Euler step, in place on `call.actions`: block_mods (L, 2, D) and out_mods (2, D)
    (LayerNorm affine (1 + scale, shift)) and tau (B, 1, D) are this step's time terms."""
    actions = call.actions
    horizon = actions.shape[1]
    prefix = call.tokens.shape[1] - horizon
    enc = call.embodiment
    x = swish(enc.w2a(enc.w1(actions)) + tau)
    call.tokens[:, prefix:] = enc.w3(x) + call.pos

    hidden = call.tokens
    last = len(kernels.dit_blocks) - 1
    for i, block in enumerate(kernels.dit_blocks):
        tail_from = prefix if i == last else None
        hidden = dit_block(block, hidden, block_mods[i], call.cross_kv[i], call.mask, tail_from)
    if last < 0:
        hidden = hidden[:, prefix:]

    hidden = F.layer_norm(hidden, hidden.shape[-1:], out_mods[0], out_mods[1], eps=1e-6)
    decoded = enc.dec2(F.relu(enc.dec1(kernels.proj_out_2(hidden))))
    actions.add_(call.dt * decoded)
    actions.mul_(call.keep)


def structure_key(value: Any) -> Any:
    """Shapes/dtypes of every tensor in a (nested) CallInputs: equal keys mean the static
    buffers of a captured CUDA graph can take the new values."""
    if isinstance(value, torch.Tensor):
        return (tuple(value.shape), value.dtype, value.device)
    if is_dataclass(value):
        return tuple(structure_key(getattr(value, f.name)) for f in fields(value))
    if isinstance(value, (list, tuple)):
        return tuple(structure_key(v) for v in value)
    return value


def clone_inputs(value: Any) -> Any:
    """A deep copy with fresh tensor storage (the static buffers of a CUDA graph)."""
    if isinstance(value, torch.Tensor):
        return value.clone()
    if is_dataclass(value):
        return type(value)(**{f.name: clone_inputs(getattr(value, f.name)) for f in fields(value)})
    if isinstance(value, list):
        return [clone_inputs(v) for v in value]
    if isinstance(value, tuple):
        return tuple(clone_inputs(v) for v in value)
    return value


def copy_inputs(static: Any, fresh: Any) -> None:
    """Copy the tensors of `fresh` into the same-shaped tensors of `static`, in place."""
    if isinstance(static, torch.Tensor):
        static.copy_(fresh)
    elif is_dataclass(static):
        for f in fields(static):
            copy_inputs(getattr(static, f.name), getattr(fresh, f.name))
    elif isinstance(static, (list, tuple)):
        for s, v in zip(static, fresh, strict=True):
            copy_inputs(s, v)
