"""DiffusionActionHead and its DDIM scheduler, checked against the DDIM equations in float64."""

from __future__ import annotations

import math

import pytest
import torch
from vla_heads_flow.ddim import DDIMScheduler
from vla_heads_flow.diffusion_action_head import DiffusionActionHead

from vla_core.errors import ConfigError, DataError
from vla_core.testing import check_action_head

TINY = dict(input_dim=12, action_dim=3, chunk_size=4, state_dim=5, hidden_dim=32, num_diffusion_steps_train=50,
            num_inference_steps=10)


def cosine_alpha_bars(n: int) -> torch.Tensor:
    """abar_t = prod_{i<=t} (1 - beta_i), beta_i = min(1 - f((i+1)/n) / f(i/n), 0.999),
    f(t) = cos((t + 0.008) / 1.008 * pi / 2)^2 (improved DDPM, "squaredcos_cap_v2")."""
    f = [math.cos((i / n + 0.008) / 1.008 * math.pi / 2) ** 2 for i in range(n + 1)]
    betas = torch.tensor([min(1 - f[i + 1] / f[i], 0.999) for i in range(n)], dtype=torch.float64)
    return torch.cumprod(1 - betas, dim=0)


def test_schedule_and_noising_follow_the_equations():
    scheduler = DDIMScheduler(num_train_timesteps=50)
    abar = cosine_alpha_bars(50)
    assert torch.allclose(scheduler.alphas_cumprod.double(), abar, atol=1e-6)
    assert scheduler.timesteps(10) == [45, 40, 35, 30, 25, 20, 15, 10, 5, 0]
    assert scheduler.timesteps(50)[:3] == [49, 48, 47]
    x0, eps = torch.randn(2, 4, 3), torch.randn(2, 4, 3)
    t = torch.tensor([3, 41])
    expected = abar[t].sqrt()[:, None, None] * x0 + (1 - abar[t]).sqrt()[:, None, None] * eps
    assert torch.allclose(scheduler.add_noise(x0, eps, t).double(), expected, atol=1e-6)
    linear = DDIMScheduler(num_train_timesteps=10, beta_schedule="linear")
    assert torch.allclose(linear.alphas_cumprod.double(),
                          torch.cumprod(1 - torch.linspace(1e-4, 0.02, 10, dtype=torch.float64), 0), atol=1e-6)


def test_ddim_step_follows_the_equations():
    scheduler = DDIMScheduler(num_train_timesteps=50, clip_sample=False)
    abar = cosine_alpha_bars(50)
    sample, eps = torch.randn(2, 4, 3), torch.randn(2, 4, 3)
    for t, prev in ((45, 40), (5, 0), (0, None)):
        a_t, a_prev = abar[t], (abar[prev] if prev is not None else torch.tensor(1.0, dtype=torch.float64))
        x0 = (sample.double() - (1 - a_t).sqrt() * eps.double()) / a_t.sqrt()
        expected = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps.double()
        assert torch.allclose(scheduler.step(eps, t, sample, 10).double(), expected, atol=1e-5)
    clipped = DDIMScheduler(num_train_timesteps=50).step(eps * 0, 45, sample * 100, 10)
    assert torch.allclose(clipped, abar[40].sqrt().float() * (sample * 100).clamp(-1, 1), atol=1e-6)


def test_ddim_with_the_true_noise_recovers_the_clean_chunk():
    """With an oracle noise predictor for a fixed x0 in [-1, 1], deterministic DDIM lands on x0."""
    scheduler = DDIMScheduler(num_train_timesteps=50)
    x0 = torch.rand(2, 4, 3) * 2 - 1
    sample = torch.randn(2, 4, 3)
    for t in scheduler.timesteps(10):
        a_t = scheduler.alphas_cumprod[t]
        eps = (sample - a_t.sqrt() * x0) / (1 - a_t).sqrt()
        sample = scheduler.step(eps, t, sample, 10)
    assert torch.allclose(sample, x0, atol=1e-4)


def test_action_head_contract():
    torch.manual_seed(0)
    check_action_head(DiffusionActionHead(**TINY), input_dim=12, state_dim=5, action_dim=3, chunk_size=4)
    check_action_head(DiffusionActionHead(**{**TINY, "state_dim": 0, "pooling": "last"}), input_dim=12,
                      state_dim=5, action_dim=3, chunk_size=4)


def test_parameter_names_follow_openvla_oft():
    keys = set(DiffusionActionHead(**TINY).state_dict())
    for name in ("layer_norm1.weight", "fc1.weight", "mlp_resnet_blocks.0.ffn.0.weight",
                 "mlp_resnet_blocks.1.ffn.1.bias", "layer_norm2.bias", "fc2.weight"):
        assert f"noise_predictor.mlp_resnet.{name}" in keys
    assert len(keys) == 16  # 2 LayerNorms + 2 Linears + 2 blocks x (LayerNorm + Linear), weight and bias each


def test_loss_decreases_when_overfitting_one_batch():
    torch.manual_seed(0)
    head = DiffusionActionHead(**TINY)
    g = torch.Generator().manual_seed(2)
    feats, states = torch.randn(4, 6, 12, generator=g), torch.randn(4, 5, generator=g)
    mask = torch.ones(4, 6, dtype=torch.bool)
    batch = dict(actions=torch.rand(4, 4, 3, generator=g) * 2 - 1, action_masks=torch.ones(4, 4, dtype=torch.bool),
                 noise=torch.randn(4, 4, 3, generator=g), diffusion_timesteps=torch.tensor([3, 17, 30, 44]))
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-3)
    losses = []
    for _ in range(100):
        loss = head(feats, states, mask, **batch)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0], (losses[0], losses[-1])


def test_sampling_is_reproducible_and_checked():
    torch.manual_seed(0)
    head = DiffusionActionHead(**TINY).eval()
    feats, states, mask = torch.randn(2, 6, 12), torch.randn(2, 5), torch.ones(2, 6, dtype=torch.bool)
    noise = torch.randn(2, 4, 3)
    first = head.predict_action(feats, states, mask, noise=noise)
    assert first.shape == (2, 4, 3) and first.abs().max() <= 1.0 + 1e-6
    assert torch.equal(first, head.predict_action(feats, states, mask, noise=noise))
    assert not torch.allclose(first, head.predict_action(feats, states, mask, noise=-noise))
    with pytest.raises(DataError, match="Set the head's input_dim"):
        head.predict_action(feats[..., :8], states, mask)
    with pytest.raises(ConfigError, match="num_inference_steps"):
        DiffusionActionHead(**{**TINY, "num_inference_steps": 51})
