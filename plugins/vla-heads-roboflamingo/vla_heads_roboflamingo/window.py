"""Frames of a window: pooling each frame's tokens, and moving padded frames out of the way.

A window from the data is (B, T_obs, ...) with `obs_masks` (B, T_obs), False for frames
before the episode start (lerobot clamps them to the first frame). Online, the policy sees
only the real frames of an episode. So that a window with padding gives exactly what the
online policy computes, the real frames are moved to the front (in order) and the output
is read at the last real frame: a causal decoder (LSTM, causal GPT) never looks past it.
"""

from __future__ import annotations

from typing import Literal

import torch


def pool_frame(features: torch.Tensor, mask: torch.Tensor, pooling: Literal["max", "mean"]) -> torch.Tensor:
    """(N, S, D) token features, (N, S) bool valid -> (N, D): the max (RoboFlamingo's
    `global_1d_pool`, an AdaptiveMaxPool1d over tokens) or mean over the valid tokens only.
    A frame without valid tokens pools to zeros."""
    valid = mask.bool().unsqueeze(-1)
    if pooling == "max":
        lowest = torch.finfo(features.dtype).min
        pooled = features.masked_fill(~valid, lowest).amax(dim=1)
        return torch.where(valid.any(dim=1), pooled, torch.zeros_like(pooled))
    count = valid.sum(dim=1).clamp(min=1).to(features.dtype)
    return (features * valid.to(features.dtype)).sum(dim=1) / count


def real_frames_first(frames: torch.Tensor, obs_masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, W, D) frames, (B, W) bool real -> the same frames with the real ones first (in
    their order, padded ones after), and (B,) long the index of the last real frame."""
    order = torch.argsort((~obs_masks.bool()).to(torch.int8), dim=1, stable=True)  # real (0) before padded (1)
    aligned = torch.gather(frames, 1, order.unsqueeze(-1).expand_as(frames))
    last = (obs_masks.bool().sum(dim=1) - 1).clamp(min=0)
    return aligned, last


def at_index(outputs: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """(B, W, H) per-frame outputs, (B,) long -> (B, H): each row's output at its index."""
    return torch.gather(outputs, 1, index.view(-1, 1, 1).expand(-1, 1, outputs.shape[-1])).squeeze(1)
