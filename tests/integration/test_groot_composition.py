"""GR00T N1.5 composed by config from two plugins: LlavaVLA + EagleBackbone (vla-eagle) +
FlowMatchingHead (vla-heads-flow), from configs/groot_n15_tiny.yaml.

Neither plugin imports the other; this test is where they meet.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vla_core import load_config
from vla_core.models import build_vla, load_into, load_pretrained
from vla_core.testing import make_tiny_batch

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "groot_n15_tiny.yaml"


@pytest.fixture(scope="module")
def run_config():
    return load_config(CONFIG)


def groot_batch(seed: int = 0) -> dict:
    # 2 cameras at 56 px, a word-level prompt (ids < 255, the unused placeholder id), state 8,
    # action chunk 8 x 7: the sizes of groot_n15_tiny.yaml.
    return make_tiny_batch(batch_size=2, num_cameras=2, image_size=56, seq_len=6, vocab_size=255,
                           state_dim=8, action_dim=7, chunk_size=8, seed=seed)


def test_builds_the_groot_composition(run_config) -> None:
    torch.manual_seed(0)
    vla = build_vla(run_config.model)
    assert type(vla).__name__ == "LlavaVLA"
    assert type(vla.vlm_backbone).__name__ == "EagleBackbone"
    assert type(vla.vla_head).__name__ == "FlowMatchingHead"
    assert vla.vlm_backbone.hidden_size == vla.vla_head.backbone_embedding_dim == 96
    assert vla.projector is None  # GR00T N1.5: backbone features go straight to vlln
    # tune_llm: false, tune_visual: true, as the released GR00T N1.5 was fine-tuned.
    assert not any(p.requires_grad for p in vla.vlm_backbone.eagle_model.language_model.parameters())
    assert all(p.requires_grad for p in vla.vlm_backbone.eagle_model.mlp1.parameters())


def test_one_training_step_updates_the_tuned_parts(run_config) -> None:
    torch.manual_seed(0)
    vla = build_vla(run_config.model).train()
    before = {k: v.detach().clone() for k, v in vla.named_parameters()}
    optimizer = torch.optim.AdamW([p for p in vla.parameters() if p.requires_grad], lr=1e-3)
    batch = groot_batch()

    out = vla(**batch)
    assert out["loss"].ndim == 0 and torch.isfinite(out["loss"])
    assert out["pred_actions"].shape == (2, 8, 7)
    out["loss"].backward()
    optimizer.step()

    after = dict(vla.named_parameters())
    changed = {k for k in before if not torch.equal(before[k], after[k].detach())}
    assert "vlm_backbone.eagle_model.mlp1.0.weight" in changed
    assert "vlm_backbone.eagle_model.vision_model.vision_model.embeddings.patch_embedding.weight" in changed
    assert any(k.startswith("vla_head.model.") for k in changed)
    assert not any(k.startswith("vlm_backbone.eagle_model.language_model.") for k in changed)


def test_inference_twin_and_checkpoint_round_trip(run_config, tmp_path) -> None:
    torch.manual_seed(0)
    vla = build_vla(run_config.model).eval()
    batch = groot_batch(seed=1)
    obs = {k: batch[k] for k in ("images", "lang_tokens", "lang_masks", "img_masks", "states")}
    noise = torch.randn(2, 8, 7, generator=torch.Generator().manual_seed(2))
    expected = vla.predict_action(**obs, noise=noise)
    assert expected.shape == (2, 8, 7) and torch.isfinite(expected).all()

    twin = build_vla(run_config.inference_model)
    load_into(twin, vla.state_dict())  # strict: the same parameter names
    torch.testing.assert_close(twin.eval().predict_action(**obs, noise=noise), expected, rtol=1e-5, atol=1e-5)

    vla.save_pretrained(tmp_path / "groot", extra_config={"inference_model": run_config.inference_model})
    loaded = load_pretrained(tmp_path / "groot")
    assert type(loaded.vla_head).__name__ == "FlowMatchingInferenceHead"
    torch.testing.assert_close(loaded.predict_action(**obs, noise=noise), expected, rtol=1e-5, atol=1e-5)


def test_loads_a_groot_layout_checkpoint_with_both_prefixes(run_config, tmp_path) -> None:
    from safetensors.torch import save_file

    torch.manual_seed(3)
    source = build_vla(run_config.model)
    renamed = {("backbone" + k[len("vlm_backbone"):] if k.startswith("vlm_backbone.")
                else "action_head" + k[len("vla_head"):]): v.contiguous()
               for k, v in source.state_dict().items()
               if not k.endswith("language_model.lm_head.weight")}  # tied: stored once, like GR00T's embed
    save_file(renamed, str(tmp_path / "model.safetensors"))

    spec = {**run_config.model, "pretrained_name_or_path": str(tmp_path),
            "name_mapping": {"vlm_backbone": "backbone", "vla_head": "action_head"}}
    loaded = build_vla(spec)
    assert loaded.load_report.ok and loaded.load_report.ignored == 0
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
