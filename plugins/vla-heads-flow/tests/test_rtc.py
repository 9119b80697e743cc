"""Real-time chunking (guided flow matching) in FlowMatchingHead and its inference twin."""

from __future__ import annotations

import torch
from vla_heads_flow.flow_matching_head import FlowMatchingHead
from vla_heads_flow.flow_matching_inference_head import FlowMatchingInferenceHead

from vla_core.models.rtc_guidance import RTCGuidance


def heads(config: dict) -> tuple[FlowMatchingHead, FlowMatchingInferenceHead]:
    torch.manual_seed(0)
    head = FlowMatchingHead(**config).eval()
    fast = FlowMatchingInferenceHead(**config).eval()
    fast.load_state_dict(head.state_dict())
    return head, fast


def previous_chunk(shape: tuple[int, ...], seed: int = 5) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def frozen_error(actions: torch.Tensor, target: torch.Tensor, delay: int) -> float:
    return float((actions[:, :delay] - target[:, :delay]).abs().mean())


def test_rtc_reproduces_the_frozen_prefix_far_better_than_unguided_sampling(tiny_flow, flow_inputs):
    config = {**tiny_flow, "traj_length": 8, "max_seq_len": 8}
    head, fast = heads(config)
    inputs = {**flow_inputs, "noise": previous_chunk((3, 8, 5), seed=2)}
    target = previous_chunk((3, 8, 5))
    delay = 3
    guidance = RTCGuidance(target, inference_delay=delay, prefix_attention_horizon=6, max_guidance_weight=5.0)
    free = head.predict_action(**inputs)
    guided = head.predict_action(**inputs, rtc=guidance)
    assert frozen_error(guided, target, delay) < 0.25 * frozen_error(free, target, delay)
    # past the horizon the weights are 0: the rows move far less than the frozen ones
    moved_frozen = (guided - free)[:, :delay].abs().mean()
    moved_free = (guided - free)[:, 6:].abs().mean()
    assert moved_free < moved_frozen
    # the inference twin samples RTC chunks through the same path
    assert torch.allclose(fast.predict_action(**inputs, rtc=guidance), guided, atol=1e-6)


def test_the_sign_follows_the_heads_time_convention(tiny_flow, flow_inputs):
    """t runs 0 (noise) -> 1 (data) here: velocity_sign -1 would push the prefix away from the target."""
    head, _ = heads(tiny_flow)
    target = previous_chunk((3, 4, 5))
    guidance = RTCGuidance(target, inference_delay=2, prefix_attention_horizon=4, max_guidance_weight=1.0)
    free = head.predict_action(**flow_inputs)
    guided = head.predict_action(**flow_inputs, rtc=guidance)
    assert frozen_error(guided, target, 2) < frozen_error(free, target, 2)


def test_guidance_weight_zero_is_unguided_sampling_exactly(tiny_flow, flow_inputs):
    head, _ = heads(tiny_flow)
    guidance = RTCGuidance(previous_chunk((3, 4, 5)), inference_delay=2, prefix_attention_horizon=3,
                           max_guidance_weight=0.0)
    assert torch.equal(head.predict_action(**flow_inputs, rtc=guidance), head.predict_action(**flow_inputs))


def test_padded_action_dims_stay_zero_and_unguided(tiny_flow, flow_inputs):
    head, _ = heads({**tiny_flow, "ori_action_dim": 3})
    target = previous_chunk((3, 4, 3))  # the robot's width; the head pads it
    guided = head.predict_action(**flow_inputs, rtc=RTCGuidance(target, 2, 4))
    free = head.predict_action(**flow_inputs)
    assert guided.shape == (3, 4, 3)
    assert frozen_error(guided, target, 2) < frozen_error(free, target, 2)
