"""A GR00T N1.5 checkpoint's `action_head.*` loads into our head with no missing,
unexpected or mis-shaped keys.

`reference_action_head_shapes` rebuilds the key names and shapes from the structure of
Isaac-GR00T's `FlowmatchingActionHead` (gr00t/model/action_head/): `DiT(**diffusion_model_cfg)`
as `model`, with diffusers' `Attention` (to_q/to_k/to_v/to_out.0), `FeedForward`
(net.0.proj, net.2), `AdaLayerNorm` (norm1.linear; its LayerNorm and norm3 have no affine
weights in the DiT), `TimestepEncoder` (timestep_embedder.linear_1/2), proj_out_1/2;
`CategorySpecificMLP` state encoder / action decoder (layer1/2 .W .b);
`MultiEmbodimentActionEncoder` (W1/W2/W3 .W .b); `future_tokens`; `vlln`;
`SelfAttentionTransformer` (affine norm1/norm3); `position_embedding`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from vla_heads_flow.flow_matching_head import FlowMatchingHead
from vla_heads_flow.flow_matching_inference_head import FlowMatchingInferenceHead

from vla_core.models.weights import load_into, load_state_dict, save_state_dict

# action_head_cfg of nvidia/GR00T-N1.5-3B's config.json
GR00T_N15_ACTION_HEAD_CFG: dict[str, Any] = {
    "action_dim": 32,
    "action_horizon": 16,
    "add_pos_embed": True,
    "backbone_embedding_dim": 2048,
    "diffusion_model_cfg": {
        "attention_head_dim": 48,
        "cross_attention_dim": 2048,
        "dropout": 0.2,
        "final_dropout": True,
        "interleave_self_attention": True,
        "norm_type": "ada_norm",
        "num_attention_heads": 32,
        "num_layers": 16,
        "output_dim": 1024,
        "positional_embeddings": None,
    },
    "hidden_size": 1024,
    "input_embedding_dim": 1536,
    "max_action_dim": 32,
    "max_state_dim": 64,
    "max_num_embodiments": 32,
    "max_seq_len": 1024,
    "num_inference_timesteps": 4,
    "num_target_vision_tokens": 32,
    "use_vlln": True,
    "vl_self_attention_cfg": {
        "attention_head_dim": 64,
        "dropout": 0.2,
        "final_dropout": True,
        "num_attention_heads": 32,
        "num_layers": 4,
        "positional_embeddings": None,
    },
}


def reference_action_head_shapes(cfg: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Key -> shape of GR00T's FlowmatchingActionHead built from `cfg` (an action_head_cfg)."""
    shapes: dict[str, tuple[int, ...]] = {}

    def linear(name: str, fan_in: int, fan_out: int) -> None:
        shapes[f"{name}.weight"] = (fan_out, fan_in)
        shapes[f"{name}.bias"] = (fan_out,)

    def category_linear(name: str, fan_in: int, fan_out: int) -> None:
        shapes[f"{name}.W"] = (cfg["max_num_embodiments"], fan_in, fan_out)
        shapes[f"{name}.b"] = (cfg["max_num_embodiments"], fan_out)

    def attention_and_ff(prefix: str, dim: int, context_dim: int) -> None:
        linear(f"{prefix}.attn1.to_q", dim, dim)
        linear(f"{prefix}.attn1.to_k", context_dim, dim)
        linear(f"{prefix}.attn1.to_v", context_dim, dim)
        linear(f"{prefix}.attn1.to_out.0", dim, dim)
        linear(f"{prefix}.ff.net.0.proj", dim, 4 * dim)
        linear(f"{prefix}.ff.net.2", 4 * dim, dim)

    dit = cfg["diffusion_model_cfg"]
    inner = dit["num_attention_heads"] * dit["attention_head_dim"]
    linear("model.timestep_encoder.timestep_embedder.linear_1", 256, inner)
    linear("model.timestep_encoder.timestep_embedder.linear_2", inner, inner)
    for i in range(dit["num_layers"]):
        self_attention = dit["interleave_self_attention"] and i % 2 == 1
        context = inner if self_attention else dit["cross_attention_dim"]
        linear(f"model.transformer_blocks.{i}.norm1.linear", inner, 2 * inner)  # AdaLayerNorm
        attention_and_ff(f"model.transformer_blocks.{i}", inner, context)
    linear("model.proj_out_1", inner, 2 * inner)
    linear("model.proj_out_2", inner, dit["output_dim"])

    hidden, width = cfg["hidden_size"], cfg["input_embedding_dim"]
    category_linear("state_encoder.layer1", cfg["max_state_dim"], hidden)
    category_linear("state_encoder.layer2", hidden, width)
    category_linear("action_encoder.W1", cfg["action_dim"], width)
    category_linear("action_encoder.W2", 2 * width, width)
    category_linear("action_encoder.W3", width, width)
    category_linear("action_decoder.layer1", hidden, hidden)
    category_linear("action_decoder.layer2", hidden, cfg["action_dim"])
    shapes["future_tokens.weight"] = (cfg["num_target_vision_tokens"], width)
    backbone = cfg["backbone_embedding_dim"]
    shapes["vlln.weight"] = shapes["vlln.bias"] = (backbone,)
    vlsa = cfg["vl_self_attention_cfg"]
    vl_dim = vlsa["num_attention_heads"] * vlsa["attention_head_dim"]
    for i in range(vlsa["num_layers"]):
        prefix = f"vl_self_attention.transformer_blocks.{i}"
        for norm in ("norm1", "norm3"):
            shapes[f"{prefix}.{norm}.weight"] = shapes[f"{prefix}.{norm}.bias"] = (vl_dim,)
        attention_and_ff(prefix, vl_dim, vl_dim)
    shapes["position_embedding.weight"] = (cfg["max_seq_len"], width)
    return shapes


def our_kwargs(cfg: dict[str, Any]) -> dict[str, Any]:
    """The same head in our parameter names."""
    dit, vlsa = cfg["diffusion_model_cfg"], cfg["vl_self_attention_cfg"]
    return dict(
        backbone_embedding_dim=cfg["backbone_embedding_dim"],
        state_dim=cfg["max_state_dim"],
        action_dim=cfg["action_dim"],
        traj_length=cfg["action_horizon"],
        hidden_size=cfg["hidden_size"],
        input_embedding_dim=cfg["input_embedding_dim"],
        num_layers=dit["num_layers"],
        num_heads=dit["num_attention_heads"],
        interleave_self_attention=dit["interleave_self_attention"],
        vl_self_attention_layers=vlsa["num_layers"],
        vl_self_attention_heads=vlsa["num_attention_heads"],
        num_target_vision_tokens=cfg["num_target_vision_tokens"],
        max_num_embodiments=cfg["max_num_embodiments"],
        max_seq_len=cfg["max_seq_len"],
        num_inference_timesteps=cfg["num_inference_timesteps"],
    )


def tiny_cfg() -> dict[str, Any]:
    return {
        **GR00T_N15_ACTION_HEAD_CFG,
        "action_dim": 5, "action_horizon": 4, "backbone_embedding_dim": 24, "hidden_size": 20,
        "input_embedding_dim": 16, "max_state_dim": 6, "max_num_embodiments": 3, "max_seq_len": 8,
        "num_target_vision_tokens": 3,
        "diffusion_model_cfg": {**GR00T_N15_ACTION_HEAD_CFG["diffusion_model_cfg"], "attention_head_dim": 8,
                                "num_attention_heads": 2, "num_layers": 4, "output_dim": 20, "cross_attention_dim": 24},
        "vl_self_attention_cfg": {**GR00T_N15_ACTION_HEAD_CFG["vl_self_attention_cfg"], "attention_head_dim": 8,
                                  "num_attention_heads": 3, "num_layers": 2},
    }


def shapes_of(module: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def test_defaults_are_the_released_gr00t_n15_head():
    expected = reference_action_head_shapes(GR00T_N15_ACTION_HEAD_CFG)
    with torch.device("meta"):
        ours = FlowMatchingHead()
    assert shapes_of(ours) == expected
    # spot checks from a real N1.5 checkpoint's header
    assert expected["model.timestep_encoder.timestep_embedder.linear_1.weight"] == (1536, 256)
    assert expected["model.transformer_blocks.0.attn1.to_k.weight"] == (1536, 2048)
    assert expected["model.transformer_blocks.1.attn1.to_k.weight"] == (1536, 1536)
    assert expected["position_embedding.weight"] == (1024, 1536)
    assert expected["vlln.weight"] == (2048,)
    assert ours.model.transformer_blocks[0].attn1.heads == 32
    assert ours.model.transformer_blocks[0].attn1.to_q.out_features // 32 == 48
    assert sum(p.numel() for p in ours.parameters()) == sum(torch.Size(s).numel() for s in expected.values())


def test_tiny_head_has_the_reference_structure():
    cfg = tiny_cfg()
    for cls in (FlowMatchingHead, FlowMatchingInferenceHead):
        assert shapes_of(cls(**our_kwargs(cfg))) == reference_action_head_shapes(cfg)


def test_gr00t_checkpoint_loads_through_name_mapping(tmp_path):
    """A GR00T-layout checkpoint (backbone.* + action_head.*) loads strictly into a model whose
    head is `vla_head`, with name_mapping {"vla_head": "action_head"}; every value arrives."""
    cfg = tiny_cfg()
    g = torch.Generator().manual_seed(0)
    checkpoint = {f"action_head.{k}": torch.randn(s, generator=g) for k, s in reference_action_head_shapes(cfg).items()}
    checkpoint["backbone.eagle_model.language_model.model.norm.weight"] = torch.ones(24)
    save_state_dict(checkpoint, tmp_path)

    for cls in (FlowMatchingHead, FlowMatchingInferenceHead):
        model = nn.Module()
        model.vla_head = cls(**our_kwargs(cfg))
        report = load_into(model, load_state_dict(tmp_path), {"vla_head": "action_head"}, strict=True)
        assert report.ok and not report.missing and not report.unexpected and not report.mismatched
        assert report.ignored == 1  # the backbone key
        for key, value in model.vla_head.state_dict().items():
            assert torch.equal(value, checkpoint[f"action_head.{key}"]), key
