"""The FluxVLA-named transformers backbones (vla_core/models/seed_components.py) record the
architecture they read from `vlm_path` / `pretrained_cfg` / `llm_path`, so a checkpoint
rebuilds them once the directory is gone; the generic backbones do the same."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import torch

from vla_core.testing import check_records_architecture

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "vlm"))
import tiny_vlms


def test_siglip_and_qwen2_seed_backbones_rebuild_without_their_directories(tmp_path: Path) -> None:
    import transformers as tf

    torch.manual_seed(0)
    tf.SiglipVisionModel(tf.SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                               num_attention_heads=2, image_size=16, patch_size=8)
                         ).save_pretrained(tmp_path / "siglip")
    tf.Qwen2Model(tf.Qwen2Config(vocab_size=70, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                 num_attention_heads=2, num_key_value_heads=2)).save_pretrained(tmp_path / "qwen2")
    images = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    siglip = str(tmp_path / "siglip")
    for spec in ({"type": "SigLIPViTBackbone", "pretrained_cfg": {"pretrained_model_name_or_path": siglip}},
                 {"type": "TransformersVisionBackbone", "pretrained_name_or_path": siglip}):
        built, rebuilt = check_records_architecture("vision_backbones", spec)
        with torch.no_grad():
            torch.testing.assert_close(rebuilt(images), built(images), atol=0, rtol=0)
    tokens = torch.randint(0, 70, (2, 4), generator=torch.Generator().manual_seed(0))
    mask = torch.ones(2, 4, dtype=torch.bool)
    specs = ({"type": "TransformersLLMBackbone", "pretrained_name_or_path": str(tmp_path / "qwen2")},
             {"type": "Qwen2LLMBackbone", "llm_path": str(tmp_path / "qwen2"), "tokenizer_length": 70})
    for index, spec in enumerate(specs):
        remove = (lambda: shutil.rmtree(tmp_path)) if index == len(specs) - 1 else None
        built, rebuilt = check_records_architecture("llm_backbones", spec, remove)
        with torch.no_grad():
            torch.testing.assert_close(rebuilt(rebuilt.embed_tokens(tokens), mask).features,
                                       built(built.embed_tokens(tokens), mask).features, atol=0, rtol=0)
    assert built.component_spec["llm_config"]["vocab_size"] == 128  # 70 padded to a multiple of 64


def test_qwen2_5_vl_seed_backbone_rebuilds_without_vlm_path(tmp_path: Path) -> None:
    directory = tiny_vlms.build("qwen2_5_vl", tmp_path / "qwen2_5_vl")
    spec = {"type": "QWen2_5VL", "vlm_backbone_id": None, "vlm_path": str(directory), "image_size": [56, 56],
            "max_cameras": 1, "select_layer": 1}
    built, rebuilt = check_records_architecture("vlm_backbones", spec, lambda: shutil.rmtree(directory))
    assert built.component_spec["vlm_path"] is None and built.component_spec["prompt_layout"] is not None
    images = torch.randn(1, 1, 3, 56, 56, generator=torch.Generator().manual_seed(0))
    tokens = torch.tensor([[20, 21, 22]])
    masks = torch.ones(1, 1, dtype=torch.bool), torch.ones(1, 3, dtype=torch.bool)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(images, tokens, *masks).features, built(images, tokens, *masks).features,
                                   atol=0, rtol=0)
