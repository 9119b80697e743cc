"""Real-time chunking (RTC) guidance for flow-matching samplers (Black, Galliker, Levine 2025,
"Real-Time Execution of Action Chunking Flow Policies").

While a chunk is being computed the robot keeps executing the previous one, so the first
`inference_delay` actions of the new chunk are already decided: they are the previous
chunk's. RTC samples the new chunk by guided flow matching so that it agrees with them
(inpainting): at every Euler step the velocity gets a correction, the vector-Jacobian
product of the weighted error between the previous chunk's remaining actions and the
one-step denoised estimate, scaled by a clipped guidance weight.

The math follows Physical Intelligence's reference, `real-time-chunking-kinetix`
`src/model.py` (`get_prefix_weights`, `FlowPolicy.realtime_action`), and LeRobot's port
(`lerobot/policies/rtc/modeling_rtc.py`, `RTCProcessor.denoise_step`); parameter names are
theirs: `inference_delay` (d), `prefix_attention_horizon` (where the weights reach 0;
Kinetix sets it to chunk_size - execute_horizon, LeRobot calls it `execution_horizon`),
`prefix_attention_schedule`, `max_guidance_weight`.

Time convention: `tau` here is the reference's flow time, 0 = noise and 1 = data (GR00T's
FlowMatchingHead integrates this way). pi0/pi0.5 integrate t from 1 (noise) to 0 (data)
with velocity noise - actions; they call `guided_velocity` with tau = 1 - t and
`velocity_sign = -1` (the correction must move x toward the data, and their Euler step is
x + dt * v with dt < 0).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from vla_core.rtc import SCHEDULES, PrefixAttentionSchedule, RTCError, RTCPrefix


def prefix_weights(start: int, end: int, total: int, schedule: PrefixAttentionSchedule = "exp") -> torch.Tensor:
    """The soft prefix mask over a chunk of `total` actions -> (total,) float32.

    Kinetix's `get_prefix_weights`: 1 before `start` (= inference_delay, the frozen actions),
    decaying (linearly, or with "exp" by w * expm1(w) / (e - 1)) until `end`
    (= prefix_attention_horizon), 0 from `end` on; `end` wins over `start`. With start=2,
    end=6, total=10, "linear": 1 1 4/5 3/5 2/5 1/5 0 0 0 0.
    """
    if schedule not in SCHEDULES:
        raise RTCError(f"prefix_attention_schedule must be one of {', '.join(SCHEDULES)}, got '{schedule}'.")
    start = min(start, end)
    index = torch.arange(total, dtype=torch.float32)
    if schedule == "ones":
        weights = torch.ones(total)
    elif schedule == "zeros":
        weights = (index < start).float()
    else:
        weights = ((start - 1 - index) / (end - start + 1) + 1).clamp(0.0, 1.0)
        if schedule == "exp":
            weights = weights * torch.expm1(weights) / (math.e - 1)
    return torch.where(index >= end, torch.zeros_like(weights), weights)


def guidance_weight(tau: float, max_guidance_weight: float) -> float:
    """The paper's guidance weight at flow time tau (0 noise, 1 data), clipped at max_guidance_weight:
    min(beta, (1 - tau) / tau * (tau^2 + (1 - tau)^2) / (1 - tau)^2), with (1 - tau) / tau -> beta at tau = 0."""
    c = (1.0 - tau) / tau if tau > 0 else math.inf
    c = max_guidance_weight if math.isinf(c) else c
    inv_r2 = (tau**2 + (1.0 - tau) ** 2) / (1.0 - tau) ** 2 if tau < 1 else math.inf
    return min(c * inv_r2, max_guidance_weight)


@dataclass(frozen=True)
class RTCGuidance:
    """What a flow sampler needs for one RTC chunk, in the model's (normalised) action space.

    Attributes:
        prev_chunk_left_over: (B, T, A) the previous chunk's actions re-indexed so that row i
            is the action for the same control step as the new chunk's row i; rows past its
            end are ignored (weights 0 from `prefix_attention_horizon` on).
        inference_delay: d, actions executed from the previous chunk while this one is computed
            (weights 1 on rows < d).
        prefix_attention_horizon: rows from here on do not attend to the previous chunk.
        prefix_attention_schedule: how the weights decay between d and the horizon.
        max_guidance_weight: beta, the clip of the guidance weight (Kinetix eval default 5; 0 turns
            guidance off: the sample equals the unguided one).
        action_mask: (A,) 1 for action dims to guide, 0 for padded dims; None guides all.
    """

    prev_chunk_left_over: torch.Tensor
    inference_delay: int
    prefix_attention_horizon: int
    prefix_attention_schedule: PrefixAttentionSchedule = "exp"
    max_guidance_weight: float = 5.0
    action_mask: torch.Tensor | None = None

    def __post_init__(self) -> None:
        chunk = self.prev_chunk_left_over
        if chunk.ndim != 3:
            raise RTCError(f"prev_chunk_left_over must be (B, T, A), got shape {tuple(chunk.shape)}.")
        if not 0 <= self.inference_delay <= chunk.shape[1]:
            raise RTCError(f"inference_delay must be in [0, {chunk.shape[1]}] (the chunk), got {self.inference_delay}.")
        if not 0 <= self.prefix_attention_horizon <= chunk.shape[1]:
            raise RTCError(
                f"prefix_attention_horizon must be in [0, {chunk.shape[1]}], got {self.prefix_attention_horizon}."
            )
        if self.max_guidance_weight < 0 or not math.isfinite(self.max_guidance_weight):
            raise RTCError(f"max_guidance_weight must be a finite number >= 0, got {self.max_guidance_weight}.")
        prefix_weights(0, 0, 1, self.prefix_attention_schedule)  # checks the schedule's name

    @classmethod
    def from_prefix(
        cls, prefix: RTCPrefix, normalize: Callable[[Any], torch.Tensor], chunk_size: int, action_dim: int,
        batch: int = 1,
    ) -> RTCGuidance:
        """An executor's request in robot units -> guidance in the model's space. normalize: (L,
        action_dim) robot units -> (L, W) normalised, zero-padded to the model's width W; the chunk
        becomes (batch, chunk_size, W), rows past L zero and unweighted, dims past action_dim unguided."""
        import numpy as np

        actions = np.asarray(prefix.actions, dtype=np.float64)
        if actions.ndim != 2 or actions.shape[0] > chunk_size or actions.shape[1] != action_dim:
            raise RTCError(
                f"the RTC prefix must be (L <= {chunk_size}, {action_dim}) actions of the previous chunk, got shape "
                f"{actions.shape}."
            )
        normalised = torch.as_tensor(normalize(actions), dtype=torch.float32)
        chunk = torch.zeros(chunk_size, normalised.shape[-1])
        chunk[: len(normalised)] = normalised
        mask = torch.zeros(normalised.shape[-1])
        mask[:action_dim] = 1
        return cls(
            prev_chunk_left_over=chunk.unsqueeze(0).expand(batch, -1, -1).clone(),
            inference_delay=prefix.inference_delay,
            prefix_attention_horizon=min(prefix.prefix_attention_horizon, len(normalised)),
            prefix_attention_schedule=prefix.prefix_attention_schedule,
            max_guidance_weight=prefix.max_guidance_weight,
            action_mask=mask,
        )

    def weights(self, like: torch.Tensor) -> torch.Tensor:
        """The error weights (1, T, A) (time schedule x action mask) on `like`'s device/dtype."""
        total = self.prev_chunk_left_over.shape[1]
        w = prefix_weights(self.inference_delay, self.prefix_attention_horizon, total, self.prefix_attention_schedule)
        w = w.to(device=like.device, dtype=like.dtype)[None, :, None].expand(1, total, like.shape[-1])
        if self.action_mask is not None:
            w = w * self.action_mask.to(device=like.device, dtype=like.dtype)[None, None, :]
        return w

    def check_fits(self, batch: int, chunk: int, width: int, model: str) -> None:
        """RTCError unless prev_chunk_left_over is (batch, chunk, width)."""
        if tuple(self.prev_chunk_left_over.shape) != (batch, chunk, width):
            raise RTCError(
                f"{model} samples chunks of shape ({batch}, {chunk}, {width}) but the RTC guidance holds a previous "
                f"chunk of shape {tuple(self.prev_chunk_left_over.shape)}; pad it to the model's chunk and action "
                "width (Policy.act does that from robot units)."
            )


def guided_velocity(
    x_t: torch.Tensor,
    tau: float,
    denoise: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    guidance: RTCGuidance,
    velocity_sign: float = 1.0,
) -> torch.Tensor:
    """One RTC-corrected velocity: Kinetix `pinv_corrected_velocity`.

    x_t (B, T, A) the current sample; tau the flow time (0 noise, 1 data); denoise(x) ->
    (x_1 estimate (B, T, A), v (B, T, A)), differentiable in x; velocity_sign +1 when the
    sampler moves toward the data along +v (GR00T), -1 when along -v (pi0) -> v + sign *
    w(tau) * J^T [(y - x_1) * W], with J = d x_1 / d x_t (a vector-Jacobian product; the
    batch rows are independent, so one backward gives every row's product).
    """
    with torch.enable_grad():
        x = x_t.detach().requires_grad_(True)
        estimate, velocity = denoise(x)
        target = guidance.prev_chunk_left_over.to(device=estimate.device, dtype=estimate.dtype)
        error = (target - estimate) * guidance.weights(estimate)
        (correction,) = torch.autograd.grad(estimate, x, grad_outputs=error.detach())
    weight = guidance_weight(tau, guidance.max_guidance_weight)
    return velocity.detach() + velocity_sign * weight * correction

