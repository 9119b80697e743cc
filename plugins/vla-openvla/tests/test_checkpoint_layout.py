"""Full-size key names and shapes against the released layouts, built on the meta device (no memory).

The expected layouts are assembled the way the reference code builds its modules:
openvla/openvla `modeling_prismatic.py` (timm featurizers with LayerScale `gamma` renamed
to `scale_factor`, PrismaticProjector fc1/fc2/fc3 with 4x the fused vision width,
`AutoModelForCausalLM` from OpenVLA's text config) and moojink/openvla-oft
(`L1RegressionActionHead` = MLPResNet(num_blocks=2, input_dim=4096*ACTION_DIM,
hidden_dim=4096, output_dim=ACTION_DIM), `ProprioProjector(llm_dim, proprio_dim)`).
A real checkpoint directory therefore loads with no missing or unexpected keys.
"""

from __future__ import annotations

import pytest
import torch

import vla_core

FULL_OPENVLA = {
    "type": "OpenVLA",
    "vision_backbone": {"type": "PrismaticVisionBackbone"},
    "projector": {"type": "PrismaticProjector", "in_dim": 2176, "out_dim": 4096},
}


def shapes(state: dict[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {key: tuple(value.shape) for key, value in state.items()}


@pytest.fixture(scope="module")
def released_openvla_layout() -> dict[str, tuple[int, ...]]:
    import timm
    from transformers import AutoModelForCausalLM, LlamaConfig

    layout: dict[str, tuple[int, ...]] = {}
    with torch.device("meta"):
        # OpenVLAConfig: vision_backbone_id "dinosiglip-vit-so-224px", image_sizes [224, 224].
        for name, model_id in (("featurizer", "vit_large_patch14_reg4_dinov2.lvd142m"),
                               ("fused_featurizer", "vit_so400m_patch14_siglip_224")):
            vit = timm.create_model(model_id, pretrained=False, num_classes=0, img_size=224, act_layer=None)
            for key, value in vit.state_dict().items():
                layout[f"vision_backbone.{name}.{key.replace('.gamma', '.scale_factor')}"] = tuple(value.shape)
        vision_dim = 1024 + 1152
        layout.update({
            "projector.fc1.weight": (4 * vision_dim, vision_dim), "projector.fc1.bias": (4 * vision_dim,),
            "projector.fc2.weight": (4096, 4 * vision_dim), "projector.fc2.bias": (4096,),
            "projector.fc3.weight": (4096, 4096), "projector.fc3.bias": (4096,),
        })
        # The released text_config: {"model_type": "llama", "pad_token_id": 32000, "vocab_size": 32064}.
        llm = AutoModelForCausalLM.from_config(LlamaConfig(pad_token_id=32000, vocab_size=32064))
        layout.update({f"language_model.{k}": tuple(v.shape) for k, v in llm.state_dict().items()})
    return layout


def test_openvla_7b_matches_the_released_layout(released_openvla_layout):
    with torch.device("meta"):
        vla = vla_core.build_vla(FULL_OPENVLA)
    ours = shapes(vla.state_dict())
    assert sorted(set(ours) - set(released_openvla_layout)) == []  # unexpected
    assert sorted(set(released_openvla_layout) - set(ours)) == []  # missing
    mismatched = {k: (ours[k], v) for k, v in released_openvla_layout.items() if ours[k] != v}
    assert mismatched == {}
    assert 7.5e9 < vla.num_parameters() < 7.6e9  # OpenVLA-7B: 7.54B
    assert vla.language_model.config.rms_norm_eps == 1e-6  # transformers 4.40's default, which OpenVLA used


def test_openvla_oft_libero_matches_the_released_layout(released_openvla_layout):
    spec = {
        **FULL_OPENVLA,
        "type": "OpenVLAOFT",
        "proprio_projector": {"type": "PrismaticProjector", "in_dim": 8, "out_dim": 4096, "arch": "gelu-mlp"},
        "vla_head": {"type": "L1RegressionActionHead", "input_dim": 4096, "hidden_dim": 4096, "action_dim": 7,
                     "chunk_size": 8},
    }
    with torch.device("meta"):
        vla = vla_core.build_vla(spec)
    ours = shapes(vla.state_dict())
    # action_head--*_checkpoint.pt (DDP `module.` prefix removed) and proprio_projector--*_checkpoint.pt.
    d, a = 4096, 7
    head = {"model.layer_norm1.weight": (d * a,), "model.layer_norm1.bias": (d * a,),
            "model.fc1.weight": (d, d * a), "model.fc1.bias": (d,),
            "model.layer_norm2.weight": (d,), "model.layer_norm2.bias": (d,),
            "model.fc2.weight": (a, d), "model.fc2.bias": (a,)}
    for block in range(2):
        head.update({f"model.mlp_resnet_blocks.{block}.ffn.0.weight": (d,),
                     f"model.mlp_resnet_blocks.{block}.ffn.0.bias": (d,),
                     f"model.mlp_resnet_blocks.{block}.ffn.1.weight": (d, d),
                     f"model.mlp_resnet_blocks.{block}.ffn.1.bias": (d,)})
    proprio = {"fc1.weight": (d, 8), "fc1.bias": (d,), "fc2.weight": (d, d), "fc2.bias": (d,)}
    expected = {**released_openvla_layout, **{f"vla_head.{k}": v for k, v in head.items()},
                **{f"proprio_projector.{k}": v for k, v in proprio.items()}}
    assert ours == expected
