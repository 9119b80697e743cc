"""RoboFlamingo's output MLPs (`MLPTanhHead`, `MLPSigmoidHead`, `MLPNohHead`): the same
layer widths (1024, 512, 256) and module names (`mlp.0`, `mlp.2`, ...) as the reference."""

from __future__ import annotations

import torch
from torch import nn


def _mlp(hidden_size: int, output_size: int, last: list[nn.Module]) -> nn.Sequential:
    """hidden -> 1024 -> 512 -> 256 -> output with ReLUs, then `last` (an activation or nothing)."""
    return nn.Sequential(
        nn.Linear(hidden_size, 1024),
        nn.ReLU(),
        nn.Linear(1024, 512),
        nn.ReLU(),
        nn.Linear(512, 256),
        nn.ReLU(),
        nn.Linear(256, output_size),
        *last,
    )


class MLPNohHead(nn.Module):
    """(..., hidden_size) -> (..., output_size), no output activation (the state encoder)."""

    def __init__(self, hidden_size: int, output_size: int) -> None:
        super().__init__()
        self.mlp = _mlp(hidden_size, output_size, [])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x)


class MLPTanhHead(nn.Module):
    """(..., hidden_size) -> (..., output_size) in (-1, 1): the arm action."""

    def __init__(self, hidden_size: int, output_size: int) -> None:
        super().__init__()
        self.mlp = _mlp(hidden_size, output_size, [nn.Tanh()])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x)


class MLPSigmoidHead(nn.Module):
    """(..., hidden_size) -> (..., output_size) probabilities: the gripper.

    `logits` skips the final sigmoid, so the loss can use the numerically stable
    `binary_cross_entropy_with_logits` (the same function as the reference's sigmoid + BCE)."""

    def __init__(self, hidden_size: int, output_size: int) -> None:
        super().__init__()
        self.mlp = _mlp(hidden_size, output_size, [nn.Sigmoid()])

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp[:-1](x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x)
