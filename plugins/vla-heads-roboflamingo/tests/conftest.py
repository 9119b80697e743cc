"""Tiny sizes for the vla-heads-roboflamingo tests (the reference's output MLPs keep their
1024/512/256 widths, so the heads are ~1.4 M parameters even here)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

#: in_features, window and chunk shared by the head tests; out_features 3 -> actions of 4 dims.
TINY: dict[str, Any] = dict(in_features=16, window_size=3, out_features=3, multi_step_action=2)
HEAD_SIZES: dict[str, dict[str, Any]] = {
    "FCDecoder": dict(hidden_size=16),
    "DeterministicDecoder": dict(hidden_size=16, num_layers=2, policy_rnn_dropout_p=0.1),
    "GPTDecoder": dict(hidden_size=16, num_layers=2, n_head=2),
}


@pytest.fixture
def head_kwargs() -> Any:
    """head_kwargs(name, **overrides): a head's tiny constructor arguments."""
    return lambda name, **overrides: {**TINY, **HEAD_SIZES[name], **overrides}


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run fastest on one thread, and a shared CPU makes multi-thread sync slow."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
