"""Packaging: listed without torch, light top-level package, the tiny configs build and run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import vla_core
from vla_core.testing import assert_plugin_is_light, make_tiny_batch

CONFIGS = Path(__file__).resolve().parents[3] / "configs"


def test_plugin_is_light():
    assert_plugin_is_light("vla-openvla")


def test_components_are_listed():
    listed = {(row.kind, row.name) for row in vla_core.list_components() if row.package == "vla-openvla"}
    assert listed == {("vlas", "OpenVLA"), ("vlas", "OpenVLAOFT"), ("vision_backbones", "PrismaticVisionBackbone"),
                      ("projectors", "PrismaticProjector"), ("heads", "L1RegressionActionHead"),
                      # FluxVLA's names for the same parts (seed_components.py)
                      ("vision_backbones", "DinoSigLIPViTBackbone"), ("llm_backbones", "LLaMa2LLMBackbone"),
                      ("projectors", "FusedMLPProjector"), ("heads", "OpenVLAHead"),
                      ("processors", "OpenVLAProcessor")}


@pytest.mark.parametrize(("name", "chunk"), [("openvla_tiny.yaml", 1), ("openvla_oft_tiny.yaml", 8)])
def test_tiny_config_builds_trains_and_predicts(name, chunk):
    config = vla_core.load_config(CONFIGS / name)
    torch.manual_seed(0)
    vla = vla_core.build_vla(config.model)
    batch = make_tiny_batch(batch_size=2, image_size=32, seq_len=6, vocab_size=60, state_dim=8, action_dim=7,
                            chunk_size=chunk)
    loss = vla(**batch)["loss"]
    loss.backward()
    assert torch.isfinite(loss)
    obs = {k: batch[k] for k in ("images", "lang_tokens", "lang_masks", "img_masks", "states")}
    assert vla.eval().predict_action(**obs).shape == (2, chunk, 7)
    # `vla build --predict` shapes its random observation from config.image_size.
    from vla_core.models.summary import random_observation

    assert vla.predict_action(**random_observation(vla)).shape == (1, chunk, 7)
