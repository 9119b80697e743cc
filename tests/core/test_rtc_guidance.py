"""RTC guidance math against the reference's formulas (Kinetix `get_prefix_weights`, the paper's guidance weight)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vla_core.models.rtc_guidance import RTCGuidance, guidance_weight, guided_velocity, prefix_weights
from vla_core.rtc import RTCError, RTCPrefix


def test_prefix_weights_match_the_kinetix_docstring_example() -> None:
    # get_prefix_weights(start=2, end=6, total=10, "linear"): 1 1 4/5 3/5 2/5 1/5 0 0 0 0
    expected = [1, 1, 0.8, 0.6, 0.4, 0.2, 0, 0, 0, 0]
    assert prefix_weights(2, 6, 10, "linear").tolist() == pytest.approx(expected)
    w = np.array(expected)
    assert prefix_weights(2, 6, 10, "exp").tolist() == pytest.approx((w * np.expm1(w) / (math.e - 1)).tolist())
    assert prefix_weights(2, 6, 10, "zeros").tolist() == [1, 1, 0, 0, 0, 0, 0, 0, 0, 0]
    assert prefix_weights(2, 6, 10, "ones").tolist() == [1, 1, 1, 1, 1, 1, 0, 0, 0, 0]
    # end wins over start: end 0 ignores the prefix entirely
    assert prefix_weights(3, 0, 5, "exp").tolist() == [0] * 5
    with pytest.raises(RTCError, match="one of zeros, ones, linear, exp"):
        prefix_weights(1, 2, 4, "cosine")  # type: ignore[arg-type]


def test_guidance_weight_is_the_papers_clipped_formula() -> None:
    beta = 5.0
    assert guidance_weight(0.0, beta) == beta  # (1 - tau) / tau -> inf, replaced by beta
    for tau in (0.25, 0.5, 0.75):
        formula = (1 - tau) / tau * (tau**2 + (1 - tau) ** 2) / (1 - tau) ** 2
        assert guidance_weight(tau, beta) == pytest.approx(min(beta, formula))
    assert guidance_weight(0.5, beta) == pytest.approx(2.0)
    assert guidance_weight(0.9, beta) == beta


def test_guided_velocity_is_v_plus_the_weighted_vjp() -> None:
    # a linear denoiser x_1 = A x (per row): the vector-Jacobian product is A^T error
    torch.manual_seed(0)
    a = torch.randn(3, 3)
    x = torch.randn(2, 4, 3)
    y = torch.randn(2, 4, 3)
    guidance = RTCGuidance(y, inference_delay=1, prefix_attention_horizon=3, prefix_attention_schedule="linear",
                           max_guidance_weight=5.0)

    def denoise(x_in: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        estimate = x_in @ a.T
        return estimate, estimate - x_in

    tau = 0.5
    w = prefix_weights(1, 3, 4, "linear")[None, :, None]
    error = (y - x @ a.T) * w
    expected_v = x @ a.T - x
    got = guided_velocity(x, tau, denoise, guidance, velocity_sign=1.0)
    assert torch.allclose(got, expected_v + guidance_weight(tau, 5.0) * error @ a, atol=1e-6)
    flipped = guided_velocity(x, tau, denoise, guidance, velocity_sign=-1.0)
    assert torch.allclose(flipped, expected_v - guidance_weight(tau, 5.0) * error @ a, atol=1e-6)


def test_from_prefix_pads_time_and_width_and_masks_padding() -> None:
    prefix = RTCPrefix(actions=np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]), inference_delay=1,
                       prefix_attention_horizon=4)
    guidance = RTCGuidance.from_prefix(prefix, lambda a: torch.nn.functional.pad(torch.as_tensor(a) * 2, (0, 2)),
                                       chunk_size=5, action_dim=2, batch=2)
    assert guidance.prev_chunk_left_over.shape == (2, 5, 4)
    assert guidance.prev_chunk_left_over[1, :3, :2].tolist() == [[2, 4], [6, 8], [10, 12]]
    assert guidance.prefix_attention_horizon == 3  # never past the previous chunk's last row
    assert guidance.action_mask.tolist() == [1, 1, 0, 0]
    with pytest.raises(RTCError, match=r"must be \(L <= 5, 3\)"):
        RTCGuidance.from_prefix(prefix, lambda a: torch.as_tensor(a), chunk_size=5, action_dim=3)
    with pytest.raises(RTCError, match="inference_delay must be in"):
        RTCGuidance(torch.zeros(1, 4, 2), inference_delay=5, prefix_attention_horizon=2)
