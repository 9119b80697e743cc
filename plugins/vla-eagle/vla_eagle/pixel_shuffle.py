"""Eagle's pixel shuffle: fold each f x f block of neighbouring patches into the channels.

With downsample ratio 0.5 (f = 2) a 16 x 16 grid of 1152-wide patches becomes an 8 x 8
grid of 4608-wide tokens, so an image costs the language model 4x fewer tokens.
"""

from __future__ import annotations

import torch

from vla_core.errors import ConfigError


def shuffle_factor(downsample_ratio: float) -> int:
    """The block side f = 1 / downsample_ratio (0.5 -> 2), which must be a whole number."""
    factor = round(1 / downsample_ratio)
    if factor < 1 or abs(factor * downsample_ratio - 1) > 1e-6:
        raise ConfigError(
            f"is {downsample_ratio}; pixel shuffle needs 1/downsample_ratio to be a whole number "
            "(0.5, 0.25).",
            "downsample_ratio",
        )
    return factor


def pixel_shuffle(patches: torch.Tensor, downsample_ratio: float = 0.5) -> torch.Tensor:
    """patches (N, P, C) on a square grid (P = G*G, row-major) -> (N, P/f^2, C*f^2), f = 1/ratio.

    Output token (r, c) of the (G/f) x (G/f) grid, row-major, holds the patches
    (f*r + a, f*c + b) for a, b in [0, f), concatenated in the order (a, b): the layout
    of Eagle's `pixel_shuffle` (two view/permute steps in the reference), written here
    as one reshape.
    """
    factor = shuffle_factor(downsample_ratio)
    n, p, c = patches.shape
    grid = round(p**0.5)
    if grid * grid != p or grid % factor:
        raise ConfigError(
            f"pixel shuffle needs a square patch grid whose side divides by {factor}; got {p} patches. "
            "Choose image_size / patch_size divisible by 1/downsample_ratio, or set use_pixel_shuffle: false."
        )
    g = grid // factor
    blocks = patches.reshape(n, g, factor, g, factor, c)  # (N, r, a, c_, b, C)
    return blocks.permute(0, 1, 3, 2, 4, 5).reshape(n, g * g, factor * factor * c)
