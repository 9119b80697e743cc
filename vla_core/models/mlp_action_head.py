"""A regression head: pooled backbone features (+ state) -> an action chunk, by an MLP."""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from vla_core.models.pooling import pool


class MLPActionHead(nn.Module):
    """Regresses a whole action chunk from pooled features and the state.

    Loss is L1 or MSE over the valid steps of the chunk (`action_masks`) and the first
    `action_dim` dims.

    Args:
        input_dim: width of the backbone features.
        action_dim: dimension of one action (after padding to the model's max).
        chunk_size: number of future actions predicted (T).
        state_dim: dimension of the state input; 0 ignores the state.
        hidden_dim: width of the hidden layers.
        num_layers: number of hidden layers.
        loss: "l1" or "mse".
        pooling: "mean" over valid positions, or the "last" valid position.
        dropout: dropout between hidden layers.
    """

    #: Reads one frame: the data must not give observation history (`vla config validate` checks).
    supports_history: bool = False

    def __init__(
        self,
        input_dim: int,
        action_dim: int,
        chunk_size: int,
        state_dim: int = 0,
        hidden_dim: int = 256,
        num_layers: int = 2,
        loss: Literal["l1", "mse"] = "l1",
        pooling: Literal["mean", "last"] = "mean",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.action_dim, self.chunk_size, self.state_dim = action_dim, chunk_size, state_dim
        self.loss_type, self.pooling = loss, pooling
        layers: list[nn.Module] = []
        width = input_dim + state_dim
        for _ in range(num_layers):
            layers += [nn.Linear(width, hidden_dim), nn.GELU(), nn.Dropout(dropout)]
            width = hidden_dim
        layers.append(nn.Linear(width, chunk_size * action_dim))
        self.mlp = nn.Sequential(*layers)

    def _predict(
        self, input_features: torch.Tensor, states: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        x = pool(input_features, attention_mask, self.pooling)
        if self.state_dim:
            state = states[:, : self.state_dim].to(x.dtype)
            if state.shape[-1] < self.state_dim:  # a narrower padded state: zero-pad, as the flow heads do
                state = F.pad(state, (0, self.state_dim - state.shape[-1]))
            x = torch.cat([x, state], dim=-1)
        return self.mlp(x).view(-1, self.chunk_size, self.action_dim)

    def forward(
        self,
        input_features: torch.Tensor,
        states: torch.Tensor,
        attention_mask: torch.Tensor,
        actions: torch.Tensor,
        action_masks: torch.Tensor,
        **kwargs: Any,
    ) -> dict[str, torch.Tensor]:
        """(B, S, D), (B, state_dim), (B, S), (B, T, A), (B, T) -> {"loss", "pred_actions" (B, T, A),
        "loss_weight" (the number of valid elements the loss averages)}."""
        pred = self._predict(input_features, states, attention_mask)
        target = actions[:, : self.chunk_size, : self.action_dim].to(pred.dtype)
        error = F.l1_loss(pred, target, reduction="none") if self.loss_type == "l1" else F.mse_loss(
            pred, target, reduction="none"
        )
        mask = action_masks[:, : self.chunk_size].to(pred.dtype).unsqueeze(-1)
        count = mask.sum() * self.action_dim  # valid elements: the engine weighs micro-batches by it
        loss = (error * mask).sum() / count.clamp(min=1.0)
        return {"loss": loss, "pred_actions": pred, "loss_weight": count.detach()}

    @torch.no_grad()
    def predict_action(
        self, input_features: torch.Tensor, states: torch.Tensor, attention_mask: torch.Tensor, **kwargs: Any
    ) -> torch.Tensor:
        """(B, S, D), (B, state_dim), (B, S) -> (B, T, A)."""
        return self._predict(input_features, states, attention_mask)
