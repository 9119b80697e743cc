"""pi0.5's `discrete_state_input: token_ids` variant (not the reference): one token per state dimension.

openpi writes the state into the prompt as the text of its bin indices (`np.digitize` over
256 equal bins of [-1, 1]; see `openpi_tokenizer.py`, the default). This variant maps the
bins straight to token ids `offset + bin` appended after the prompt, for processors whose
tokenizer cannot write numbers (the word-level tokenizer of the tiny configs).
"""

from __future__ import annotations

import torch


def discretize_state(states: torch.Tensor, num_bins: int = 256) -> torch.Tensor:
    """states (B, S) normalised to [-1, 1] -> (B, S) long bin indices in [0, num_bins).

    Same as openpi's `np.digitize(state, np.linspace(-1, 1, num_bins + 1)[:-1]) - 1`, with
    values outside [-1, 1] clamped to the end bins.
    """
    edges = torch.linspace(-1.0, 1.0, num_bins + 1, device=states.device)[:-1]
    bins = torch.bucketize(states.float().contiguous(), edges, right=True) - 1
    return bins.clamp(0, num_bins - 1)


def state_token_ids(states: torch.Tensor, offset: int, num_bins: int = 256) -> torch.Tensor:
    """states (B, S) -> token ids (B, S) long: `offset + bin`."""
    return discretize_state(states, num_bins) + offset
