"""Per-embodiment layers: one weight matrix per robot, picked by `embodiment_id`.

GR00T trains one model on many robots; the state encoder, the action encoder and the
action decoder keep a separate linear map per embodiment (`W` (E, in, out), `b` (E, out)),
so key names and shapes are those of GR00T's `CategorySpecificLinear` / `CategorySpecificMLP`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vla_core.errors import DataError


def resolve_embodiment_ids(
    embodiment_id: Any, batch_size: int, num_embodiments: int, device: torch.device
) -> torch.Tensor:
    """The batch's embodiment ids as a (B,) long tensor; absent means embodiment 0.

    Accepts None, an int, or a tensor of shape () / (B,). Raises DataError when an id is
    outside [0, num_embodiments) or the shape does not match the batch.
    """
    if embodiment_id is None:
        return torch.zeros(batch_size, dtype=torch.long, device=device)
    ids = torch.as_tensor(embodiment_id, device=device)
    if ids.is_floating_point() or ids.dtype == torch.bool:
        raise DataError(
            f"embodiment_id must be an integer tensor, got dtype {ids.dtype}; pass a (B,) long tensor "
            "with one embodiment index per batch row."
        )
    ids = ids.long().reshape(-1)
    if ids.numel() == 1 and batch_size != 1:
        ids = ids.expand(batch_size)
    if ids.numel() != batch_size:
        raise DataError(
            f"embodiment_id has {ids.numel()} entries for a batch of {batch_size}; pass a (B,) tensor "
            "with one embodiment index per batch row (or a single int for the whole batch)."
        )
    low, high = int(ids.min()), int(ids.max())
    if low < 0 or high >= num_embodiments:
        bad = low if low < 0 else high
        raise DataError(
            f"embodiment_id {bad} is out of range: this head has max_num_embodiments={num_embodiments}, "
            f"so ids must be in [0, {num_embodiments - 1}]. Fix the embodiment id in the dataset's "
            "embodiment spec, or build the head with a larger max_num_embodiments."
        )
    return ids


class CategorySpecificLinear(nn.Module):
    """A linear map with one weight per category: (B, L, in) -> (B, L, out).

    Args:
        num_categories: number of embodiments E.
        input_dim: input width.
        hidden_dim: output width.
    """

    def __init__(self, num_categories: int, input_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.num_categories = num_categories
        self.W = nn.Parameter(0.02 * torch.randn(num_categories, input_dim, hidden_dim))
        self.b = nn.Parameter(torch.zeros(num_categories, hidden_dim))

    def forward(self, x: torch.Tensor, cat_ids: torch.Tensor) -> torch.Tensor:
        """x (B, L, in), cat_ids (B,) long -> (B, L, out)."""
        return torch.bmm(x, self.W[cat_ids]) + self.b[cat_ids].unsqueeze(1)


class CategorySpecificMLP(nn.Module):
    """Two category-specific linear maps with a ReLU between: (B, L, in) -> (B, L, out).

    Args:
        num_categories: number of embodiments E.
        input_dim: input width.
        hidden_dim: hidden width.
        output_dim: output width.
    """

    def __init__(self, num_categories: int, input_dim: int, hidden_dim: int, output_dim: int) -> None:
        super().__init__()
        self.num_categories = num_categories
        self.layer1 = CategorySpecificLinear(num_categories, input_dim, hidden_dim)
        self.layer2 = CategorySpecificLinear(num_categories, hidden_dim, output_dim)

    def forward(self, x: torch.Tensor, cat_ids: torch.Tensor) -> torch.Tensor:
        """x (B, L, in), cat_ids (B,) -> (B, L, out)."""
        return self.layer2(F.relu(self.layer1(x, cat_ids)), cat_ids)
