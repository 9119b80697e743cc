"""DiffusionActionHead: OpenVLA-OFT style DDIM noise prediction over the action chunk.

OpenVLA-OFT's `DiffusionActionHead` predicts the noise added to a whole action chunk with
an MLP-ResNet (`noise_predictor.mlp_resnet`), a sinusoidal timestep encoding
(`time_encoder`) and a DDIM scheduler with the "squaredcos_cap_v2" schedule. In OFT the
LLM itself reads the noisy actions; here the head conditions on the backbone features it
is given (pooled over valid positions) and the state, so the features are computed once
and only the MLP runs per denoising step:

    eps_hat = MLPResNet([pool(features), state, x_t (flattened chunk), sinusoid(t)])
    train:   x_t = sqrt(abar_t) a + sqrt(1 - abar_t) eps,  loss = masked MSE(eps_hat, eps)
    predict: DDIM (eta = 0) from x_T ~ N(0, I) over num_inference_steps steps

Actions are expected normalised to [-1, 1] (the sampler clips its x_0 estimate there).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from vla_core.errors import ConfigError
from vla_core.models.mlp_resnet import MLPResNet
from vla_core.models.pooling import pool
from vla_heads_flow.ddim import BetaSchedule, DDIMScheduler
from vla_heads_flow.inputs import check_chunk, check_features


def timestep_encoding(timesteps: torch.Tensor, dim: int) -> torch.Tensor:
    """OFT's `SinusoidalPositionalEncoding`: (B,) -> (B, dim) = [sin(t f_i), cos(t f_i)],
    f_i = exp(-i ln(10000) / (dim / 2 - 1))."""
    half = dim // 2
    exponent = torch.arange(half, device=timesteps.device) * -math.log(10000) / (half - 1)
    args = timesteps[:, None].float() * torch.exp(exponent)[None, :]
    return torch.cat([args.sin(), args.cos()], dim=-1)


class NoisePredictionModel(nn.Module):
    """OFT's noise predictor: an MLP-ResNet from the conditioning vector to the chunk's noise.

    Args:
        input_dim: width of the conditioning vector.
        hidden_dim: MLP width.
        output_dim: chunk_size * action_dim.
        num_blocks: residual blocks.
    """

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, num_blocks: int = 2) -> None:
        super().__init__()
        self.mlp_resnet = MLPResNet(num_blocks, input_dim, hidden_dim, output_dim)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.mlp_resnet(obs)


class DiffusionActionHead(nn.Module):
    """DDIM diffusion over the action chunk with an MLP-ResNet noise predictor (OpenVLA-OFT style).

    Extra batch keys: `noise` (B, T, A) for reproducible sampling and training;
    `diffusion_timesteps` (B,) long to fix the training timesteps.

    Args:
        input_dim: width of the backbone features.
        action_dim: width of one action.
        chunk_size: number of actions in a chunk (T).
        state_dim: width of the state the head conditions on; 0 ignores the state.
        hidden_dim: width of the MLP-ResNet and of the timestep encoding.
        num_blocks: residual blocks of the MLP-ResNet (OFT: 2).
        num_diffusion_steps_train: length of the DDIM noise schedule (OFT: 50).
        num_inference_steps: DDIM steps in predict_action (OFT: 50); at most num_diffusion_steps_train.
        beta_schedule: noise schedule: "squaredcos_cap_v2" (OFT), "linear" or "scaled_linear".
        clip_sample: clip the sampler's clean-chunk estimate to [-1, 1] (normalised actions).
        pooling: how backbone features become one vector: "mean" over valid positions or the "last" one.
    """

    supports_compile: bool = False

    def __init__(
        self,
        input_dim: int,
        action_dim: int,
        chunk_size: int,
        state_dim: int = 0,
        hidden_dim: int = 256,
        num_blocks: int = 2,
        num_diffusion_steps_train: int = 50,
        num_inference_steps: int = 50,
        beta_schedule: BetaSchedule = "squaredcos_cap_v2",
        clip_sample: bool = True,
        pooling: Literal["mean", "last"] = "mean",
    ) -> None:
        super().__init__()
        if hidden_dim % 2 or hidden_dim < 4:
            raise ConfigError(f"hidden_dim must be even and >= 4, got {hidden_dim}.", "vla_head.hidden_dim")
        self.input_dim, self.action_dim, self.chunk_size, self.state_dim = input_dim, action_dim, chunk_size, state_dim
        self.hidden_dim, self.pooling = hidden_dim, pooling
        self.num_inference_steps = num_inference_steps
        self.noise_scheduler = DDIMScheduler(num_diffusion_steps_train, beta_schedule, clip_sample=clip_sample)
        self.noise_scheduler.timesteps(num_inference_steps)  # validates the step count
        cond_dim = input_dim + state_dim + chunk_size * action_dim + hidden_dim
        self.noise_predictor = NoisePredictionModel(cond_dim, hidden_dim, chunk_size * action_dim, num_blocks)

    def condition(
        self, input_features: torch.Tensor, states: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        """Pooled features (+ state): (B, input_dim + state_dim)."""
        check_features(input_features, self.input_dim, type(self).__name__, "input_dim")
        dtype = self.noise_predictor.mlp_resnet.fc1.weight.dtype
        cond = pool(input_features.to(dtype), attention_mask, self.pooling)
        if self.state_dim:
            cond = torch.cat([cond, states.reshape(states.shape[0], -1)[:, : self.state_dim].to(dtype)], dim=-1)
        return cond

    def predict_noise(self, cond: torch.Tensor, noisy_actions: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """cond (B, C), x_t (B, T, A), timesteps (B,) -> eps_hat (B, T, A)."""
        time = timestep_encoding(timesteps, self.hidden_dim).to(cond.dtype)
        obs = torch.cat([cond, noisy_actions.flatten(1), time], dim=-1)
        return self.noise_predictor(obs).view(-1, self.chunk_size, self.action_dim)

    def forward(
        self,
        input_features: torch.Tensor,
        states: torch.Tensor,
        attention_mask: torch.Tensor,
        actions: torch.Tensor,
        action_masks: torch.Tensor,
        **kwargs: Any,
    ) -> dict[str, torch.Tensor]:
        """(B, S, D), (B, state_dim), (B, S), actions (B, T, A), action_masks (B, T) -> {"loss": masked
        noise MSE, "pred_actions": the clean-chunk estimate x0_hat (B, T, A)}."""
        cond = self.condition(input_features, states, attention_mask)
        check_chunk(actions, self.chunk_size, "actions")
        step_mask = action_masks[:, : self.chunk_size].to(cond.dtype).unsqueeze(-1)
        actions = actions[..., : self.action_dim].to(cond.dtype) * step_mask  # padded steps carry nothing
        batch = actions.shape[0]
        noise = kwargs.get("noise")
        noise = torch.randn_like(actions) if noise is None else noise.to(actions)
        timesteps = kwargs.get("diffusion_timesteps")
        if timesteps is None:
            timesteps = torch.randint(0, self.noise_scheduler.num_train_timesteps, (batch,), device=actions.device)
        noisy = self.noise_scheduler.add_noise(actions, noise, timesteps)
        eps = self.predict_noise(cond, noisy, timesteps)
        count = step_mask.sum() * self.action_dim  # valid elements: the engine weighs micro-batches by it
        loss = (F.mse_loss(eps, noise, reduction="none") * step_mask).sum() / count.clamp(min=1.0)
        pred_actions = self.noise_scheduler.predict_original(eps, timesteps, noisy)
        return {"loss": loss, "pred_actions": pred_actions, "loss_weight": count.detach()}

    @torch.no_grad()
    def predict_action(
        self, input_features: torch.Tensor, states: torch.Tensor, attention_mask: torch.Tensor, **kwargs: Any
    ) -> torch.Tensor:
        """(B, S, D), (B, state_dim), (B, S) [, noise=(B, T, A)] -> (B, T, A) by DDIM sampling."""
        cond = self.condition(input_features, states, attention_mask)
        batch = cond.shape[0]
        sample = kwargs.get("noise")
        if sample is None:
            sample = torch.randn(batch, self.chunk_size, self.action_dim, device=cond.device, dtype=cond.dtype)
        else:
            check_chunk(sample, self.chunk_size, "noise")
            sample = sample.to(cond)
        steps = self.num_inference_steps
        for t in self.noise_scheduler.timesteps(steps):
            timesteps = torch.full((batch,), t, device=cond.device, dtype=torch.long)
            eps = self.predict_noise(cond, sample, timesteps)
            sample = self.noise_scheduler.step(eps, t, sample, steps)
        return sample
