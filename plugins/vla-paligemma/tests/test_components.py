"""PaliGemma and GemmaLLMBackbone against transformers' models; configuration errors."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import GemmaConfig, GemmaModel, PaliGemmaConfig, PaliGemmaForConditionalGeneration
from vla_paligemma.adarms import AdaptiveRMSNorm, normalize
from vla_paligemma.gemma_expert import GemmaLLMBackbone
from vla_paligemma.paligemma import PaliGemma, resolve_paligemma_config

import vla_core
from vla_core.errors import ConfigError
from vla_core.protocols import LLMBackbone, VLMBackbone
from vla_core.testing import assert_plugin_is_light


def test_plugin_is_light() -> None:
    assert_plugin_is_light("vla-paligemma")


def test_paligemma_matches_transformers(tiny: dict, perturb: Any, tmp_path: Path) -> None:
    torch.manual_seed(0)
    reference = PaliGemmaForConditionalGeneration(PaliGemmaConfig.from_dict(copy.deepcopy(tiny["vlm_config"])))
    perturb(reference.eval())
    reference.save_pretrained(tmp_path)
    ours = PaliGemma(vlm_backbone_id=None, pretrained_name_or_path=str(tmp_path)).eval()
    assert isinstance(ours, VLMBackbone) and ours.hidden_size == 64

    g = torch.Generator().manual_seed(0)
    images = torch.rand(2, 1, 3, 32, 32, generator=g) * 2 - 1
    tokens = torch.randint(1, tiny["vocab"], (2, 5), generator=g)
    lang_masks = torch.tensor([[True] * 5, [True, True, True, False, False]])
    with torch.no_grad():
        out = ours(images, tokens, torch.ones(2, 1, dtype=torch.bool), lang_masks)
        ids = torch.cat([torch.full((2, tiny["tokens_per_image"]), tiny["image_token"]), tokens], dim=1)
        mask = torch.cat([torch.ones(2, tiny["tokens_per_image"], dtype=torch.bool), lang_masks], dim=1)
        expected = reference.model(  # prefix-LM: token_type_ids 0 = bidirectional; pi0's 0-based positions
            input_ids=ids, pixel_values=images[:, 0], attention_mask=mask.long(), token_type_ids=torch.zeros_like(ids),
            position_ids=mask.long().cumsum(1) - 1,
        ).last_hidden_state
    assert out.features.shape == (2, 21, 64) and torch.equal(out.mask, mask)
    torch.testing.assert_close(out.features[mask], expected[mask], atol=1e-5, rtol=0)


def test_gemma_expert_matches_transformers_gemma(tiny: dict, perturb: Any, tmp_path: Path) -> None:
    sizes = dict(tiny["dit_config"], vocab_size=50)
    torch.manual_seed(0)
    reference = perturb(GemmaModel(GemmaConfig(**sizes)).eval())
    reference.save_pretrained(tmp_path)
    expert = GemmaLLMBackbone(**sizes, pretrained_name_or_path=str(tmp_path)).eval()
    assert isinstance(expert, LLMBackbone)
    tokens = torch.randint(0, 50, (2, 6), generator=torch.Generator().manual_seed(0))
    mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    with torch.no_grad():
        out = expert(expert.embed_tokens(tokens), mask)
        expected = reference(input_ids=tokens, attention_mask=mask.long()).last_hidden_state
    torch.testing.assert_close(out.features[mask], expected[mask], atol=1e-5, rtol=0)


def test_adaptive_rms_norm_modulates_and_gates() -> None:
    norm = AdaptiveRMSNorm(8, cond_dim=4)
    x, cond = torch.randn(2, 3, 8), torch.randn(2, 4)
    with torch.no_grad():
        norm.dense.bias.zero_()
        normed, gate = norm(x, cond)  # zero weights and bias: a plain RMSNorm, gate 0
        plain = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)
        torch.testing.assert_close(normed, plain)
        assert torch.equal(gate, torch.zeros(2, 1, 8))
        norm.dense.bias.copy_(torch.cat([torch.full((8,), 1.0), torch.full((8,), 0.5), torch.full((8,), 2.0)]))
        normed, gate = norm(x, cond)  # scale 1 + 1, shift 0.5, gate 2
        torch.testing.assert_close(normed, plain * 2 + 0.5)
        assert torch.equal(gate, torch.full((2, 1, 8), 2.0))
    with pytest.raises(ValueError, match="needs a conditioning vector"):
        normalize(norm, x, None)


def test_presets_and_bad_vlm_configs() -> None:
    config = resolve_paligemma_config("pi0_paligemma_3b_224", {"text_config": {"num_hidden_layers": 2}}, None)
    assert (config.text_config.hidden_size, config.text_config.num_hidden_layers) == (2048, 2)
    assert (config.text_config.vocab_size, config.vision_config.image_size) == (257152, 224)
    assert resolve_paligemma_config("paligemma_3b_pt_448", None, None).vision_config.image_size == 448
    with pytest.raises(ConfigError, match="unknown PaliGemma preset 'paligemma_7b'"):
        resolve_paligemma_config("paligemma_7b", None, None)
    with pytest.raises(ConfigError, match="runs PaliGemma 1"):
        resolve_paligemma_config("paligemma_3b_pt_224", {"text_config": {"model_type": "gemma2"}}, None)


def test_expert_geometry_must_match_the_vlm(tiny_vla_spec: Any) -> None:
    spec = tiny_vla_spec()
    spec["llm_expert"]["num_hidden_layers"] = 3
    message = r"model\.llm_expert\.num_hidden_layers: is 3, but the VLM's language model has 2"
    with pytest.raises(ConfigError, match=message):
        vla_core.build_vla(spec)
    spec = tiny_vla_spec(proj_width=32)
    with pytest.raises(ConfigError, match=r"model\.proj_width: is 32, but llm_expert\.hidden_size is 48"):
        vla_core.build_vla(spec)
    spec = tiny_vla_spec(action_out_proj={"type": "LinearProjector", "in_dim": 48, "out_dim": 7})
    with pytest.raises(ConfigError, match=r"model\.action_out_proj\.out_dim: is 7, but it must be 5"):
        vla_core.build_vla(spec)
    spec = tiny_vla_spec(vla_head={"type": "MLPActionHead", "input_dim": 48, "state_dim": 6, "action_dim": 5,
                                   "chunk_size": 4})
    with pytest.raises(ConfigError, match="does not use vla_head"):
        vla_core.build_vla(spec)


def test_bad_batch_shapes_are_data_errors(tiny_vla_spec: Any, pi0_inputs: dict) -> None:
    model = vla_core.build_vla(tiny_vla_spec())
    with pytest.raises(vla_core.VLAError, match=r"states has 9 dims but this model takes at most 6"):
        model(**dict(pi0_inputs, states=torch.zeros(2, 9)))
    with pytest.raises(vla_core.VLAError, match=r"actions must be \(B, 4, 5\)"):
        model(**dict(pi0_inputs, actions=torch.zeros(2, 3, 5), noise=None))
    # Narrower states and actions are zero-padded to max_state_dim / max_action_dim.
    out = model(**dict(pi0_inputs, states=pi0_inputs["states"][:, :4], actions=pi0_inputs["actions"][..., :3],
                       noise=None))
    assert out["velocity"].shape == (2, 4, 5)


def test_fsdp_units_are_whole_layer_calls(tiny_vla_spec: Any) -> None:
    model = vla_core.build_vla(tiny_vla_spec())
    assert {t.__name__ for t in model.fsdp_unit_types()} == {"SiglipEncoderLayer"}
    assert {t.__name__ for t in model.vlm_backbone.fsdp_unit_types()} == {"SiglipEncoderLayer", "GemmaDecoderLayer"}


def test_engine_gradient_checkpointing_keeps_the_gradients(tiny_vla_spec: Any, pi0_inputs: dict) -> None:
    from vla_core.engine.activation_checkpointing import apply_activation_checkpointing

    torch.manual_seed(0)
    plain = vla_core.build_vla(tiny_vla_spec())
    checkpointed = copy.deepcopy(plain)
    apply_activation_checkpointing(checkpointed, checkpointed.fsdp_unit_types())
    assert checkpointed.gradient_checkpointing and not plain.gradient_checkpointing
    for model in (plain, checkpointed):
        model(**pi0_inputs)["loss"].backward()
    for (name, a), (_, b) in zip(plain.named_parameters(), checkpointed.named_parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, atol=1e-6, rtol=1e-5, msg=name)
