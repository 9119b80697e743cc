"""The three FluxVLA tutorial configs (verbatim copies in tests/fixtures/fluxvla) load and build
on the meta device; their parameter counts are the figures docs/fluxvla.md explains."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vla_core.config.loading import load_config
from vla_core.models.build import build_component, build_vla
from vla_core.testing import check_action_head

SEEDS = Path(__file__).resolve().parents[1] / "fixtures" / "fluxvla"
#: Paths in the tutorial that do not exist here, and what FluxVLA reads from the projectors (docs/fluxvla.md).
OVERRIDES = {
    "gr00t_eagle_flow.py": ["model.pretrained_name_or_path=null", "model.vlm_backbone.vlm_path=null"],
    "pi0_paligemma.py": ["model.pretrained_name_or_path=null", "model.max_action_dim=14", "model.max_state_dim=14"],
    "openvla_dinosiglip_llama2.py": [],
}
COUNTS = {  # total, then per part
    "gr00t_eagle_flow.py": (1_906_807_232, {"vlm_backbone": 1_344_716_736, "vla_head": 562_090_496}),
    "pi0_paligemma.py": (3_238_124_286, {"vlm_backbone": 2_923_466_480, "llm_expert": 311_464_960}),
    "openvla_dinosiglip_llama2.py": (7_541_237_184, {"vision_backbone": 730_911_680, "projector": 71_385_600,
                                                     "language_model": 6_738_939_904}),
}


def meta_build(name: str, extra: list[str] = ()) -> torch.nn.Module:
    config = load_config(SEEDS / name, [*OVERRIDES[name], *extra])
    with torch.device("meta"):
        return build_vla(config.model)


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_seed_config_builds_on_meta_with_the_documented_counts(name: str) -> None:
    vla = meta_build(name)
    assert all(p.device.type == "meta" for p in vla.parameters())
    total, parts = COUNTS[name]
    assert count(vla) == total
    assert {part: count(getattr(vla, part)) for part in parts} == parts


def test_gr00t_counts_explained() -> None:
    """FluxVLA's FlowMatchingHead ignores num_layers / num_heads (its DiT is diffusion_model_cfg's
    16 x 32 default): with those, the head is GR00T N1.5's; with the Qwen3-1.7B kept whole
    (28 layers, not GR00T's 12) the model is the nominal 3B."""
    released_head = meta_build("gr00t_eagle_flow.py", ["model.vla_head.num_layers=16", "model.vla_head.num_heads=32"])
    assert count(released_head.vla_head) == 1_068_806_144
    assert count(released_head) == 2_413_522_880
    whole_llm = meta_build("gr00t_eagle_flow.py", ["model.vla_head.num_layers=16", "model.vla_head.num_heads=32",
                                                   "model.vlm_backbone.select_layer=28"])
    assert count(whole_llm) == 3_218_898_880


def test_vla_build_device_meta_cli(vla_main) -> None:
    # In this process (the CLI's own code, without a fresh interpreter importing torch and
    # transformers again): the `vla` entry point in a subprocess is tested in tests/core/test_cli.py.
    args = ["--set", "model.pretrained_name_or_path=null", "--set", "model.max_action_dim=14",
            "--set", "model.max_state_dim=14"]
    code, out, err = vla_main("build", str(SEEDS / "pi0_paligemma.py"), "--device", "meta", *args)
    assert code == 0, err[-2000:]
    assert "parameters: 3238124286" in out
    assert "PI0FlowMatching" in out and "PaliGemma" in out


def test_seed_parts_compute() -> None:
    head = build_component("heads", {"type": "LlavaActionHead", "hidden_size": 16, "state_dim": 4, "num_layers": 1,
                                     "num_heads": 2, "traj_length": 4, "action_dim": 3, "act_decoder_dim": 8,
                                     "max_seq_len": 8})
    check_action_head(head, input_dim=16, state_dim=4, action_dim=3, chunk_size=4)
    fused = build_component("projectors", {"type": "FusedMLPProjector", "fused_vision_dim": 6, "llm_dim": 5})
    assert (fused.in_dim, fused.out_dim, fused.fc1.out_features) == (6, 5, 24)
    siglip = build_component("vision_backbones", {"type": "SigLIPViTBackbone", "vision_config": {
        "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
        "image_size": 28}})
    assert siglip(torch.randn(1, 3, 28, 28)).shape == (1, 4, 16)
    qwen2 = build_component("llm_backbones", {"type": "Qwen2LLMBackbone", "tokenizer_length": 100, "llm_config": {
        "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
        "num_key_value_heads": 1}})
    assert qwen2.model.get_input_embeddings().weight.shape == (128, 16)  # 100 rounded up to a multiple of 64
    token_head = build_component("heads", {"type": "OpenVLAHead", "vocab_size": 300, "norm_stats": {
        "d": {"action": {"q01": [-2.0, 0.0], "q99": [2.0, 1.0], "mask": [True, False]}}}})
    logits = torch.zeros(1, 2, 300)
    logits[0, :, 299] = 1.0  # the first bin
    assert token_head.predict_action(logits, None, None).shape == (1, 1, 2)
    assert token_head.unnormalize(torch.tensor([1.0, 0.5])).tolist() == [2.0, 0.5]
