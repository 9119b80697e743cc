"""OpenVLA's action tokenizer: continuous actions <-> the last `n_bins` token ids of the vocabulary.

Each action dim is clipped to [min_action, max_action] and binned with `n_bins` uniform
bin edges; bin index i in [1, n_bins] (numpy's `digitize`) becomes token
`vocab_size - i`, i.e. the least used tokens at the end of LLaMA's 32000-token
vocabulary. Decoding maps a token back to the centre of its bin interval; the
`n_bins - 1` intervals have `n_bins - 1` centres, so the top index shares the last one.
`vocab_size` is the tokenizer's (32000 for LLaMA-2), not the embedding table's, which
OpenVLA pads to a multiple of 64 (32064).
"""

from __future__ import annotations

import torch

from vla_core.errors import ConfigError


class ActionTokenizer:
    """Discretises actions (..., A) in [-1, 1] to token ids (..., A) and back."""

    def __init__(self, vocab_size: int, n_bins: int = 256, min_action: float = -1.0, max_action: float = 1.0) -> None:
        if n_bins < 2 or n_bins >= vocab_size:
            raise ConfigError(
                f"is {n_bins}, but the action bins must number at least 2 and fewer than the {vocab_size} "
                "tokenizer ids they replace; OpenVLA uses 256.",
                "n_action_bins",
            )
        self.vocab_size, self.n_bins = vocab_size, n_bins
        self.min_action, self.max_action = float(min_action), float(max_action)
        self.bins = torch.linspace(self.min_action, self.max_action, n_bins, dtype=torch.float64)
        self.bin_centers = (self.bins[:-1] + self.bins[1:]) / 2.0

    @property
    def action_token_begin_idx(self) -> int:
        """Token ids strictly greater than this are action tokens (31743 for OpenVLA)."""
        return self.vocab_size - (self.n_bins + 1)

    def encode(self, actions: torch.Tensor) -> torch.Tensor:
        """actions (..., A) float -> token ids (..., A) long in [vocab_size - n_bins, vocab_size - 1]."""
        clipped = actions.detach().to(torch.float64).clamp(self.min_action, self.max_action)
        # bucketize(right=True) == numpy.digitize(right=False): bins[i-1] <= x < bins[i] -> i.
        index = torch.bucketize(clipped, self.bins.to(clipped.device), right=True)
        return (self.vocab_size - index).long()

    def decode(self, token_ids: torch.Tensor) -> torch.Tensor:
        """token ids (..., A) long -> actions (..., A) float32 at bin centres.

        Ids outside the action range clip to the first or last bin, as in the reference.
        """
        index = (self.vocab_size - token_ids.long() - 1).clamp(0, self.bin_centers.numel() - 1)
        return self.bin_centers.to(token_ids.device)[index].float()

    def is_action_token(self, token_ids: torch.Tensor) -> torch.Tensor:
        """(..., L) long -> (..., L) bool, True for ids in the action range."""
        return (token_ids > self.action_token_begin_idx) & (token_ids < self.vocab_size)
