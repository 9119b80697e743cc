"""predict_action through packed oneDNN weights (prepack_weights) gives the same actions.

The toy layers are far below the packing threshold, so these tests lower it to one
weight: every linear layer (SigLIP, projector, Gemma VLM with fused q|k|v and gate|up,
expert, action/time MLPs) then runs through the packed kernels.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import PI0ForConditionalGeneration
from vla_paligemma.pi0 import PI0FlowMatching

import vla_core
from vla_core.models import packed_linear
from vla_core.models.packed_linear import PackedLinear


@pytest.fixture
def pack_everything(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """Lower the packing threshold to one weight; count packed kernel calls by (out, in) shape."""
    monkeypatch.setattr(packed_linear, "PACK_MIN_NUMEL", 1)
    calls: Counter = Counter()
    original = PackedLinear.__call__

    def counting(self: PackedLinear, x: torch.Tensor) -> torch.Tensor:
        if self.packed is not None:
            calls[(self.out_features, self.in_features)] += 1
        return original(self, x)

    monkeypatch.setattr(PackedLinear, "__call__", counting)
    return calls


def _predict(model: Any, inputs: dict[str, torch.Tensor], **kwargs: Any) -> torch.Tensor:
    return model.predict_action(inputs["images"], inputs["lang_tokens"], inputs["lang_masks"], inputs["img_masks"],
                                inputs["states"], noise=inputs["noise"], num_steps=5, **kwargs)


@pytest.mark.parametrize("use_prefix_cache", [True, False])
def test_packed_sampling_equals_unpacked_and_transformers(
    pi0_reference: tuple[PI0ForConditionalGeneration, Path], pi0_inputs: dict, reference_inputs: Any,
    tiny: dict[str, Any], pack_everything: Counter, use_prefix_cache: bool,
) -> None:
    reference, directory = pi0_reference
    ours = vla_core.load_pretrained(directory)
    assert isinstance(ours, PI0FlowMatching) and ours.prepack_weights
    keys = list(ours.state_dict())
    with torch.no_grad():
        expected = reference.sample_actions(**reference_inputs(pi0_inputs), num_steps=5)
    packed = _predict(ours, pi0_inputs, use_prefix_cache=use_prefix_cache)

    text, vision, expert = tiny["text_config"], tiny["vision_config"], tiny["dit_config"]
    width, expert_width = text["hidden_size"], expert["hidden_size"]
    heads_width = (text["num_attention_heads"] + 2 * text["num_key_value_heads"]) * text["head_dim"]
    packed_shapes = {
        (vision["intermediate_size"], vision["hidden_size"]),  # SigLIP fc1
        (width, vision["hidden_size"]),  # the multi-modal projector
        (width, text["num_attention_heads"] * text["head_dim"]),  # VLM o_proj
        (expert_width, expert_width),  # action_time_mlp_out
        (tiny["action_dim"], expert_width),  # action_out_proj
    }
    if use_prefix_cache:  # the sampler's fused products
        packed_shapes |= {
            (heads_width, width), (2 * text["intermediate_size"], width),  # VLM q|k|v, gate|up
            (heads_width, expert_width), (2 * expert["intermediate_size"], expert_width),  # expert's
        }
    else:  # the joint pass calls every layer's own projections
        packed_shapes |= {(text["intermediate_size"], width), (expert["intermediate_size"], expert_width)}
    assert packed_shapes <= set(pack_everything), packed_shapes - set(pack_everything)

    pack_everything.clear()
    ours.prepack_weights = False
    plain = _predict(ours, pi0_inputs, use_prefix_cache=use_prefix_cache)
    assert not pack_everything  # switched off: not a single packed product
    assert expected.abs().max() > 0.5
    torch.testing.assert_close(packed, plain, atol=1e-5, rtol=0)
    torch.testing.assert_close(packed, expected, atol=1e-4, rtol=0)
    assert list(ours.state_dict()) == keys
    assert all("forward" not in module.__dict__ for module in ours.modules())  # routing ends with the call


def test_packed_weights_follow_in_place_updates(
    tiny_vla_spec: Any, perturb: Any, pi0_inputs: dict, pack_everything: Counter
) -> None:
    torch.manual_seed(0)
    pi05 = perturb(vla_core.build_vla(tiny_vla_spec("PI05FlowMatching")), seed=3).eval()
    first = _predict(pi05, pi0_inputs)
    assert pack_everything
    with torch.no_grad():  # in place, as an optimizer step or load_state_dict would
        pi05.vlm_backbone.vision_tower.encoder.layers[0].mlp.fc1.weight.mul_(1.5)
        pi05.vlm_backbone.layers[0].mlp.up_proj.weight.add_(0.1)  # fused into the VLM's gate|up
        pi05.llm_expert.layers[1].self_attn.k_proj.weight.mul_(-1.0)  # fused into the expert's q|k|v
        pi05.action_in_proj.weight.add_(0.2)
    packed = _predict(pi05, pi0_inputs)
    pi05.prepack_weights = False
    plain = _predict(pi05, pi0_inputs)
    assert (packed - first).abs().max() > 1e-2  # the update reached the packed path...
    torch.testing.assert_close(packed, plain, atol=1e-5, rtol=0)  # ...entirely


def test_training_never_packs(tiny_vla_spec: Any, pi0_inputs: dict, pack_everything: Counter) -> None:
    torch.manual_seed(0)
    pi0 = vla_core.build_vla(tiny_vla_spec())
    loss = pi0(**pi0_inputs)["loss"]
    loss.backward()
    assert not pack_everything
    assert pi0.vlm_backbone.vision_tower.encoder.layers[0].mlp.fc1.weight.grad is not None
