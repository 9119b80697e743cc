"""An EagleBackbone whose architecture came from FluxVLA's `vlm_path` (an Eagle 2.5 directory's
config.json) records it, so a checkpoint rebuilds it once that directory is gone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from vla_core.testing import check_records_architecture


def test_eagle_from_vlm_path_rebuilds_without_it(tiny_kwargs: Any, tmp_path: Path) -> None:
    tiny = tiny_kwargs()
    vision, text, image_token = tiny["vision_config"], tiny["text_config"], tiny["image_token_id"]
    directory = tmp_path / "eagle"
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps({
        "architectures": ["Eagle2_5_VLForConditionalGeneration"],
        "vision_config": {"model_type": "siglip_vision_model", **vision},
        "text_config": {"model_type": "qwen3", "architectures": ["Qwen3ForCausalLM"], **text},
    }))
    spec = {"type": "EagleBackbone", "vlm_path": str(directory), "select_layer": 2, "image_token_id": image_token}
    built, rebuilt = check_records_architecture("vlm_backbones", spec, lambda: shutil.rmtree(directory))
    assert built.component_spec["preset"] is None  # the GR00T N1.5 preset no longer fills anything in
    assert built.component_spec["text_config"]["hidden_size"] == text["hidden_size"]
    g = torch.Generator().manual_seed(0)
    images = torch.randn(1, 1, 3, 28, 28, generator=g)
    tokens = torch.tensor([[image_token] * 16 + [5, 6, 7]])
    masks = torch.ones(1, 1, dtype=torch.bool), torch.ones(1, 19, dtype=torch.bool)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(images, tokens, *masks).features, built(images, tokens, *masks).features,
                                   atol=0, rtol=0)
