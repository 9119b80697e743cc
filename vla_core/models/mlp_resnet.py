"""OpenVLA-OFT's MLP-ResNet (prismatic/models/action_heads.py), with its key names.

Shared by the heads that use it (vla-heads-flow's DiffusionActionHead, vla-openvla's
L1RegressionActionHead), so both load OFT's weights the same way.

    x = ReLU(fc1(LN(x)));  x = x + ReLU(Linear(LN(x))) per block;  out = fc2(LN(x))
"""

from __future__ import annotations

import torch
from torch import nn


class MLPResNetBlock(nn.Module):
    """Pre-LayerNorm residual MLP block: x + ReLU(Linear(LN(x))).

    Args:
        dim: width.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.ffn = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.ffn(x)


class MLPResNet(nn.Module):
    """(..., input_dim) -> (..., output_dim) through `num_blocks` residual blocks.

    Args:
        num_blocks: residual blocks (OFT: 2).
        input_dim: input width.
        hidden_dim: width of the blocks.
        output_dim: output width.
    """

    def __init__(self, num_blocks: int, input_dim: int, hidden_dim: int, output_dim: int) -> None:
        super().__init__()
        self.layer_norm1 = nn.LayerNorm(input_dim)
        self.fc1 = nn.Linear(input_dim, hidden_dim)
        self.relu = nn.ReLU()
        self.mlp_resnet_blocks = nn.ModuleList(MLPResNetBlock(hidden_dim) for _ in range(num_blocks))
        self.layer_norm2 = nn.LayerNorm(hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.fc1(self.layer_norm1(x)))
        for block in self.mlp_resnet_blocks:
            x = block(x)
        return self.fc2(self.layer_norm2(x))
