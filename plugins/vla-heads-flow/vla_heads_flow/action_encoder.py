"""GR00T's action encoder: noisy action chunk + flow time -> one token per chunk step.

    a   = W1(actions)                       (B, T, w)
    tau = sinusoid(t_discretized)           (B, T, w)  the same for every step of a row
    x   = W3(swish(W2([a, tau])))           (B, T, w)

W1/W2/W3 are per-embodiment (`CategorySpecificLinear`); key names follow GR00T
(`action_encoder.W1.W`, `action_encoder.W1.b`, ...).
"""

from __future__ import annotations

import torch
from torch import nn

from vla_heads_flow.embodiment import CategorySpecificLinear


def swish(x: torch.Tensor) -> torch.Tensor:
    """x * sigmoid(x) (SiLU), as GR00T writes it."""
    return x * torch.sigmoid(x)


def sinusoidal_encoding(timesteps: torch.Tensor, embedding_dim: int) -> torch.Tensor:
    """GR00T's `SinusoidalPositionalEncoding`: timesteps (...,) -> (..., embedding_dim) as
    [sin(t * f_i), cos(t * f_i)] with f_i = exp(-i * ln(10000) / (embedding_dim / 2))."""
    half_dim = embedding_dim // 2
    # The reference computes the log in float32 tensors; doing the same keeps the
    # frequencies bit-identical for timesteps up to num_timestep_buckets (~1000).
    step = torch.log(torch.tensor(10000.0)) / half_dim
    exponent = -torch.arange(half_dim, dtype=torch.float, device=timesteps.device) * step.to(timesteps.device)
    freqs = timesteps.float().unsqueeze(-1) * exponent.exp()
    return torch.cat([torch.sin(freqs), torch.cos(freqs)], dim=-1)


class MultiEmbodimentActionEncoder(nn.Module):
    """Embeds a noisy action chunk and its flow-matching time per embodiment.

    Args:
        action_dim: width of one action (padded to the model's max).
        hidden_size: token width w (the DiT width, `input_embedding_dim`).
        num_embodiments: number of embodiments E.
    """

    def __init__(self, action_dim: int, hidden_size: int, num_embodiments: int) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.num_embodiments = num_embodiments
        self.W1 = CategorySpecificLinear(num_embodiments, action_dim, hidden_size)
        self.W2 = CategorySpecificLinear(num_embodiments, 2 * hidden_size, hidden_size)
        self.W3 = CategorySpecificLinear(num_embodiments, hidden_size, hidden_size)

    def forward(self, actions: torch.Tensor, timesteps: torch.Tensor, cat_ids: torch.Tensor) -> torch.Tensor:
        """actions (B, T, action_dim); timesteps (B,) discretised time; cat_ids (B,) -> (B, T, w)."""
        batch, horizon, _ = actions.shape
        if timesteps.shape != (batch,):
            raise ValueError(f"timesteps must have shape ({batch},), got {tuple(timesteps.shape)}")
        a_emb = self.W1(actions, cat_ids)
        tau_emb = sinusoidal_encoding(timesteps.unsqueeze(1).expand(-1, horizon), self.hidden_size)
        x = torch.cat([a_emb, tau_emb.to(a_emb.dtype)], dim=-1)
        x = swish(self.W2(x, cat_ids))
        return self.W3(x, cat_ids)
