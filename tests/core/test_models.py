"""Generic models: LlavaVLA compositions, MLP head contract, projectors, freezing, pretrained loading."""

from __future__ import annotations

import pytest
import torch

import vla_core
from vla_core.errors import ConfigError, VLAError
from vla_core.models import LinearProjector, MLPActionHead, MLPProjector
from vla_core.models.pooling import last_valid, masked_mean
from vla_core.protocols import ActionHead, Projector
from vla_core.testing import check_action_head, make_tiny_batch, tiny_vla_spec


def test_mlp_head_contract():
    head = MLPActionHead(input_dim=8, action_dim=3, chunk_size=4, state_dim=5, hidden_dim=16)
    assert isinstance(head, ActionHead)
    check_action_head(head, input_dim=8, state_dim=5, action_dim=3, chunk_size=4)


def test_mlp_head_zero_pads_a_narrower_state():
    # A processor padding states to 3 dims feeding a head built for 5: the missing dims read
    # as zeros (as in the flow heads) instead of a shape error at the first step.
    torch.manual_seed(0)
    head = MLPActionHead(input_dim=8, action_dim=2, chunk_size=4, state_dim=5, hidden_dim=16).eval()
    features, mask = torch.randn(2, 6, 8), torch.ones(2, 6, dtype=torch.bool)
    narrow = torch.randn(2, 3)
    with torch.no_grad():
        padded = head.predict_action(features, torch.cat([narrow, torch.zeros(2, 2)], dim=1), mask)
        assert torch.equal(head.predict_action(features, narrow, mask), padded)


def test_pooling_ignores_padding():
    feats = torch.tensor([[[1.0], [3.0], [100.0]]])
    mask = torch.tensor([[True, True, False]])
    assert masked_mean(feats, mask).item() == 2.0
    assert last_valid(feats, mask).item() == 3.0


def test_projector_key_names_match_references():
    assert set(LinearProjector(4, 6).state_dict()) == {"weight", "bias"}  # PI0's state_proj.weight
    mlp = MLPProjector(4, 6, num_layers=2)  # LLaVA's mlp2x_gelu: projector.0 / projector.2
    assert set(mlp.state_dict()) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    assert isinstance(mlp, Projector) and mlp(torch.zeros(2, 4)).shape == (2, 6)


def test_llava_vla_trains_and_predicts():
    torch.manual_seed(0)
    vla = vla_core.build_vla(tiny_vla_spec())
    batch = make_tiny_batch()
    optimizer = torch.optim.AdamW(vla.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        loss = vla(**batch)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    obs = {k: v for k, v in batch.items() if k not in ("actions", "action_masks")}
    assert vla.predict_action(**obs).shape == (2, 4, 3)


def test_masked_camera_and_padding_do_not_leak():
    torch.manual_seed(0)
    vla = vla_core.build_vla(tiny_vla_spec()).eval()
    batch = make_tiny_batch(num_cameras=2)
    obs = {k: v for k, v in batch.items() if k not in ("actions", "action_masks")}
    obs["img_masks"][:, 1] = False
    first = vla.predict_action(**obs)
    obs["images"][:, 1] = torch.randn_like(obs["images"][:, 1])  # only the masked camera changes
    assert torch.allclose(first, vla.predict_action(**obs), atol=1e-6)


def test_freeze_flags():
    spec = tiny_vla_spec()
    spec["freeze_vision_backbone"] = True
    spec["freeze_llm_backbone"] = True
    vla = vla_core.build_vla(spec)
    assert not any(p.requires_grad for p in vla.vision_backbone.parameters())
    assert not any(p.requires_grad for p in vla.llm_backbone.parameters())
    assert all(p.requires_grad for p in vla.vla_head.parameters())
    spec = tiny_vla_spec()
    spec["freeze_vlm_backbone"] = True
    with pytest.raises(VLAError, match="has no vlm_backbone"):
        vla_core.build_vla(spec)


def test_width_mismatch_is_a_config_error():
    spec = tiny_vla_spec()
    spec["projector"]["in_dim"] = 30
    with pytest.raises(ConfigError, match=r"model\.projector\.in_dim: is 30, but the features it receives are 32"):
        vla_core.build_vla(spec)


def test_pretrained_with_name_mapping_loads_only_the_mapped_part(tmp_path):
    torch.manual_seed(0)
    donor = vla_core.build_vla(tiny_vla_spec())
    # A foreign checkpoint whose head lives under "action_head." next to other weights.
    foreign = {f"action_head.{k}": v for k, v in donor.vla_head.state_dict().items()}
    foreign["backbone.unrelated"] = torch.zeros(3)
    from vla_core.models.weights import save_state_dict

    save_state_dict(foreign, tmp_path)
    spec = tiny_vla_spec()
    spec.update(pretrained_name_or_path=str(tmp_path), name_mapping={"vla_head": "action_head"})
    torch.manual_seed(1)
    vla = vla_core.build_vla(spec)
    assert vla.load_report.ok and vla.load_report.ignored == 1
    for key, tensor in donor.vla_head.state_dict().items():
        assert torch.equal(vla.vla_head.state_dict()[key], tensor)


def test_fsdp_units_come_from_transformers_no_split_modules():
    vla = vla_core.build_vla(tiny_vla_spec())
    names = {t.__name__ for t in vla.fsdp_unit_types()}
    assert {"Qwen2DecoderLayer", "SiglipEncoderLayer"} <= names


def test_forgetting_post_init_is_caught(register_component):
    from vla_core.models import BaseVLA

    class NoPostInit(BaseVLA):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)

    register_component("vlas", "NoPostInit", NoPostInit)
    with pytest.raises(VLAError, match=r"did not call self\.post_init"):
        vla_core.build_vla({"type": "NoPostInit"})


def test_directly_constructed_vla_cannot_be_saved_without_spec(tmp_path):
    from vla_core.models import LlavaVLA

    vla = LlavaVLA(**{k: v for k, v in tiny_vla_spec().items() if k != "type"})
    with pytest.raises(VLAError, match=r"build it with vla_core\.build_vla"):
        vla.save_pretrained(tmp_path / "x")
