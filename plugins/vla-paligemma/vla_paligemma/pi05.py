"""PI05FlowMatching: pi0.5 (Physical Intelligence), as openpi's PyTorch implementation runs it.

Two changes from pi0:
* time conditions the expert only through adaptive RMSNorm: a time MLP
  (`time_mlp_in`, `time_mlp_out`, SiLU after each) turns the sinusoidal embedding into
  the adaRMS conditioning of every expert norm; action tokens are `action_in_proj(x_t)`
  alone, with no time concatenated and no state token;
* the state enters the language prefix as text: the processor (`OpenPIProcessor`, as openpi's
  `PaligemmaTokenizer.tokenize`) writes `"Task: {task}, State: {bins};\nAction: "` through the
  PaliGemma tokenizer, the bins being `np.digitize` over 256 equal bins of [-1, 1]. The model
  reads the state from `lang_tokens` only.

`discrete_state_input: token_ids` is the older, non-reference variant: the bins appended
after the padded prompt as the ids `state_token_offset + bin` (clamped to [0, 255]), for a
processor whose tokenizer cannot write numbers (the word-level one of the tiny configs).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from vla_core.errors import ConfigError
from vla_paligemma.flow_vla import FlowMatchingVLA, SuffixInputs
from vla_paligemma.state_tokens import state_token_ids


class PI05FlowMatching(FlowMatchingVLA):
    """pi0.5: adaRMS time conditioning in the expert, discretised state in the prefix."""

    def __init__(
        self,
        discrete_state_input: Literal["prompt", "token_ids"] = "prompt",
        state_token_offset: int | None = None,
        num_state_bins: int = 256,
        **kwargs: Any,
    ) -> None:
        """
        Args:
            discrete_state_input: "prompt" (openpi): the processor writes the discretised state into the prompt
                text (processor type OpenPIProcessor) and the model reads lang_tokens only; "token_ids" (not the
                reference; for word-level tokenizers): the model appends one id per state dimension after the prompt.
            state_token_offset: with token_ids, the id of state bin 0 (bin b is offset + b); defaults to the last
                num_state_bins ids of the VLM vocabulary.
            num_state_bins: with token_ids, bins over [-1, 1] per state dimension (openpi: 256).
        """
        super().__init__(**kwargs)
        if discrete_state_input not in ("prompt", "token_ids"):
            raise ConfigError(
                f"is {discrete_state_input!r}; use 'prompt' or 'token_ids'.", "model.discrete_state_input"
            )
        processor_type = (self.processor_spec or {}).get("type")
        if discrete_state_input == "prompt" and processor_type == "VLAProcessor":
            raise ConfigError(
                "is 'prompt' (pi0.5 reads the state from the prompt text, as openpi), but VLAProcessor does not write "
                "the state into the prompt: use processor type OpenPIProcessor (model_type: pi05, a SentencePiece "
                "PaliGemma tokenizer), or set discrete_state_input: token_ids to append the state bins as token ids.",
                "model.discrete_state_input",
            )
        self.discrete_state_input = discrete_state_input
        if self.llm_expert.adarms_cond_dim != self.proj_width:
            raise ConfigError(
                f"is {self.llm_expert.adarms_cond_dim}: pi0.5 conditions every expert norm on the time embedding, "
                f"so set llm_expert.adarms_cond_dim: {self.proj_width} (proj_width).",
                "model.llm_expert.adarms_cond_dim",
            )
        vocab = self.vlm_backbone.config.text_config.vocab_size
        self.num_state_bins = num_state_bins
        self.state_token_offset = vocab - num_state_bins if state_token_offset is None else state_token_offset
        if not 0 <= self.state_token_offset <= vocab - num_state_bins:
            raise ConfigError(
                f"is {self.state_token_offset}, but state tokens offset..offset+{num_state_bins - 1} must lie in the "
                f"VLM vocabulary (0..{vocab - 1}); use at most {vocab - num_state_bins}.",
                "model.state_token_offset",
            )
        self.time_mlp_in = nn.Linear(self.proj_width, self.proj_width)
        self.time_mlp_out = nn.Linear(self.proj_width, self.proj_width)
        self.post_init()

    def _expert_defaults(self, proj_width: int) -> dict[str, Any]:
        return {"hidden_size": proj_width, "adarms_cond_dim": proj_width}

    def state_tokens(self, states: torch.Tensor) -> torch.Tensor:
        """states (B, max_state_dim) normalised -> token ids (B, max_state_dim)."""
        return state_token_ids(states, self.state_token_offset, self.num_state_bins)

    def embed_prefix(
        self, images: torch.Tensor, img_masks: torch.Tensor, lang_tokens: torch.Tensor, lang_masks: torch.Tensor,
        states: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Images and the prompt (with the state in its text), or with token_ids the prompt then one
        token per state dimension -> (B, P, D), (B, P) bool."""
        if self.discrete_state_input == "prompt":
            return self.vlm_backbone.embed_prefix(images, img_masks, lang_tokens, lang_masks)
        state_ids = self.state_tokens(states)
        tokens = torch.cat([lang_tokens, state_ids.to(lang_tokens.dtype)], dim=1)
        masks = torch.cat([lang_masks.bool(), torch.ones_like(state_ids, dtype=torch.bool)], dim=1)
        return self.vlm_backbone.embed_prefix(images, img_masks, tokens, masks)

    def time_conditioning(self, time_emb: torch.Tensor) -> torch.Tensor:
        """(..., De) sinusoidal embedding -> (..., De) adaRMS conditioning."""
        time_emb = time_emb.to(self.time_mlp_in.weight.dtype)
        return F.silu(self.time_mlp_out(F.silu(self.time_mlp_in(time_emb))))

    def embed_suffix(self, states: torch.Tensor, noisy_actions: torch.Tensor, time: torch.Tensor) -> SuffixInputs:
        """Action tokens (B, T, De), one block; time only as the adaRMS conditioning (B, De)."""
        embeds = self.action_in_proj(noisy_actions)
        blocks = torch.ones(embeds.shape[1], dtype=torch.long, device=embeds.device)
        return SuffixInputs(embeds, blocks, self.time_conditioning(self.time_embedding(time)))

    def context_tokens(self, states: torch.Tensor) -> None:
        """None: the state is already in the prefix."""
        return None

    def step_conditioning(self, time_embeddings: torch.Tensor) -> tuple[None, torch.Tensor]:
        """(num_steps, B, De) -> adaRMS conditioning of every step, computed before the loop."""
        return None, self.time_conditioning(time_embeddings)

    def action_tokens(self, noisy_actions: torch.Tensor, time_term: torch.Tensor | None) -> torch.Tensor:
        """(B, T, A) -> (B, T, De): action_in_proj only."""
        return self.action_in_proj(noisy_actions)
