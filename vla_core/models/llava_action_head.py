"""LlavaActionHead: FluxVLA's transformer-decoding action head.

    last valid backbone feature -> proj_action_output_embed ┐
    state -> state_encoder                                  ├ [state, feature, T query tokens]
    action_mask_token_embedding (one learned query) x T     ┘   + learned positions
    -> pre-norm transformer blocks (LayerNorm, MHSA with qkv bias, LayerNorm, GELU MLP x4)
    -> the T query outputs -> pred_action -> (B, T, action_dim)

Loss: MSE over the valid action steps (action_masks) and every action dim. Parameter
names follow FluxVLA's `LlavaActionHead` (decode_action.layers.i.attn.qkv, ...).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class Mlp(nn.Module):
    """fc1 -> GELU -> fc2: (..., dim) -> (..., dim)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection: (B, N, C) -> (B, N, C)."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        qkv = self.qkv(x).reshape(batch, length, 3, self.num_heads, width // self.num_heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])  # no mask: every token sees every token
        return self.proj(out.transpose(1, 2).reshape(batch, length, width))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x))."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, num_heads)
        self.norm2, self.mlp = nn.LayerNorm(dim), Mlp(dim, 4 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class SimpleTransformer(nn.Module):
    """Learned absolute positions + `num_layers` blocks: (B, N, C) -> (B, N, C)."""

    def __init__(self, embedding_dim: int, num_layers: int, num_heads: int, max_seq_len: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList([Block(embedding_dim, num_heads) for _ in range(num_layers)])
        self.position_embeddings = nn.Embedding(max_seq_len, embedding_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.position_embeddings(torch.arange(x.shape[1], device=x.device))
        for layer in self.layers:
            x = layer(x)
        return x


class LlavaActionHead(nn.Module):
    """A small transformer decoding an action chunk from the last valid backbone feature and the state.

    Args:
        hidden_size: width of the backbone features.
        state_dim: width of the state input.
        num_layers: transformer blocks in the decoder.
        num_heads: attention heads per block (act_decoder_dim must divide by it).
        traj_length: actions per chunk (T).
        action_dim: width of one action.
        act_decoder_dim: token width inside the decoder.
        max_seq_len: rows of the position embedding (at least traj_length + 2).
    """

    def __init__(self, hidden_size: int, state_dim: int, num_layers: int = 1, num_heads: int = 4,
                 traj_length: int = 10, action_dim: int = 7, act_decoder_dim: int = 64, max_seq_len: int = 64) -> None:
        super().__init__()
        from vla_core.errors import ConfigError

        if act_decoder_dim % num_heads:
            raise ConfigError(f"is {num_heads}; act_decoder_dim {act_decoder_dim} must divide by it.", "num_heads")
        if traj_length + 2 > max_seq_len:
            raise ConfigError(f"is {max_seq_len}; the decoder reads traj_length + 2 = {traj_length + 2} tokens, "
                              "raise it.", "max_seq_len")
        self.state_dim, self.traj_length, self.action_dim = state_dim, traj_length, action_dim
        self.state_encoder = nn.Linear(state_dim, act_decoder_dim)
        self.proj_action_output_embed = nn.Linear(hidden_size, act_decoder_dim)
        self.decode_action = SimpleTransformer(act_decoder_dim, num_layers, num_heads, max_seq_len)
        self.action_mask_token_embedding = nn.Embedding(1, act_decoder_dim)
        self.pred_action = nn.Linear(act_decoder_dim, action_dim)

    def _decode(self, input_features: torch.Tensor, states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, S, D), (B, state_dim), (B, S) -> (B, T, action_dim)."""
        batch = input_features.shape[0]
        # The last valid position of each (right-padded) row summarises the prompt.
        last = attention_mask.long().sum(dim=1).clamp(min=1) - 1
        feature = self.proj_action_output_embed(input_features[torch.arange(batch), last]).unsqueeze(1)
        queries = self.action_mask_token_embedding.weight.unsqueeze(0).expand(batch, self.traj_length, -1)
        tokens = torch.cat([self.state_encoder(states[:, : self.state_dim]).unsqueeze(1), feature, queries], dim=1)
        return self.pred_action(self.decode_action(tokens)[:, 2:])

    def forward(self, input_features: torch.Tensor, states: torch.Tensor, attention_mask: torch.Tensor,
                actions: torch.Tensor, action_masks: torch.Tensor, **kwargs: Any) -> dict[str, torch.Tensor]:
        """-> {"loss": MSE over valid steps, "pred_actions" (B, T, A), "loss_weight": valid elements}."""
        pred = self._decode(input_features, states, attention_mask)
        target = actions[:, : self.traj_length, : self.action_dim]
        mask = action_masks[:, : self.traj_length].to(pred.dtype).unsqueeze(-1)
        weight = mask.sum() * self.action_dim
        loss = ((pred - target) ** 2 * mask).sum() / weight.clamp(min=1)
        return {"loss": loss, "pred_actions": pred, "loss_weight": weight.detach()}

    def predict_action(self, input_features: torch.Tensor, states: torch.Tensor, attention_mask: torch.Tensor,
                       **kwargs: Any) -> torch.Tensor:
        """-> (B, T, action_dim) normalised actions."""
        return self._decode(input_features, states, attention_mask)
