"""AttentionPoolingHead: one learned query per future step attends over the backbone features."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class AttentionPoolingHead(nn.Module):
    """Predicts an action chunk with T learned queries that cross-attend to the features.

    Each query (plus the projected state) reads the backbone sequence through multi-head
    attention (padding masked out), then a shared MLP maps it to one action. Trained
    with an L1 loss over the valid steps.

    Args:
        input_dim: width of the backbone features.
        action_dim: dimension of one action.
        chunk_size: number of future actions (T), one query each.
        state_dim: dimension of the state input (0 ignores it).
        hidden_dim: width of the queries and the attention.
        num_heads: attention heads (must divide hidden_dim).
    """

    def __init__(
        self,
        input_dim: int,
        action_dim: int,
        chunk_size: int,
        state_dim: int = 0,
        hidden_dim: int = 64,
        num_heads: int = 4,
    ) -> None:
        super().__init__()
        self.chunk_size, self.action_dim, self.state_dim = chunk_size, action_dim, state_dim
        self.queries = nn.Parameter(torch.randn(chunk_size, hidden_dim) * 0.02)
        self.feature_proj = nn.Linear(input_dim, hidden_dim)
        self.state_proj = nn.Linear(state_dim, hidden_dim) if state_dim else None
        self.attention = nn.MultiheadAttention(hidden_dim, num_heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(hidden_dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, action_dim))

    def _predict(self, features: torch.Tensor, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        keys = self.feature_proj(features)  # (B, S, H)
        queries = self.queries.unsqueeze(0).expand(features.shape[0], -1, -1)  # (B, T, H)
        if self.state_proj is not None:
            queries = queries + self.state_proj(states[:, : self.state_dim].to(keys.dtype)).unsqueeze(1)
        attended, _ = self.attention(queries, keys, keys, key_padding_mask=~mask.bool())
        return self.mlp(attended + queries)  # (B, T, A)

    def forward(
        self,
        input_features: torch.Tensor,
        states: torch.Tensor,
        attention_mask: torch.Tensor,
        actions: torch.Tensor,
        action_masks: torch.Tensor,
        **kwargs: Any,
    ) -> dict[str, torch.Tensor]:
        """(B, S, D), (B, state_dim), (B, S), (B, T, A), (B, T) -> {"loss", "pred_actions" (B, T, A)}."""
        pred = self._predict(input_features, states, attention_mask)
        error = F.l1_loss(pred, actions[:, : self.chunk_size, : self.action_dim].to(pred.dtype), reduction="none")
        mask = action_masks[:, : self.chunk_size].to(pred.dtype).unsqueeze(-1)
        count = mask.sum() * self.action_dim  # "loss_weight": lets the engine average over the global batch
        loss = (error * mask).sum() / count.clamp(min=1.0)
        return {"loss": loss, "pred_actions": pred, "loss_weight": count.detach()}

    @torch.no_grad()
    def predict_action(
        self, input_features: torch.Tensor, states: torch.Tensor, attention_mask: torch.Tensor, **kwargs: Any
    ) -> torch.Tensor:
        """(B, S, D), (B, state_dim), (B, S) -> (B, T, A)."""
        return self._predict(input_features, states, attention_mask)
