"""ActionTokenizer against OpenVLA's numpy ActionTokenizer (its formulas, written out here)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from vla_openvla.action_tokenizer import ActionTokenizer

from vla_core.errors import ConfigError


def reference_encode(actions: np.ndarray, vocab_size: int, n_bins: int = 256) -> np.ndarray:
    bins = np.linspace(-1, 1, n_bins)
    return vocab_size - np.digitize(np.clip(actions, -1.0, 1.0), bins)


def reference_decode(token_ids: np.ndarray, vocab_size: int, n_bins: int = 256) -> np.ndarray:
    bins = np.linspace(-1, 1, n_bins)
    centers = (bins[:-1] + bins[1:]) / 2.0
    return centers[np.clip(vocab_size - token_ids - 1, 0, centers.shape[0] - 1)]


@pytest.fixture
def actions() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    values = torch.rand(64, 7, generator=g, dtype=torch.float64) * 2.4 - 1.2  # some outside [-1, 1]
    edges = torch.tensor([[-1.0, 1.0, 0.0, -1.5, 1.5, 1.0 - 1e-9, -1.0 + 1e-9]], dtype=torch.float64)
    bins = torch.linspace(-1, 1, 256, dtype=torch.float64)[None, 1:8]  # exactly on bin edges
    return torch.cat([values, edges, bins])


def test_encode_matches_openvla(actions):
    tokenizer = ActionTokenizer(vocab_size=32000)
    got = tokenizer.encode(actions)
    np.testing.assert_array_equal(got.numpy(), reference_encode(actions.numpy(), 32000))
    assert got.min() >= 32000 - 256 and got.max() <= 31999
    assert tokenizer.action_token_begin_idx == 31743  # OFT's ACTION_TOKEN_BEGIN_IDX


def test_decode_matches_openvla_including_out_of_range_ids():
    tokenizer = ActionTokenizer(vocab_size=32000)
    ids = torch.arange(31700, 32064).reshape(-1, 4)  # below the action range and into the padded vocab
    np.testing.assert_allclose(tokenizer.decode(ids).numpy(), reference_decode(ids.numpy(), 32000), rtol=0, atol=1e-7)


def test_round_trip_is_within_half_a_bin(actions):
    tokenizer = ActionTokenizer(vocab_size=320)
    clipped = actions.clamp(-1, 1)
    error = (tokenizer.decode(tokenizer.encode(actions)).double() - clipped).abs().max().item()
    assert error <= 1.0 / 255 + 1e-6  # half of the bin width 2 / 255
    assert tokenizer.is_action_token(tokenizer.encode(actions)).all()
    assert not tokenizer.is_action_token(torch.tensor([63, 320, 5])).any()


def test_too_many_bins_for_the_vocabulary_is_a_config_error():
    with pytest.raises(ConfigError, match="n_action_bins"):
        ActionTokenizer(vocab_size=200, n_bins=256)
