"""Pooling a feature sequence to one vector per row, over its valid positions only."""

from __future__ import annotations

from typing import Literal

import torch

Pooling = Literal["mean", "last"]


def masked_mean(features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over valid positions: features (B, S, D), mask (B, S) bool -> (B, D)."""
    weights = mask.to(features.dtype).unsqueeze(-1)
    return (features * weights).sum(1) / weights.sum(1).clamp(min=1.0)


def last_valid(features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The feature at the last valid position of each row: (B, S, D), (B, S) -> (B, D)."""
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    last = torch.where(mask, positions, torch.zeros_like(positions)).amax(dim=1)
    return features[torch.arange(features.shape[0], device=features.device), last]


def pool(features: torch.Tensor, mask: torch.Tensor, pooling: Pooling) -> torch.Tensor:
    """(B, S, D), (B, S) -> (B, D): the "mean" over valid positions or the "last" valid one."""
    return (masked_mean if pooling == "mean" else last_valid)(features, mask.bool())
