"""Flow matching pieces shared by pi0 and pi0.5: time embedding, time sampling, noising, loss.

Convention (pi0's): t = 1 is pure noise, t = 0 the data. x_t = t * noise + (1 - t) * actions,
the model predicts the velocity u = noise - actions, and sampling integrates from t = 1 to
t = 0 with Euler steps of dt = -1 / num_steps.
"""

from __future__ import annotations

import math

import torch


def sinusoidal_time_embedding(
    time: torch.Tensor, dim: int, min_period: float, max_period: float, compute_dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """time (B,) in [0, 1] -> (B, dim) float32 [sin, cos] features with periods from min_period to max_period.

    openpi (`create_sinusoidal_pos_embedding` in `models_pytorch/pi0_pytorch.py`) computes the
    periods, angles and sin/cos in float64 and casts the result to the time's float32;
    `compute_dtype=torch.float32` is transformers' PI0 (`PI0TimestepEmbeddings`), up to ~1e-4 apart
    at full width.
    """
    fraction = torch.linspace(0.0, 1.0, dim // 2, dtype=compute_dtype, device=time.device)
    period = min_period * (max_period / min_period) ** fraction
    frequency = 1.0 / period * 2 * math.pi
    angle = frequency[None, :] * time.float().to(compute_dtype)[:, None]
    return torch.cat([angle.sin(), angle.cos()], dim=1).to(torch.float32)


def sample_time(
    batch_size: int, alpha: float, beta: float, scale: float, offset: float, device: torch.device
) -> torch.Tensor:
    """(B,) float32 times from Beta(alpha, beta) * scale + offset: pi0 favours the noisy end."""
    dist = torch.distributions.Beta(torch.tensor(alpha), torch.tensor(beta))
    return (dist.sample((batch_size,)) * scale + offset).float().to(device)


def denoising_times(num_steps: int, schedule: str = "accumulated") -> list[float]:
    """The time at the start of each Euler step, from 1 down to about 1/num_steps.

    "accumulated" (openpi's `PI0Pytorch.sample_actions`): t starts at float32 1.0 and
    `t += dt` in float32 with dt = float32(-1 / num_steps), stepping while t >= -dt / 2, so the
    times carry float32 rounding (0.9, 0.79999995, ...). "exact": the decimals 1 + k * dt
    (transformers' PI0 `sample_actions`).
    """
    if schedule == "exact":
        dt = -1.0 / num_steps
        return [1.0 + step * dt for step in range(num_steps)]
    if schedule != "accumulated":
        raise ValueError(f"schedule must be 'accumulated' or 'exact', got {schedule!r}.")
    dt = torch.tensor(-1.0 / num_steps, dtype=torch.float32)
    time = torch.tensor(1.0, dtype=torch.float32)
    times = []
    while time >= -dt / 2:
        times.append(float(time))
        time = time + dt
    return times


def masked_mse(prediction: torch.Tensor, target: torch.Tensor, step_mask: torch.Tensor | None) -> torch.Tensor:
    """prediction, target (B, T, A); step_mask (B, T) bool, False = padding past the episode end
    -> the mean squared error over the valid steps (all of them: the plain mean)."""
    error = (prediction.float() - target.float()).pow(2)
    if step_mask is None:
        return error.mean()
    weight = step_mask.to(error.dtype)[..., None]
    return (error * weight).sum() / (weight.sum() * error.shape[-1]).clamp(min=1.0)
