"""Our one-reshape pixel shuffle against Eagle's two view/permute steps (conftest.eagle_pixel_shuffle)."""

from __future__ import annotations

import pytest
import torch
from vla_eagle.pixel_shuffle import pixel_shuffle

from vla_core.errors import ConfigError


@pytest.mark.parametrize(("grid", "scale"), [(4, 0.5), (16, 0.5), (8, 0.25)])
def test_matches_eagle_reference(grid: int, scale: float, reference_pixel_shuffle) -> None:
    patches = torch.randn(3, grid * grid, 6, generator=torch.Generator().manual_seed(grid))
    ours = pixel_shuffle(patches, scale)
    factor = round(1 / scale)
    assert ours.shape == (3, grid * grid // factor**2, 6 * factor**2)
    torch.testing.assert_close(ours, reference_pixel_shuffle(patches, scale), rtol=0, atol=0)


def test_block_layout_is_row_then_column_offsets() -> None:
    # Patch values = their (row, col) so the folded layout can be read off.
    rows, cols = torch.meshgrid(torch.arange(4.0), torch.arange(4.0), indexing="ij")
    patches = torch.stack([rows, cols], dim=-1).reshape(1, 16, 2)
    token = pixel_shuffle(patches, 0.5)[0, 1]  # output grid (0, 1): patches rows 0-1, cols 2-3
    assert token.tolist() == [0, 2, 0, 3, 1, 2, 1, 3]


def test_rejects_grids_it_cannot_fold() -> None:
    with pytest.raises(ConfigError, match="square patch grid"):
        pixel_shuffle(torch.randn(1, 12, 4), 0.5)
    with pytest.raises(ConfigError, match="divides by 2"):
        pixel_shuffle(torch.randn(1, 9, 4), 0.5)
    with pytest.raises(ConfigError, match="whole number"):
        pixel_shuffle(torch.randn(1, 16, 4), 0.3)
