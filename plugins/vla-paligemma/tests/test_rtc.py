"""Real-time chunking in pi0 / pi0.5: guided sampling with pi0's time running 1 (noise) -> 0 (data)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import vla_core
from vla_core.models.rtc_guidance import RTCGuidance

ARGS = ("images", "lang_tokens", "lang_masks", "img_masks", "states")


def build(vla_type: str, tiny_vla_spec: Any, perturb: Any) -> Any:
    torch.manual_seed(0)
    return perturb(vla_core.build_vla(tiny_vla_spec(vla_type)), seed=3).eval()


@pytest.fixture(params=["PI0FlowMatching", "PI05FlowMatching"])
def model(request: pytest.FixtureRequest, tiny_vla_spec: Any, perturb: Any) -> Any:
    return build(request.param, tiny_vla_spec, perturb)


def frozen_error(actions: torch.Tensor, target: torch.Tensor, delay: int) -> float:
    return float((actions[:, :delay] - target[:, :delay]).abs().mean())


def test_rtc_pulls_the_frozen_prefix_onto_the_previous_chunk(model: Any, pi0_inputs: dict) -> None:
    cached = True  # the recomputed-prefix path is compared with this one below
    args = [pi0_inputs[k] for k in ARGS]
    target = torch.randn(2, 4, 5, generator=torch.Generator().manual_seed(7))
    guidance = RTCGuidance(target, inference_delay=2, prefix_attention_horizon=3, max_guidance_weight=5.0)
    free = model.predict_action(*args, noise=pi0_inputs["noise"], num_steps=5, use_prefix_cache=cached)
    guided = model.predict_action(*args, noise=pi0_inputs["noise"], num_steps=5, use_prefix_cache=cached,
                                  rtc=guidance)
    # A wrong sign (pi0's time runs backwards) would push the prefix away instead.
    assert frozen_error(guided, target, 2) < 0.25 * frozen_error(free, target, 2)
    assert (guided - free)[:, 3:].abs().mean() < (guided - free)[:, :2].abs().mean()  # weight 0 past the horizon


def test_cached_and_recomputed_guided_sampling_agree(tiny_vla_spec: Any, perturb: Any, pi0_inputs: dict) -> None:
    model = build("PI0FlowMatching", tiny_vla_spec, perturb)
    args = [pi0_inputs[k] for k in ARGS]
    guidance = RTCGuidance(torch.randn(2, 4, 3), inference_delay=1, prefix_attention_horizon=4)  # robot width 3
    cached = model.predict_action(*args, noise=pi0_inputs["noise"], num_steps=3, rtc=guidance)
    recomputed = model.predict_action(*args, noise=pi0_inputs["noise"], num_steps=3, rtc=guidance,
                                      use_prefix_cache=False)
    torch.testing.assert_close(cached, recomputed, atol=1e-4, rtol=0)


@pytest.mark.parametrize(("vla_type", "cached"), [("PI0FlowMatching", False), ("PI05FlowMatching", True)])
def test_guidance_weight_zero_is_unguided_sampling_exactly(
    vla_type: str, cached: bool, tiny_vla_spec: Any, perturb: Any, pi0_inputs: dict
) -> None:
    model = build(vla_type, tiny_vla_spec, perturb)
    # the same kernels on both paths: no fused or packed weights (those are inference-only, no backward)
    model.fuse_expert_weights = model.prepack_weights = False
    args = [pi0_inputs[k] for k in ARGS]
    guidance = RTCGuidance(torch.randn(2, 4, 5), inference_delay=2, prefix_attention_horizon=3,
                           max_guidance_weight=0.0)
    free = model.predict_action(*args, noise=pi0_inputs["noise"], num_steps=3, use_prefix_cache=cached)
    guided = model.predict_action(*args, noise=pi0_inputs["noise"], num_steps=3, use_prefix_cache=cached,
                                  rtc=guidance)
    assert torch.equal(guided, free)
