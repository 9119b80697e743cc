"""Parameter names and shapes follow a GR00T N1.5 checkpoint's `backbone.*` tensors.

The expected layout is written out here from the released model's configs (not read from
our modules): SigLIP-so400m/14 at 224 px (27 layers), mlp1 = one Linear(1152 -> 2048) on
all 256 patches, Qwen3-1.7B (2048 wide, 16 query / 8 key-value heads of 128, MLP 6144,
vocab 151680) cut to 12 layers, project_to_dim null (no eagle_linear tensors).
"""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from vla_core.errors import CheckpointError


def siglip_layout(width: int, mlp: int, layers: int, patch: int, image: int) -> dict[str, tuple[int, ...]]:
    root = "eagle_model.vision_model.vision_model."
    shapes = {
        "embeddings.patch_embedding.weight": (width, 3, patch, patch),
        "embeddings.patch_embedding.bias": (width,),
        "embeddings.position_embedding.weight": ((image // patch) ** 2, width),
        "post_layernorm.weight": (width,),
        "post_layernorm.bias": (width,),
        # SigLIP's attention-pooling head: in the checkpoint, never used by GR00T.
        "head.probe": (1, 1, width),
        "head.attention.in_proj_weight": (3 * width, width),
        "head.attention.in_proj_bias": (3 * width,),
        "head.attention.out_proj.weight": (width, width),
        "head.attention.out_proj.bias": (width,),
        "head.layernorm.weight": (width,),
        "head.layernorm.bias": (width,),
        "head.mlp.fc1.weight": (mlp, width),
        "head.mlp.fc1.bias": (mlp,),
        "head.mlp.fc2.weight": (width, mlp),
        "head.mlp.fc2.bias": (width,),
    }
    for i in range(layers):
        layer = f"encoder.layers.{i}."
        for norm in ("layer_norm1", "layer_norm2"):
            shapes[f"{layer}{norm}.weight"] = shapes[f"{layer}{norm}.bias"] = (width,)
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            shapes[f"{layer}self_attn.{proj}.weight"] = (width, width)
            shapes[f"{layer}self_attn.{proj}.bias"] = (width,)
        shapes.update({
            f"{layer}mlp.fc1.weight": (mlp, width), f"{layer}mlp.fc1.bias": (mlp,),
            f"{layer}mlp.fc2.weight": (width, mlp), f"{layer}mlp.fc2.bias": (width,),
        })
    return {root + k: v for k, v in shapes.items()}


def qwen3_layout(vocab: int, width: int, heads: int, kv_heads: int, head_dim: int, mlp: int, layers: int):
    root = "eagle_model.language_model."
    shapes = {
        "model.embed_tokens.weight": (vocab, width),
        "model.norm.weight": (width,),
        "lm_head.weight": (vocab, width),
    }
    for i in range(layers):
        layer = f"model.layers.{i}."
        shapes.update({
            f"{layer}input_layernorm.weight": (width,),
            f"{layer}post_attention_layernorm.weight": (width,),
            f"{layer}self_attn.q_proj.weight": (heads * head_dim, width),
            f"{layer}self_attn.k_proj.weight": (kv_heads * head_dim, width),
            f"{layer}self_attn.v_proj.weight": (kv_heads * head_dim, width),
            f"{layer}self_attn.o_proj.weight": (width, heads * head_dim),
            f"{layer}self_attn.q_norm.weight": (head_dim,),
            f"{layer}self_attn.k_norm.weight": (head_dim,),
            f"{layer}mlp.gate_proj.weight": (mlp, width),
            f"{layer}mlp.up_proj.weight": (mlp, width),
            f"{layer}mlp.down_proj.weight": (width, mlp),
        })
    return {root + k: v for k, v in shapes.items()}


def groot_backbone_layout(vision: tuple, text: tuple, vision_width: int, text_width: int) -> dict:
    layout = {**siglip_layout(*vision), **qwen3_layout(*text)}
    layout["eagle_model.mlp1.0.weight"] = (text_width, vision_width)
    layout["eagle_model.mlp1.0.bias"] = (text_width,)
    return layout


def test_default_backbone_has_the_groot_n15_layout() -> None:
    from vla_eagle.eagle_backbone import EagleBackbone

    with torch.device("meta"):  # shapes only: the real model has 1.3 B parameters
        backbone = EagleBackbone()
    expected = groot_backbone_layout(
        vision=(1152, 4304, 27, 14, 224),
        text=(151680, 2048, 16, 8, 128, 6144, 12),
        vision_width=1152,
        text_width=2048,
    )
    ours = {k: tuple(v.shape) for k, v in backbone.state_dict().items()}
    assert sorted(set(ours) - set(expected)) == [] and sorted(set(expected) - set(ours)) == []
    assert {k: v for k, v in ours.items() if v != expected[k]} == {}
    assert backbone.hidden_size == 2048 and backbone.tokens_per_image == 256
    assert backbone.image_token_id == 151669 and backbone.select_layer == 12


TINY_LAYOUT = groot_backbone_layout(
    vision=(32, 64, 2, 7, 28), text=(128, 48, 4, 2, 12, 96, 2), vision_width=32, text_width=48
)


def write_groot_checkpoint(directory, layout: dict[str, tuple[int, ...]], drop: tuple[str, ...] = ()) -> dict:
    """A GR00T-style checkpoint: backbone.* from `layout` plus action_head.* tensors."""
    g = torch.Generator().manual_seed(7)
    tensors = {
        f"backbone.{k}": torch.randn(shape, generator=g) for k, shape in layout.items() if k not in drop
    }
    tensors["action_head.model.proj_out_2.weight"] = torch.randn(4, 4, generator=g)  # not ours: ignored
    save_file(tensors, str(directory / "model.safetensors"))
    return tensors


def vla_spec(tmp_path, tiny_kwargs) -> dict:
    text = {**tiny_kwargs()["text_config"], "tie_word_embeddings": True}
    return {
        "type": "LlavaVLA",
        "vlm_backbone": {"type": "EagleBackbone", **tiny_kwargs(text_config=text)},
        "vla_head": {"type": "MLPActionHead", "input_dim": 48, "action_dim": 3, "chunk_size": 4},
        "pretrained_name_or_path": str(tmp_path),
        "name_mapping": {"vlm_backbone": "backbone"},
    }


def test_groot_style_checkpoint_loads_strictly_with_name_mapping(tmp_path, tiny_kwargs) -> None:
    from vla_core.models import build_vla

    ckpt = write_groot_checkpoint(tmp_path, TINY_LAYOUT)
    vla = build_vla(vla_spec(tmp_path, tiny_kwargs))
    report = vla.load_report
    assert report.ok and report.ignored == 1 and len(report.loaded) == len(TINY_LAYOUT)
    params = dict(vla.named_parameters())
    for key in (
        "eagle_model.mlp1.0.weight",
        "eagle_model.language_model.model.layers.1.self_attn.k_norm.weight",
        "eagle_model.vision_model.vision_model.encoder.layers.1.mlp.fc2.bias",
    ):
        assert torch.equal(params[f"vlm_backbone.{key}"], ckpt[f"backbone.{key}"])
    # GR00T stores lm_head and embed_tokens separately; tied here, the embedding's values win.
    embed = vla.vlm_backbone.eagle_model.language_model.model.embed_tokens.weight
    assert torch.equal(embed, ckpt["backbone.eagle_model.language_model.model.embed_tokens.weight"])


def test_checkpoint_without_lm_head_loads_through_the_tie(tmp_path, tiny_kwargs) -> None:
    from vla_core.models import build_vla

    no_head = ("eagle_model.language_model.lm_head.weight",)
    ckpt = write_groot_checkpoint(tmp_path, TINY_LAYOUT, drop=no_head)
    vla = build_vla(vla_spec(tmp_path, tiny_kwargs))
    assert vla.load_report.ok
    head = vla.vlm_backbone.eagle_model.language_model.lm_head.weight
    assert torch.equal(head, ckpt["backbone.eagle_model.language_model.model.embed_tokens.weight"])


def test_deeper_language_model_in_checkpoint_is_reported(tmp_path, tiny_kwargs) -> None:
    from vla_core.models import build_vla

    deeper = groot_backbone_layout(
        vision=(32, 64, 2, 7, 28), text=(128, 48, 4, 2, 12, 96, 3), vision_width=32, text_width=48
    )
    write_groot_checkpoint(tmp_path, deeper)
    unexpected_layer = r"vlm_backbone\.eagle_model\.language_model\.model\.layers\.2\."
    with pytest.raises(CheckpointError, match=unexpected_layer):
        build_vla(vla_spec(tmp_path, tiny_kwargs))
