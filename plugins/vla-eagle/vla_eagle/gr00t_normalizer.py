"""GR00T's per-key state/action normalisation (Isaac-GR00T `gr00t/data/transform/state_action.py`,
`Normalizer.forward` / `Normalizer.inverse`), step for step and in the same operation order.

    min_max   2 (x - min) / (max - min) - 1; a constant feature (min == max) -> 0; not clipped
    q99       2 (x - q01) / (q99 - q01) - 1, then clipped to [-1, 1]; q01 == q99 keeps x (then clipped)
    mean_std  (x - mean) / std; std == 0 keeps x
    binary    x > 0.5 (0 or 1), both ways
    none      unchanged (a key GR00T's data config leaves out of `normalization_modes`)

Computed in the input's floating dtype with the statistics cast to it, as the reference does
(states arrive as float64 arrays; actions leave the model as float32).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

GR00TNorm = Literal["min_max", "q99", "mean_std", "binary", "none"]
GR00T_NORMS: tuple[str, ...] = ("min_max", "q99", "mean_std", "binary", "none")
#: The statistics each mode reads.
REQUIRED_STATS: dict[str, tuple[str, ...]] = {
    "min_max": ("min", "max"), "q99": ("q01", "q99"), "mean_std": ("mean", "std"), "binary": (), "none": (),
}


def _stat(stats: dict[str, np.ndarray], name: str, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(stats[name]).to(like.dtype)


def _scaled(x: torch.Tensor, low: torch.Tensor, high: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """2 (x - low) / (high - low) - 1 where `keep`, zeros elsewhere (the reference's masked assignment)."""
    out = torch.zeros_like(x)
    out[..., keep] = (x[..., keep] - low[keep]) / (high[keep] - low[keep])
    out[..., keep] = 2 * out[..., keep] - 1
    return out


def normalize(x: torch.Tensor, mode: str, stats: dict[str, np.ndarray]) -> torch.Tensor:
    """(..., dim) robot units -> (..., dim) normalised by `mode` with this key's statistics."""
    if mode == "min_max":
        low, high = _stat(stats, "min", x), _stat(stats, "max", x)
        keep = low != high
        out = _scaled(x, low, high, keep)
        out[..., ~keep] = 0  # the reference sets a constant feature to 0
        return out
    if mode == "q99":
        low, high = _stat(stats, "q01", x), _stat(stats, "q99", x)
        keep = low != high
        out = _scaled(x, low, high, keep)
        out[..., ~keep] = x[..., ~keep]
        return torch.clamp(out, -1, 1)
    if mode == "mean_std":
        mean, std = _stat(stats, "mean", x), _stat(stats, "std", x)
        keep = std != 0
        out = torch.zeros_like(x)
        out[..., keep] = (x[..., keep] - mean[keep]) / std[keep]
        out[..., ~keep] = x[..., ~keep]
        return out
    if mode == "binary":
        return (x > 0.5).to(x.dtype)
    if mode == "none":
        return x
    raise ValueError(f"unknown GR00T normalisation mode '{mode}' (one of {', '.join(GR00T_NORMS)})")


def unnormalize(x: torch.Tensor, mode: str, stats: dict[str, np.ndarray]) -> torch.Tensor:
    """(..., dim) normalised -> (..., dim) robot units (`Normalizer.inverse`)."""
    if mode == "min_max":
        low, high = _stat(stats, "min", x), _stat(stats, "max", x)
        return (x + 1) / 2 * (high - low) + low
    if mode == "q99":
        low, high = _stat(stats, "q01", x), _stat(stats, "q99", x)
        return (x + 1) / 2 * (high - low) + low
    if mode == "mean_std":
        return x * _stat(stats, "std", x) + _stat(stats, "mean", x)
    if mode == "binary":
        return (x > 0.5).to(x.dtype)
    if mode == "none":
        return x
    raise ValueError(f"unknown GR00T normalisation mode '{mode}' (one of {', '.join(GR00T_NORMS)})")
