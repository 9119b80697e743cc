"""DDIM noise schedule and deterministic sampler (Song et al. 2021), as diffusers'
`DDIMScheduler` computes it, without depending on diffusers.

    alpha_bar_t = prod_{s <= t} (1 - beta_s)
    x_t         = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps                    (add_noise)
    x0_hat      = (x_t - sqrt(1 - alpha_bar_t) eps_hat) / sqrt(alpha_bar_t), clipped     (step, eta = 0)
    x_prev      = sqrt(alpha_bar_prev) x0_hat + sqrt(1 - alpha_bar_prev) eps_hat

Inference timesteps use diffusers' "leading" spacing: t_k = k * (N // n), in reverse order.
"""

from __future__ import annotations

import math
from typing import Literal

import torch

from vla_core.errors import ConfigError

BetaSchedule = Literal["squaredcos_cap_v2", "linear", "scaled_linear"]


def cosine_betas(num_train_timesteps: int, max_beta: float = 0.999) -> torch.Tensor:
    """The "squaredcos_cap_v2" schedule (Nichol & Dhariwal): beta_i = 1 - abar((i+1)/N) / abar(i/N),
    abar(t) = cos((t + 0.008) / 1.008 * pi / 2)^2, capped at max_beta."""

    def alpha_bar(t: float) -> float:
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

    betas = [
        min(1 - alpha_bar((i + 1) / num_train_timesteps) / alpha_bar(i / num_train_timesteps), max_beta)
        for i in range(num_train_timesteps)
    ]
    return torch.tensor(betas, dtype=torch.float32)


class DDIMScheduler:
    """DDIM with epsilon prediction and eta = 0 (deterministic sampling).

    Args:
        num_train_timesteps: length N of the training noise schedule.
        beta_schedule: "squaredcos_cap_v2" (OpenVLA-OFT's choice), "linear" or "scaled_linear".
        beta_start: first beta of the linear schedules.
        beta_end: last beta of the linear schedules.
        clip_sample: clip the predicted clean sample to [-clip_sample_range, clip_sample_range].
        clip_sample_range: the clipping bound (actions normalised to [-1, 1] -> 1.0).
        set_alpha_to_one: the step before t=0 uses alpha_bar = 1 (else alpha_bar_0).
    """

    def __init__(
        self,
        num_train_timesteps: int = 50,
        beta_schedule: BetaSchedule = "squaredcos_cap_v2",
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
        clip_sample: bool = True,
        clip_sample_range: float = 1.0,
        set_alpha_to_one: bool = True,
    ) -> None:
        if beta_schedule == "squaredcos_cap_v2":
            betas = cosine_betas(num_train_timesteps)
        elif beta_schedule == "linear":
            betas = torch.linspace(beta_start, beta_end, num_train_timesteps, dtype=torch.float32)
        elif beta_schedule == "scaled_linear":
            betas = torch.linspace(beta_start**0.5, beta_end**0.5, num_train_timesteps, dtype=torch.float32) ** 2
        else:
            raise ConfigError(
                f"unknown beta_schedule {beta_schedule!r}; use squaredcos_cap_v2, linear or scaled_linear."
            )
        self.num_train_timesteps = num_train_timesteps
        self.betas = betas
        self.alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
        self.final_alpha_cumprod = torch.tensor(1.0) if set_alpha_to_one else self.alphas_cumprod[0]
        self.clip_sample, self.clip_sample_range = clip_sample, clip_sample_range

    def timesteps(self, num_inference_steps: int) -> list[int]:
        """The inference timesteps, noisiest first ("leading" spacing)."""
        if not 1 <= num_inference_steps <= self.num_train_timesteps:
            raise ConfigError(
                f"num_inference_steps={num_inference_steps} must be in [1, num_train_timesteps="
                f"{self.num_train_timesteps}]."
            )
        ratio = self.num_train_timesteps // num_inference_steps
        return [k * ratio for k in reversed(range(num_inference_steps))]

    def add_noise(self, original: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """x_t for x_0 `original` (B, ...), `noise` like it, timesteps (B,) long."""
        alphas = self.alphas_cumprod.to(device=original.device, dtype=original.dtype)[timesteps]
        alphas = alphas.reshape(-1, *([1] * (original.ndim - 1)))
        return alphas**0.5 * original + (1 - alphas) ** 0.5 * noise

    def predict_original(
        self, model_output: torch.Tensor, timestep: int | torch.Tensor, sample: torch.Tensor
    ) -> torch.Tensor:
        """x0_hat from an epsilon prediction (not clipped); timestep an int or (B,) long."""
        alphas = self.alphas_cumprod.to(sample.device)[timestep]
        if alphas.ndim:
            alphas = alphas.reshape(-1, *([1] * (sample.ndim - 1)))
        return (sample - (1 - alphas) ** 0.5 * model_output) / alphas**0.5

    def step(
        self, model_output: torch.Tensor, timestep: int, sample: torch.Tensor, num_inference_steps: int
    ) -> torch.Tensor:
        """One deterministic DDIM step from `timestep` to `timestep - N // num_inference_steps`."""
        prev_timestep = timestep - self.num_train_timesteps // num_inference_steps
        alpha_prod_t = self.alphas_cumprod[timestep]
        alpha_prod_prev = self.alphas_cumprod[prev_timestep] if prev_timestep >= 0 else self.final_alpha_cumprod
        beta_prod_t = 1 - alpha_prod_t
        original = (sample - beta_prod_t**0.5 * model_output) / alpha_prod_t**0.5
        if self.clip_sample:
            original = original.clamp(-self.clip_sample_range, self.clip_sample_range)
        direction = (1 - alpha_prod_prev) ** 0.5 * model_output
        return alpha_prod_prev**0.5 * original + direction
