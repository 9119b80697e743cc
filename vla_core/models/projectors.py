"""Generic projectors: a linear map and LLaVA's MLP.

They subclass `nn.Linear` / `nn.Sequential` so their parameter names are those of the
reference models (`state_proj.weight` in PI0, `projector.0.weight` / `projector.2.weight`
in LLaVA's `mlp2x_gelu`), and foreign checkpoints load without renaming.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

_ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU, "tanh": nn.Tanh}


class LinearProjector(nn.Linear):
    """A linear projection (..., in_dim) -> (..., out_dim).

    Args:
        in_dim: width of the input features.
        out_dim: width of the output features.
        bias: add a learned bias.
    """

    def __init__(self, in_dim: int, out_dim: int, bias: bool = True) -> None:
        super().__init__(in_dim, out_dim, bias=bias)
        self.in_dim, self.out_dim = in_dim, out_dim


class MLPProjector(nn.Sequential):
    """An MLP (..., in_dim) -> (..., out_dim): Linear, then (activation, Linear) x (num_layers - 1).

    With num_layers=2 and gelu this is LLaVA's `mlp2x_gelu` projector, with its key names.

    Args:
        in_dim: width of the input features.
        out_dim: width of the output features.
        hidden_dim: width of the hidden layers; defaults to out_dim.
        num_layers: number of linear layers (at least 1).
        activation: nonlinearity between the linear layers.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden_dim: int | None = None,
        num_layers: int = 2,
        activation: Literal["gelu", "relu", "silu", "tanh"] = "gelu",
    ) -> None:
        if num_layers < 1:
            raise ValueError(f"MLPProjector needs num_layers >= 1, got {num_layers}.")
        hidden = hidden_dim or out_dim
        widths = [in_dim] + [hidden] * (num_layers - 1) + [out_dim]
        layers: list[nn.Module] = []
        for i in range(num_layers):
            if i > 0:
                layers.append(_ACTIVATIONS[activation]())
            layers.append(nn.Linear(widths[i], widths[i + 1]))
        super().__init__(*layers)
        self.in_dim, self.out_dim = in_dim, out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x)
