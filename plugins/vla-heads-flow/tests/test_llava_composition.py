"""The heads inside a whole VLA built from core components only (configs/*_head_tiny.yaml):
training step, embodiment ids from the batch, checkpoint round trip into the inference twin."""

from __future__ import annotations

from pathlib import Path

import torch

from vla_core import load_config
from vla_core.models import build_vla, load_pretrained
from vla_core.testing import make_tiny_batch

CONFIGS = Path(__file__).resolve().parents[3] / "configs"


def batch(seed: int = 0) -> dict:
    return make_tiny_batch(batch_size=2, image_size=64, seq_len=6, vocab_size=256, state_dim=8, action_dim=7,
                           chunk_size=8, seed=seed)


def observation(b: dict) -> dict:
    return {k: b[k] for k in ("images", "lang_tokens", "lang_masks", "img_masks", "states")}


def test_flow_head_trains_and_its_checkpoint_loads_into_the_inference_twin(tmp_path):
    config = load_config(CONFIGS / "groot_n15_head_tiny.yaml")
    torch.manual_seed(0)
    vla = build_vla(config.model).train()
    out = vla(**batch())
    assert torch.isfinite(out["loss"]) and out["pred_actions"].shape == (2, 8, 7)
    out["loss"].backward()
    assert vla.vla_head.model.proj_out_2.weight.grad.abs().sum() > 0
    assert vla.llm_backbone.model.layers[0].self_attn.q_proj.weight.grad.abs().sum() > 0

    vla.eval()
    obs, noise = observation(batch(1)), torch.randn(2, 8, 7, generator=torch.Generator().manual_seed(2))
    expected = vla.predict_action(**obs, noise=noise, embodiment_id=torch.tensor([1, 1]))
    assert not torch.allclose(expected, vla.predict_action(**obs, noise=noise))  # embodiment 0 by default

    vla.save_pretrained(tmp_path / "ckpt", extra_config={"inference_model": config.inference_model})
    fast = load_pretrained(tmp_path / "ckpt")
    assert type(fast.vla_head).__name__ == "FlowMatchingInferenceHead"
    got = fast.predict_action(**obs, noise=noise, embodiment_id=torch.tensor([1, 1]))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_diffusion_head_trains_and_samples_reproducibly(tmp_path):
    config = load_config(CONFIGS / "diffusion_head_tiny.yaml")
    torch.manual_seed(0)
    vla = build_vla(config.model).train()
    out = vla(**batch())
    assert torch.isfinite(out["loss"])
    out["loss"].backward()
    assert vla.vla_head.noise_predictor.mlp_resnet.fc1.weight.grad.abs().sum() > 0

    vla.eval()
    obs, noise = observation(batch(1)), torch.randn(2, 8, 7, generator=torch.Generator().manual_seed(2))
    expected = vla.predict_action(**obs, noise=noise)
    vla.save_pretrained(tmp_path / "ckpt")
    torch.testing.assert_close(load_pretrained(tmp_path / "ckpt").predict_action(**obs, noise=noise), expected)
