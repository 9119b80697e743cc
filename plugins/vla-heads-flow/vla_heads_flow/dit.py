"""GR00T's diffusion transformer (`cross_attention_dit.py`), without diffusers.

`DiT`: timestep-conditioned blocks over the state/future/action tokens. Block i attends
to the backbone features (cross-attention) unless `interleave_self_attention` is set and
i is odd, in which case it attends to the tokens themselves. Each block:

    h = h + Attn(AdaLN(h, temb), context)          AdaLN: LN(h) * (1 + scale) + shift
    h = h + FF(LN(h))
    out = proj_out_2(LN(h) * (1 + scale_out) + shift_out)

`SelfAttentionTransformer`: plain pre-LN self-attention blocks over the backbone features
(GR00T's `vl_self_attention`). Key names are those of the reference (`transformer_blocks.
{i}.norm1.linear`, `attn1.to_q`, `ff.net.0.proj`, `timestep_encoder.timestep_embedder.
linear_1`, `proj_out_1`, ...), so GR00T N1.5 checkpoints load as they are.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from vla_heads_flow.attention import Attention, FeedForward, key_padding_mask

TIME_PROJ_CHANNELS = 256


def timestep_sinusoid(timesteps: torch.Tensor, channels: int = TIME_PROJ_CHANNELS) -> torch.Tensor:
    """diffusers `Timesteps(channels, flip_sin_to_cos=True, downscale_freq_shift=1)`:
    timesteps (N,) -> (N, channels) = [cos(t f_i), sin(t f_i)], f_i = 10000^(-i / (channels/2 - 1))."""
    half_dim = channels // 2
    exponent = -math.log(10000) * torch.arange(0, half_dim, dtype=torch.float32, device=timesteps.device)
    exponent = exponent / (half_dim - 1)
    emb = timesteps[:, None].float() * torch.exp(exponent)[None, :]
    return torch.cat([torch.cos(emb), torch.sin(emb)], dim=-1)


class TimestepEmbedding(nn.Module):
    """diffusers `TimestepEmbedding`: linear_1 -> SiLU -> linear_2.

    Args:
        in_channels: width of the sinusoidal projection.
        time_embed_dim: output width.
    """

    def __init__(self, in_channels: int, time_embed_dim: int) -> None:
        super().__init__()
        self.linear_1 = nn.Linear(in_channels, time_embed_dim)
        self.act = nn.SiLU()
        self.linear_2 = nn.Linear(time_embed_dim, time_embed_dim)

    def forward(self, sample: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.act(self.linear_1(sample)))


class TimestepEncoder(nn.Module):
    """Discretised flow time (N,) -> conditioning vector temb (N, embedding_dim).

    Args:
        embedding_dim: the DiT width.
    """

    def __init__(self, embedding_dim: int) -> None:
        super().__init__()
        self.timestep_embedder = TimestepEmbedding(TIME_PROJ_CHANNELS, embedding_dim)

    def forward(self, timesteps: torch.Tensor) -> torch.Tensor:
        dtype = self.timestep_embedder.linear_1.weight.dtype
        return self.timestep_embedder(timestep_sinusoid(timesteps).to(dtype))


class AdaLayerNorm(nn.Module):
    """LayerNorm (no affine) modulated by the time embedding: LN(x) * (1 + scale) + shift.

    Args:
        embedding_dim: width of x and of temb.
        norm_eps: LayerNorm epsilon.
    """

    def __init__(self, embedding_dim: int, norm_eps: float = 1e-5) -> None:
        super().__init__()
        self.silu = nn.SiLU()
        self.linear = nn.Linear(embedding_dim, embedding_dim * 2)
        self.norm = nn.LayerNorm(embedding_dim, norm_eps, elementwise_affine=False)

    def modulation(self, temb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """temb (B, D) -> scale, shift (B, D); the reference's chunk order is (scale, shift)."""
        scale, shift = self.linear(self.silu(temb)).chunk(2, dim=1)
        return scale, shift

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        """x (B, L, D), temb (B, D) -> (B, L, D)."""
        scale, shift = self.modulation(temb)
        return self.norm(x) * (1 + scale[:, None]) + shift[:, None]


class BasicTransformerBlock(nn.Module):
    """One pre-norm attention + feed-forward block (GR00T's `BasicTransformerBlock`).

    Args:
        dim: token width.
        num_attention_heads: attention heads.
        attention_head_dim: width of one head.
        dropout: dropout in attention output, feed-forward and the final dropout.
        cross_attention_dim: context width for cross-attention; None = self-attention.
        norm_type: "ada_norm" (time-modulated, the DiT) or "layer_norm" (vl_self_attention).
        norm_elementwise_affine: learnable LayerNorm weight/bias (norm1 with layer_norm, norm3).
        norm_eps: LayerNorm epsilon.
        final_dropout: dropout on the attention output and at the end of the feed-forward.
    """

    def __init__(
        self,
        dim: int,
        num_attention_heads: int,
        attention_head_dim: int,
        dropout: float = 0.0,
        cross_attention_dim: int | None = None,
        norm_type: str = "layer_norm",
        norm_elementwise_affine: bool = True,
        norm_eps: float = 1e-5,
        final_dropout: bool = False,
    ) -> None:
        super().__init__()
        if norm_type not in ("ada_norm", "layer_norm"):
            raise ValueError(f"norm_type must be 'ada_norm' or 'layer_norm', got {norm_type!r}")
        self.norm_type = norm_type
        self.cross_attention_dim = cross_attention_dim
        if norm_type == "ada_norm":
            self.norm1: nn.Module = AdaLayerNorm(dim)
        else:
            self.norm1 = nn.LayerNorm(dim, eps=norm_eps, elementwise_affine=norm_elementwise_affine)
        self.attn1 = Attention(
            query_dim=dim,
            heads=num_attention_heads,
            dim_head=attention_head_dim,
            cross_attention_dim=cross_attention_dim,
            dropout=dropout,
        )
        self.norm3 = nn.LayerNorm(dim, norm_eps, norm_elementwise_affine)
        self.ff = FeedForward(dim, dropout=dropout, final_dropout=final_dropout)
        self.final_dropout = nn.Dropout(dropout) if final_dropout else None

    def forward(
        self,
        hidden_states: torch.Tensor,
        temb: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """hidden_states (B, L, dim); temb (B, dim) with ada_norm; encoder_hidden_states
        (B, S, cross_attention_dim) for cross-attention; mask (B, 1, 1, S') over the keys."""
        ada = self.norm_type == "ada_norm"
        normed = self.norm1(hidden_states, temb) if ada else self.norm1(hidden_states)
        attn_output = self.attn1(normed, encoder_hidden_states, mask)
        if self.final_dropout is not None:
            attn_output = self.final_dropout(attn_output)
        hidden_states = attn_output + hidden_states
        return self.ff(self.norm3(hidden_states)) + hidden_states


class DiT(nn.Module):
    """GR00T's diffusion transformer: tokens (B, L, heads*head_dim) -> (B, L, output_dim).

    Args:
        num_attention_heads: attention heads per block.
        attention_head_dim: width of one head; the token width is heads * head_dim.
        output_dim: width of the output projection (GR00T: the head's hidden_size).
        num_layers: number of blocks.
        dropout: dropout inside the blocks.
        cross_attention_dim: width of the backbone features the cross-attention blocks read.
        interleave_self_attention: odd blocks attend to the tokens instead of the features.
        final_dropout: dropout on attention outputs and at the end of feed-forwards.
        norm_eps: LayerNorm epsilon inside the blocks.
    """

    def __init__(
        self,
        num_attention_heads: int = 8,
        attention_head_dim: int = 64,
        output_dim: int = 26,
        num_layers: int = 12,
        dropout: float = 0.1,
        cross_attention_dim: int | None = None,
        interleave_self_attention: bool = False,
        final_dropout: bool = True,
        norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.inner_dim = num_attention_heads * attention_head_dim
        self.interleave_self_attention = interleave_self_attention
        self.timestep_encoder = TimestepEncoder(self.inner_dim)
        self.transformer_blocks = nn.ModuleList(
            BasicTransformerBlock(
                self.inner_dim,
                num_attention_heads,
                attention_head_dim,
                dropout=dropout,
                cross_attention_dim=None if self.is_self_attention_block(i) else cross_attention_dim,
                norm_type="ada_norm",
                norm_elementwise_affine=False,
                norm_eps=norm_eps,
                final_dropout=final_dropout,
            )
            for i in range(num_layers)
        )
        self.norm_out = nn.LayerNorm(self.inner_dim, elementwise_affine=False, eps=1e-6)
        self.proj_out_1 = nn.Linear(self.inner_dim, 2 * self.inner_dim)
        self.proj_out_2 = nn.Linear(self.inner_dim, output_dim)

    def is_self_attention_block(self, index: int) -> bool:
        """Whether block `index` attends to the tokens (True) or to the backbone features."""
        return self.interleave_self_attention and index % 2 == 1

    def output_modulation(self, temb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """temb (B, D) -> shift, scale (B, D) of the output norm; the reference's order is (shift, scale)."""
        shift, scale = self.proj_out_1(F.silu(temb)).chunk(2, dim=1)
        return shift, scale

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        timestep: torch.Tensor,
        encoder_attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """hidden_states (B, L, D); encoder_hidden_states (B, S, cross_attention_dim);
        timestep (B,) discretised; encoder_attention_mask (B, S) bool or None (attend to
        all, as the reference does) -> (B, L, output_dim)."""
        temb = self.timestep_encoder(timestep)
        mask = key_padding_mask(encoder_attention_mask)
        for i, block in enumerate(self.transformer_blocks):
            if self.is_self_attention_block(i):
                hidden_states = block(hidden_states, temb)
            else:
                hidden_states = block(hidden_states, temb, encoder_hidden_states, mask)
        shift, scale = self.output_modulation(temb)
        hidden_states = self.norm_out(hidden_states) * (1 + scale[:, None]) + shift[:, None]
        return self.proj_out_2(hidden_states)


class SelfAttentionTransformer(nn.Module):
    """Pre-LN self-attention blocks over the backbone features (GR00T's `vl_self_attention`).

    Args:
        num_attention_heads: attention heads per block.
        attention_head_dim: width of one head; heads * head_dim is the feature width.
        num_layers: number of blocks.
        dropout: dropout inside the blocks.
        final_dropout: dropout on attention outputs and at the end of feed-forwards.
    """

    def __init__(
        self,
        num_attention_heads: int = 8,
        attention_head_dim: int = 64,
        num_layers: int = 12,
        dropout: float = 0.1,
        final_dropout: bool = True,
    ) -> None:
        super().__init__()
        inner_dim = num_attention_heads * attention_head_dim
        self.transformer_blocks = nn.ModuleList(
            BasicTransformerBlock(
                inner_dim, num_attention_heads, attention_head_dim, dropout=dropout, final_dropout=final_dropout
            )
            for _ in range(num_layers)
        )

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """hidden_states (B, S, D); attention_mask (B, S) bool over the keys or None -> (B, S, D)."""
        mask = key_padding_mask(attention_mask)
        for block in self.transformer_blocks:
            hidden_states = block(hidden_states, mask=mask)
        return hidden_states
