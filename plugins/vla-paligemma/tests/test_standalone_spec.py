"""A PaliGemma built from a transformers directory records its architecture, so a checkpoint
rebuilds it once that directory is gone (vla_core.testing.check_records_architecture)."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import torch
from transformers import PaliGemmaConfig, PaliGemmaForConditionalGeneration

from vla_core.testing import check_records_architecture


def test_paligemma_from_a_directory_rebuilds_without_it(tiny: dict, perturb: Any, tmp_path: Path) -> None:
    torch.manual_seed(0)
    reference = PaliGemmaForConditionalGeneration(PaliGemmaConfig.from_dict(copy.deepcopy(tiny["vlm_config"])))
    perturb(reference.eval())
    reference.save_pretrained(tmp_path / "paligemma")
    # the default preset is the 3B model: the directory's config.json must win, and be recorded
    spec = {"type": "PaliGemma", "pretrained_name_or_path": str(tmp_path / "paligemma")}
    built, rebuilt = check_records_architecture("vlm_backbones", spec, lambda: shutil.rmtree(tmp_path / "paligemma"))
    assert built.component_spec["vlm_backbone_id"] is None
    assert built.component_spec["vlm_config"]["text_config"]["hidden_size"] == 64
    g = torch.Generator().manual_seed(0)
    images = torch.rand(2, 1, 3, 32, 32, generator=g) * 2 - 1
    tokens = torch.randint(1, tiny["vocab"], (2, 5), generator=g)
    masks = torch.ones(2, 1, dtype=torch.bool), torch.ones(2, 5, dtype=torch.bool)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(images, tokens, *masks).features, built(images, tokens, *masks).features,
                                   atol=0, rtol=0)
