"""Prismatic's projectors, with the key names of the OpenVLA Hugging Face checkpoints.

"fused-gelu-mlp" (OpenVLA, fused DinoSigLIP features):
    fc1: in -> 4*in, GELU, fc2: 4*in -> out, GELU, fc3: out -> out
"gelu-mlp" (single-encoder Prismatic models; also OpenVLA-OFT's `ProprioProjector`,
which is the same fc1/GELU/fc2 map from the robot state to the LLM width):
    fc1: in -> out, GELU, fc2: out -> out
"linear":
    fc1: in -> out
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

ProjectorArch = Literal["fused-gelu-mlp", "gelu-mlp", "linear"]


class PrismaticProjector(nn.Module):
    """Maps vision features to the LLM width: (..., in_dim) -> (..., out_dim).

    Args:
        in_dim: width of the vision features (2176 for DinoSigLIP) or of the robot state.
        out_dim: width of the language model (4096 for LLaMA-2 7B).
        arch: "fused-gelu-mlp" (OpenVLA), "gelu-mlp" (single encoder; OFT's proprio projector) or "linear".
    """

    def __init__(self, in_dim: int, out_dim: int, arch: ProjectorArch = "fused-gelu-mlp") -> None:
        super().__init__()
        self.in_dim, self.out_dim, self.arch = in_dim, out_dim, arch
        if arch == "fused-gelu-mlp":
            self.fc1 = nn.Linear(in_dim, 4 * in_dim, bias=True)
            self.fc2 = nn.Linear(4 * in_dim, out_dim, bias=True)
            self.fc3 = nn.Linear(out_dim, out_dim, bias=True)
            self.act_fn1, self.act_fn2 = nn.GELU(), nn.GELU()
        elif arch == "gelu-mlp":
            self.fc1 = nn.Linear(in_dim, out_dim, bias=True)
            self.fc2 = nn.Linear(out_dim, out_dim, bias=True)
            self.act_fn1 = nn.GELU()
        else:
            self.fc1 = nn.Linear(in_dim, out_dim, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., in_dim) -> (..., out_dim)."""
        x = self.fc1(x)
        if self.arch == "linear":
            return x
        x = self.fc2(self.act_fn1(x))
        if self.arch == "fused-gelu-mlp":
            x = self.fc3(self.act_fn2(x))
        return x
