"""PI0FlowMatching: pi0 (Physical Intelligence), checkpoint-compatible with transformers' PI0.

Prefix: every camera's SigLIP tokens and the instruction through PaliGemma. Suffix: one
state token and the noisy action chunk, each action token fused with the sinusoidal time
embedding by a two-layer MLP, through the Gemma action expert. Attention is joint layer
by layer with the block-causal mask [prefix | state | actions].

Parameter names: `vlm_backbone.*` (PaliGemma), `llm_expert.*` (Gemma), `state_proj`,
`action_in_proj`, `action_time_mlp_in`, `action_time_mlp_out`, `action_out_proj`:
openpi's names at the top level; transformers' PI0 puts the first four under
`embed_action_time.` and the two models under `model.vlm` / `model.dit`
(see `TRANSFORMERS_PI0_NAME_MAPPING`).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vla_core.config import ProjectorSpec
from vla_paligemma.flow_vla import FlowMatchingVLA, SuffixInputs


class PI0FlowMatching(FlowMatchingVLA):
    """pi0: PaliGemma prefix, Gemma action expert, flow matching on action chunks."""

    def __init__(self, state_proj: ProjectorSpec | None = None, **kwargs: Any) -> None:
        """
        Args:
            state_proj: state (max_state_dim) -> the expert's state token (proj_width); a LinearProjector when omitted.
        """
        super().__init__(**kwargs)
        self.state_proj = self._projector(state_proj, self.max_state_dim, self.proj_width, "state_proj")
        self.action_time_mlp_in = nn.Linear(2 * self.proj_width, self.proj_width)
        self.action_time_mlp_out = nn.Linear(self.proj_width, self.proj_width)
        self.post_init()

    def embed_prefix(
        self, images: torch.Tensor, img_masks: torch.Tensor, lang_tokens: torch.Tensor, lang_masks: torch.Tensor,
        states: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Images and instruction (the state goes to the suffix) -> (B, P, D), (B, P) bool."""
        return self.vlm_backbone.embed_prefix(images, img_masks, lang_tokens, lang_masks)

    def embed_suffix(self, states: torch.Tensor, noisy_actions: torch.Tensor, time: torch.Tensor) -> SuffixInputs:
        """[state token, action tokens fused with time] (B, 1 + T, De) in blocks [1, 2, ..., 2]."""
        actions = self.action_in_proj(noisy_actions)
        time_emb = self.time_embedding(time)[:, None, :].expand_as(actions).to(actions.dtype)
        fused = self.action_time_mlp_out(F.silu(self.action_time_mlp_in(torch.cat([actions, time_emb], dim=2))))
        embeds = torch.cat([self.state_proj(states)[:, None, :], fused], dim=1)
        blocks = torch.full((embeds.shape[1],), 2, dtype=torch.long, device=embeds.device)
        blocks[0] = 1
        return SuffixInputs(embeds, blocks, None)

    def context_tokens(self, states: torch.Tensor) -> torch.Tensor:
        """The state token (B, 1, De): it attends to the prefix and itself only, so its keys
        and values are the same at every denoising step and join the cache once."""
        return self.state_proj(states)[:, None, :]

    def step_conditioning(self, time_embeddings: torch.Tensor) -> tuple[torch.Tensor, None]:
        """The time half of action_time_mlp_in for every step: (num_steps, B, De), bias included.

        action_time_mlp_in([a, t]) = a @ W_a^T + (t @ W_t^T + b), and the bracket depends on
        the step only, so the loop computes just the action half.
        """
        weight_t = self.action_time_mlp_in.weight[:, self.proj_width:]
        dtype = weight_t.dtype
        return F.linear(time_embeddings.to(dtype), weight_t, self.action_time_mlp_in.bias), None

    def action_tokens(self, noisy_actions: torch.Tensor, time_term: torch.Tensor | None) -> torch.Tensor:
        """(B, T, A) -> (B, T, De): the action/time MLP with the step's precomputed time term."""
        actions = self.action_in_proj(noisy_actions)
        hidden = F.linear(actions, self.action_time_mlp_in.weight[:, : self.proj_width]) + time_term[:, None, :]
        return self.action_time_mlp_out(F.silu(hidden))
