"""OpenVLA: actions as LLaMA tokens, decoded one at a time by the language-model head.

Sequence (right-padded per row):
    [<BOS>] [image patches (256 per camera)] [prompt tokens ...] [a_1 ... a_A] [</s>]
Each action dim is one token (the last 256 ids of LLaMA's 32000-token vocabulary, see
`ActionTokenizer`). Training is next-token cross-entropy on the action tokens only
(plus the stop token with `predict_stop_token`, as OpenVLA's own fine-tuning does);
inference decodes `action_dim` tokens greedily and maps them to bin centres. The action
chunk is one step (T = 1).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from vla_core.errors import ConfigError
from vla_core.models.packed_linear import packed_linears
from vla_openvla.action_tokenizer import ActionTokenizer
from vla_openvla.prismatic_vla import PrismaticVLA, pack_valid_first

IGNORE_INDEX = -100


class OpenVLA(PrismaticVLA):
    """OpenVLA (Kim et al., 2024): Prismatic DinoSigLIP + LLaMA-2 predicting discrete action tokens.

    `lang_tokens` are the tokenized prompt, starting with <BOS> and right-padded (for the
    released checkpoints: "In: What action should the robot take to {task}?\\nOut:"
    followed by LLaMA's empty token 29871, which `prompt_suffix_token_id: 29871` appends
    where missing). `predict_action` returns (B, 1, action_dim) normalised actions in [-1, 1].

    Args:
        action_dim: action tokens per step (7 for OpenVLA: xyz, rpy, gripper).
        n_action_bins: uniform bins over [-1, 1] per action dim.
        pad_to_multiple_of: padding of the vocabulary; action tokens end at vocab_size - pad_to_multiple_of (32000).
        predict_stop_token: also train on the </s> after the action tokens (OpenVLA's fine-tuning default is true).
        stop_token_id: id of </s>.
        use_kv_cache: decode with a KV cache (false recomputes the whole sequence for every token).

    `vla_head: {type: OpenVLAHead, vocab_size: 32000}` (FluxVLA style) sets the tokenizer vocabulary and
    bins of the action tokens; the logits still come from the language model's LM head.
    """

    supports_kv_cache = True

    def __init__(
        self,
        action_dim: int = 7,
        n_action_bins: int = 256,
        pad_to_multiple_of: int = 64,
        predict_stop_token: bool = False,
        stop_token_id: int = 2,
        use_kv_cache: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        head_tokenizer = getattr(self.vla_head, "action_tokenizer", None)
        if self.vla_head is not None and head_tokenizer is None:
            raise ConfigError("OpenVLA decodes actions with its language-model head; remove vla_head or use "
                              "{type: OpenVLAHead} (use OpenVLAOFT for a regression head).", "model.vla_head")
        if action_dim < 1:
            raise ConfigError(f"is {action_dim}; it must be at least 1.", "model.action_dim")
        # OpenVLAHead (FluxVLA) names the tokenizer's vocabulary whose last ids are the action bins.
        tokenizer_vocab = head_tokenizer.vocab_size if head_tokenizer else self.vocab_size - pad_to_multiple_of
        n_action_bins = head_tokenizer.n_bins if head_tokenizer else n_action_bins
        if tokenizer_vocab <= n_action_bins:
            raise ConfigError(
                f"leaves {tokenizer_vocab} tokenizer ids (vocab_size {self.vocab_size} - pad_to_multiple_of "
                f"{pad_to_multiple_of}), not more than the {n_action_bins} action bins; "
                "enlarge text_config.vocab_size.",
                "model.pad_to_multiple_of",
            )
        self.action_dim, self.predict_stop_token = action_dim, predict_stop_token
        self.stop_token_id, self.use_kv_cache = stop_token_id, use_kv_cache
        self.action_tokenizer = ActionTokenizer(tokenizer_vocab, n_action_bins)
        self.post_init()

    # ---- sequence building -------------------------------------------------------------
    def multimodal_inputs(
        self,
        images: torch.Tensor,
        lang_tokens: torch.Tensor,
        lang_masks: torch.Tensor,
        img_masks: torch.Tensor,
        targets: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Embed [BOS, patches, prompt, targets] per row, right-padded.

        images (B, N_cam, C, H, W); lang_tokens/lang_masks (B, L); img_masks (B, N_cam);
        targets (B, K) long or None -> inputs_embeds (B, S, D), attention mask (B, S) bool,
        labels (B, S) long (targets where they sit in the sequence, IGNORE_INDEX elsewhere).
        """
        self.check_lang_tokens(lang_tokens, lang_masks)
        tokens, valid = self.with_prompt_suffix(lang_tokens, lang_masks.bool())
        labels = torch.full_like(tokens, IGNORE_INDEX)
        if targets is not None:
            tokens = torch.cat([tokens, targets], dim=1)
            labels = torch.cat([labels, targets], dim=1)
            valid = torch.cat([valid, torch.ones_like(targets, dtype=torch.bool)], dim=1)
        if tokens.shape[1] > lang_tokens.shape[1]:  # appended columns go right after each prompt
            stacked, valid = pack_valid_first(torch.stack([tokens, labels], dim=-1), valid)
            tokens, labels = stacked.unbind(-1)
            labels = labels.masked_fill(~valid, IGNORE_INDEX)
        patches, patch_mask = self.encode_images(images, img_masks)
        embeds, mask = self.insert_after_bos(self.embed_tokens(tokens), valid, patches, patch_mask)
        patch_labels = torch.full(patch_mask.shape, IGNORE_INDEX, dtype=labels.dtype, device=labels.device)
        labels = torch.cat([labels[:, :1], patch_labels, labels[:, 1:]], dim=1)
        return embeds, mask, labels

    def target_tokens(self, actions: torch.Tensor) -> torch.Tensor:
        """actions (B, T, >= action_dim) normalised -> (B, action_dim [+1]) token ids of the first step."""
        tokens = self.action_tokenizer.encode(actions[:, 0, : self.action_dim])
        if self.predict_stop_token:
            tokens = torch.cat([tokens, torch.full_like(tokens[:, :1], self.stop_token_id)], dim=1)
        return tokens

    # ---- training ------------------------------------------------------------------------
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
        """Batch tensors (vla_core.protocols.VLA) -> {"loss": next-token cross-entropy on the action
        tokens, "pred_actions": (B, 1, action_dim) teacher-forced argmax, "action_accuracy",
        "action_logits": (B_valid, K, vocab) the logits predicting the K target tokens}.

        Rows whose first action step is padding (action_masks[:, 0] False) carry no loss.
        """
        targets = self.target_tokens(actions)  # (B, K)
        embeds, mask, labels = self.multimodal_inputs(images, lang_tokens, lang_masks, img_masks, targets)
        labels[~action_masks[:, 0].bool()] = IGNORE_INDEX
        hidden = self.last_hidden_state(embeds, mask.long(), self.valid_positions(mask))
        # Position p predicts token p + 1: only the positions before a target need logits.
        predictors = labels[:, 1:] != IGNORE_INDEX  # (B, S-1), K per row with a valid step
        logits = self.language_model.lm_head(hidden[:, :-1][predictors])  # (N_targets, V)
        wanted = labels[:, 1:][predictors]
        pred_actions = torch.zeros(actions.shape[0], 1, self.action_dim, device=hidden.device)
        if wanted.numel() == 0:  # no valid step in the batch: a zero loss that still has a graph
            zero = hidden.sum() * 0.0
            return {"loss": zero, "pred_actions": pred_actions, "action_accuracy": zero.detach()}
        loss = F.cross_entropy(logits.float(), wanted)
        predicted = logits.detach().argmax(dim=-1)
        rows = predictors.any(dim=1)
        pred_actions[rows, 0] = self.action_tokenizer.decode(predicted.view(-1, targets.shape[1])[:, : self.action_dim])
        accuracy = (predicted == wanted).float().mean()
        action_logits = logits.view(-1, targets.shape[1], logits.shape[-1])
        return {"loss": loss, "pred_actions": pred_actions, "action_accuracy": accuracy, "action_logits": action_logits}

    # ---- inference -------------------------------------------------------------------------
    @torch.no_grad()
    def predict_action(
        self,
        images: torch.Tensor,
        lang_tokens: torch.Tensor,
        lang_masks: torch.Tensor,
        img_masks: torch.Tensor,
        states: torch.Tensor | None = None,
        use_kv_cache: bool | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        """Greedy decoding of `action_dim` tokens -> (B, 1, action_dim) normalised actions.

        Rows keep their right padding: the generated tokens are appended after it with the
        padding masked out and position ids continuing each row's prompt, which equals
        decoding every row alone. With prepack_weights (on CPU) the linear layers run through
        packed oneDNN kernels (the same numbers to float rounding).
        """
        with packed_linears(self, enabled=self.prepack_weights):
            token_ids = self.generate_action_tokens(images, lang_tokens, lang_masks, img_masks, use_kv_cache)
        return self.action_tokenizer.decode(token_ids).unsqueeze(1)

    def generate_action_tokens(
        self,
        images: torch.Tensor,
        lang_tokens: torch.Tensor,
        lang_masks: torch.Tensor,
        img_masks: torch.Tensor,
        use_kv_cache: bool | None = None,
    ) -> torch.Tensor:
        """Greedy decoding over the whole vocabulary, as `generate` in the reference -> (B, action_dim) ids."""
        from transformers import DynamicCache

        use_cache = self.use_kv_cache if use_kv_cache is None else use_kv_cache
        embeds, mask, _ = self.multimodal_inputs(images, lang_tokens, lang_masks, img_masks)
        # Without padding, transformers' defaults are exact (no mask, positions 0.. continuing
        # through the cache) and let SDPA use its causal kernel. With padding, the mask hides
        # it and explicit positions continue each row's prompt.
        positions = self.valid_positions(mask)  # (B, S) or None
        padded = positions is not None
        rows = torch.arange(mask.shape[0], device=mask.device)
        next_position = mask.long().sum(dim=1)  # (B,) the position of the first generated token
        last_valid = mask.long().cumsum(dim=1).argmax(dim=1)  # (B,) index of the last valid entry
        cache = DynamicCache(config=self.language_model.config) if use_cache else None
        hidden = self.last_hidden_state(embeds, mask.long() if padded else None, positions, past_key_values=cache,
                                        use_cache=use_cache)
        next_token = self.language_model.lm_head(hidden[rows, last_valid]).argmax(dim=-1)
        generated = [next_token]
        for step in range(1, self.action_dim):
            new_embed = self.embed_tokens(next_token[:, None])
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            step_mask = mask.long() if padded else None
            new_position = (next_position + step - 1)[:, None] if padded else None
            if use_cache:
                hidden = self.last_hidden_state(new_embed, step_mask, new_position, past_key_values=cache,
                                                use_cache=True)
            else:
                embeds = torch.cat([embeds, new_embed], dim=1)
                if padded:
                    positions = torch.cat([positions, new_position], dim=1)
                hidden = self.last_hidden_state(embeds, step_mask, positions)
            next_token = self.language_model.lm_head(hidden[:, -1]).argmax(dim=-1)
            generated.append(next_token)
        return torch.stack(generated, dim=1)
