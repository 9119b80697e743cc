"""The shipped tiny configs build, train one step and predict."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import vla_core
from vla_core.testing import make_tiny_batch

CONFIGS = Path(__file__).resolve().parents[3] / "configs"


@pytest.mark.parametrize("name", ["pi0_tiny.yaml", "pi05_tiny.yaml"])
def test_tiny_config_trains_and_predicts(name: str) -> None:
    config = vla_core.load_config(CONFIGS / name)
    torch.manual_seed(0)
    vla = vla_core.build_vla(config.model)
    batch = make_tiny_batch(batch_size=2, image_size=32, seq_len=6, vocab_size=200, state_dim=8, action_dim=7,
                            chunk_size=8)
    loss = vla(**batch)["loss"]
    loss.backward()
    assert torch.isfinite(loss)
    actions = vla.eval().predict_action(**{k: batch[k] for k in ("images", "lang_tokens", "lang_masks", "img_masks",
                                                                  "states")})
    assert actions.shape == (2, 8, 7) and torch.isfinite(actions).all()
    if name == "pi05_tiny.yaml":
        assert vla.state_token_offset == 256
