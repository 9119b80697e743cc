"""Adaptive RMSNorm (adaRMS): pi0.5's way of feeding the flow-matching time to the expert.

A plain Gemma RMSNorm scales by a learned `(1 + weight)`. The adaptive one has no weight:
a linear layer (`dense`, the key name openpi uses) maps the conditioning vector to a
per-channel scale, shift and gate; the gate multiplies the residual branch that follows
(`x + y * gate`). With the time embedding as conditioning, time enters the expert only
through these norms.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class AdaptiveRMSNorm(nn.Module):
    """RMSNorm modulated by a conditioning vector.

    Args:
        dim: width of the normalised features.
        cond_dim: width of the conditioning vector.
        eps: added to the mean square for stability.
    """

    def __init__(self, dim: int, cond_dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.dim, self.cond_dim, self.eps = dim, cond_dim, eps
        self.dense = nn.Linear(cond_dim, 3 * dim)
        # Zero weights start every norm at scale 1 + bias, as openpi initialises it.
        nn.init.zeros_(self.dense.weight)

    def modulation(self, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """cond (B, cond_dim) -> scale, shift, gate, each (B, 1, dim)."""
        scale, shift, gate = self.dense(cond)[:, None, :].chunk(3, dim=-1)
        return scale, shift, gate

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, S, dim), cond (B, cond_dim) -> (normalised x (B, S, dim), gate (B, 1, dim))."""
        scale, shift, gate = self.modulation(cond)
        normed = F.rms_norm(x.float(), (self.dim,), eps=self.eps)
        normed = torch.addcmul(shift.float(), normed, 1.0 + scale.float())
        return normed.to(x.dtype), gate.to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.dim}, cond_dim={self.cond_dim}, eps={self.eps}"


def normalize(
    norm: nn.Module, x: torch.Tensor, cond: torch.Tensor | None, scale: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Apply a Gemma RMSNorm (`weight`, `eps`) or an adaptive one -> (normalised x, gate or None).

    Gemma's norm is computed as transformers does: in float32, scaled by `1 + weight`
    (pass that as `scale` when it is precomputed).
    """
    if isinstance(norm, AdaptiveRMSNorm):
        if cond is None:
            raise ValueError("this layer uses adaptive RMSNorm (pi0.5) and needs a conditioning vector; pass cond=")
        return norm(x, cond)
    scale = 1.0 + norm.weight.float() if scale is None else scale
    return F.rms_norm(x.float(), (x.shape[-1],), scale, norm.eps).type_as(x), None


def gated_residual(x: torch.Tensor, y: torch.Tensor, gate: torch.Tensor | None) -> torch.Tensor:
    """x + y, or x + y * gate after an adaptive norm."""
    return x + y if gate is None else x + y * gate
