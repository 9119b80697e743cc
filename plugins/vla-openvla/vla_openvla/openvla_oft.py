"""OpenVLA-OFT (Kim, Finn, Liang 2025): parallel decoding of an action chunk with a regression head.

Sequence (right-padded per row), one forward pass for the whole chunk:
    [<BOS>] [patches of every camera] [proprio token] [prompt ...] [T*A placeholders] [</s>]
The placeholders are zero embeddings (only their rotary positions differ). As in the
released models, attention is not causal: every token attends to every valid token (the
reference's patched LLaMA calls SDPA with `is_causal=False`; with `attention:
causal_prefix` the prompt stays causal and only the action tokens see each other).
The final hidden states one position before each placeholder (the last prompt token
and the first T*A - 1 placeholders, the positions that would predict those tokens)
go to the action head, e.g. `L1RegressionActionHead`, trained with an L1 loss on
continuous actions.
"""

from __future__ import annotations

from typing import Any, Literal

import torch

from vla_core.config import ProjectorSpec
from vla_core.errors import ConfigError, VLAError
from vla_core.models.packed_linear import packed_linears
from vla_openvla.language_model import additive_attention_mask
from vla_openvla.prismatic_vla import PrismaticVLA, pack_valid_first


class OpenVLAOFT(PrismaticVLA):
    """OpenVLA-OFT: OpenVLA's backbone, continuous action chunks decoded in parallel by `vla_head`.

    `lang_tokens` are the tokenized prompt as for OpenVLA (starting with <BOS>,
    right-padded). `predict_action` returns (B, chunk_size, action_dim) normalised actions.

    Args:
        action_dim: dimension of one action (7 for LIBERO, 14 for ALOHA).
        chunk_size: actions predicted per forward pass (8 for LIBERO, 25 for ALOHA).
        proprio_projector: maps the first `in_dim` state dims to one LLM token, e.g. {type: PrismaticProjector,
            arch: gelu-mlp, in_dim: 8, out_dim: 4096}; null uses no state.
        attention: "bidirectional": every token sees every valid token (the released models);
            "causal_prefix": the prompt is causal, the action tokens see each other.
        stop_token_id: id of </s>, appended after the placeholders as at OFT training time.
    """

    def __init__(
        self,
        action_dim: int = 7,
        chunk_size: int = 8,
        proprio_projector: ProjectorSpec | None = None,
        attention: Literal["bidirectional", "causal_prefix"] = "bidirectional",
        stop_token_id: int = 2,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if self.vla_head is None:
            raise ConfigError("OpenVLAOFT needs a vla_head that reads the action tokens' hidden states, e.g. "
                              "{type: L1RegressionActionHead, input_dim: <LLM width>, ...}.", "model.vla_head")
        for name, wanted in (("action_dim", action_dim), ("chunk_size", chunk_size), ("input_dim", self.hidden_size)):
            have = getattr(self.vla_head, name, wanted)
            if have != wanted:
                raise ConfigError(f"is {have}, but this OpenVLAOFT has {name} {wanted}; set them equal.",
                                  f"model.vla_head.{name}")
        self.proprio_projector = self.build_child("projectors", proprio_projector, "proprio_projector")
        if self.proprio_projector is not None and self.proprio_projector.out_dim != self.hidden_size:
            raise ConfigError(f"is {self.proprio_projector.out_dim}, but the language model is {self.hidden_size} "
                              f"wide; set it to {self.hidden_size}.", "model.proprio_projector.out_dim")
        self.action_dim, self.chunk_size = action_dim, chunk_size
        self.attention, self.stop_token_id = attention, stop_token_id
        self.post_init()

    @property
    def num_action_tokens(self) -> int:
        return self.chunk_size * self.action_dim

    def _prefix(
        self, images: torch.Tensor, img_masks: torch.Tensor, states: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """What goes after <BOS>: patches of every camera, then the proprio token -> (B, K, D), (B, K)."""
        prefix, prefix_mask = self.encode_images(images, img_masks)
        if self.proprio_projector is not None:
            if states is None or states.ndim != 2 or states.shape[1] < self.proprio_projector.in_dim:
                shape = None if states is None else tuple(states.shape)
                raise VLAError(f"OpenVLAOFT's proprio projector reads states (B, >= {self.proprio_projector.in_dim}), "
                               f"got {shape}; pass the robot state or remove proprio_projector.")
            proprio = states[:, : self.proprio_projector.in_dim].to(prefix.dtype)
            token = self.proprio_projector(proprio).unsqueeze(1)  # (B, 1, D)
            prefix = torch.cat([prefix, token], dim=1)
            prefix_mask = torch.cat([prefix_mask, torch.ones_like(prefix_mask[:, :1])], dim=1)
        return prefix, prefix_mask

    def _attention_mask(self, valid: torch.Tensor, is_action: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """valid, is_action (B, S) bool -> (B, 1, S, S) additive mask over (query, key)."""
        allowed = valid[:, None, :].expand(-1, valid.shape[1], -1)
        if self.attention == "causal_prefix":
            length = valid.shape[1]
            causal = torch.ones(length, length, dtype=torch.bool, device=valid.device).tril()
            among_actions = is_action[:, :, None] & is_action[:, None, :]
            allowed = allowed & (causal | among_actions)
        return additive_attention_mask(allowed, dtype)

    def _bidirectional_fast_path(self, embeds: torch.Tensor, valid: torch.Tensor) -> torch.Tensor | None:
        """Without padding, full attention needs no mask tensor: SDPA with `is_causal=False`, as
        the reference's patched LLaMA runs. None when a mask is needed (padding, causal_prefix,
        another attention kernel)."""
        if self.attention != "bidirectional" or self.language_model.config._attn_implementation != "sdpa":
            return None
        if not bool(valid.all()):
            return None
        return self.last_hidden_state(embeds, None, is_causal=False)

    def action_hidden_states(
        self,
        images: torch.Tensor,
        lang_tokens: torch.Tensor,
        lang_masks: torch.Tensor,
        img_masks: torch.Tensor,
        states: torch.Tensor | None,
    ) -> torch.Tensor:
        """Observation tensors (see vla_core.protocols.VLA) -> (B, chunk_size * action_dim, hidden_size)."""
        self.check_lang_tokens(lang_tokens, lang_masks)
        batch, count = lang_tokens.shape[0], self.num_action_tokens
        device = lang_tokens.device
        prompt, prompt_valid = self.with_prompt_suffix(lang_tokens, lang_masks.bool())
        body = torch.cat([
            prompt,
            torch.full((batch, count), self.stop_token_id, dtype=lang_tokens.dtype, device=device),  # zeroed below
            torch.full((batch, 1), self.stop_token_id, dtype=lang_tokens.dtype, device=device),
        ], dim=1)
        is_action = torch.zeros_like(body, dtype=torch.bool)
        is_action[:, prompt.shape[1] : -1] = True
        valid = torch.cat([prompt_valid, torch.ones(batch, count + 1, dtype=torch.bool, device=device)], dim=1)
        packed, valid = pack_valid_first(torch.stack([body, is_action.long()], dim=-1), valid)
        body, is_action = packed[..., 0], packed[..., 1].bool()
        embeds = self.embed_tokens(body).masked_fill(is_action[..., None], 0.0)

        prefix, prefix_mask = self._prefix(images, img_masks, states)
        embeds, valid = self.insert_after_bos(embeds, valid, prefix, prefix_mask)
        is_action = torch.cat([is_action[:, :1], torch.zeros_like(prefix_mask), is_action[:, 1:]], dim=1)
        hidden = self._bidirectional_fast_path(embeds, valid)
        if hidden is None:
            hidden = self.last_hidden_state(embeds, self._attention_mask(valid, is_action, embeds.dtype),
                                            self.valid_positions(valid))

        # The hidden state one position before each action token, as in OFT's training and inference.
        first_action = is_action.long().argmax(dim=1)  # (B,)
        index = (first_action - 1)[:, None] + torch.arange(count, device=device)
        return hidden.gather(1, index[..., None].expand(-1, -1, hidden.shape[-1]))

    def forward(
        self,
        images: torch.Tensor,
        lang_tokens: torch.Tensor,
        lang_masks: torch.Tensor,
        img_masks: torch.Tensor,
        states: torch.Tensor,
        actions: torch.Tensor,
        action_masks: torch.Tensor,
        **kwargs: Any,
    ) -> dict[str, torch.Tensor]:
        """Batch tensors -> the head's {"loss" (L1 for L1RegressionActionHead), "pred_actions" (B, T, A)}."""
        features = self.action_hidden_states(images, lang_tokens, lang_masks, img_masks, states)
        mask = torch.ones(features.shape[:2], dtype=torch.bool, device=features.device)
        return self.vla_head(features, states, mask, actions, action_masks, **kwargs)

    @torch.no_grad()
    def predict_action(
        self,
        images: torch.Tensor,
        lang_tokens: torch.Tensor,
        lang_masks: torch.Tensor,
        img_masks: torch.Tensor,
        states: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        """Observation tensors -> (B, chunk_size, action_dim) normalised actions, in one forward pass.

        With prepack_weights (on CPU) the linear layers run through packed oneDNN kernels (the
        same numbers to float rounding)."""
        with packed_linears(self, enabled=self.prepack_weights):
            features = self.action_hidden_states(images, lang_tokens, lang_masks, img_masks, states)
            mask = torch.ones(features.shape[:2], dtype=torch.bool, device=features.device)
            return self.vla_head.predict_action(features, states, mask, **kwargs)
