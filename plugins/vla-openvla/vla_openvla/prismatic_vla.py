"""What OpenVLA and OpenVLA-OFT share: Prismatic's vision -> projector -> LLaMA layout.

Parameter names are those of the Hugging Face `OpenVLAForActionPrediction`:
`vision_backbone.featurizer.*`, `vision_backbone.fused_featurizer.*`, `projector.fc1.*`,
`language_model.model.*`, `language_model.lm_head.weight`. Projected image patches (and
OFT's proprio token) are inserted right after the first (BOS) token of the prompt.
"""

from __future__ import annotations

from typing import Any

import torch

from vla_core.errors import ConfigError, VLAError
from vla_core.models import BaseVLA
from vla_openvla.language_model import build_language_model, text_config_with_defaults


def pack_valid_first(values: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Move each row's valid entries to the front, keeping their order.

    values (B, L, ...) any dtype; valid (B, L) bool -> (values, valid) reordered the same way.
    Used to append targets/placeholders right after each prompt's last valid token.
    """
    order = torch.argsort((~valid).to(torch.uint8), dim=1, stable=True)
    index = order.view(*order.shape, *([1] * (values.ndim - 2))).expand_as(values)
    return values.gather(1, index), valid.gather(1, order)


class PrismaticVLA(BaseVLA):
    """Base of OpenVLA and OpenVLA-OFT (not a component itself: it has no training objective).

    Args:
        text_config: transformers config of the language model, over OpenVLA-7B's LLaMA-2 (vocab 32064);
            e.g. {hidden_size: 64, num_hidden_layers: 2, ...}.
        attn_implementation: transformers attention kernel of the language model ("sdpa" or "eager").
        prompt_suffix_token_id: a token every prompt must end with, appended where missing (the released
            models: 29871, LLaMA's empty token after "Out:", which their predict_action appends).
        prepack_weights: on CPU, predict_action runs every large linear layer (both ViTs, projector, LLaMA,
            LM head, action head) through oneDNN with its weight packed once and cached (2-3x faster
            products in fp32 than torch's default here); costs a second copy of those weights in memory.
            No effect on CUDA or in training.

        arch_specifier: Prismatic's "<stage>+<projector>" (OpenVLA: "no-align+fused-gelu-mlp"): the projector
            part must name the projector's arch; the stage part ("no-align": no separate alignment stage)
            concerns the training recipe and is recorded.

    `freeze_llm_backbone: true` keeps the language model fixed (it is `language_model` here).
    `llm_backbone: {type: LLaMa2LLMBackbone, ...}` (FluxVLA style) gives the language model instead of
    text_config; it is kept as `language_model`, so the parameter names stay those of OpenVLA.
    """

    def __init__(
        self,
        text_config: dict[str, Any] | None = None,
        attn_implementation: str = "sdpa",
        prompt_suffix_token_id: int | None = None,
        prepack_weights: bool = True,
        arch_specifier: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.prepack_weights = prepack_weights
        # BaseVLA freezes the part named by each freeze_* flag in post_init(); the LLM is ours.
        self._freeze["language_model"] = self._freeze.pop("llm_backbone")
        self.prompt_suffix_token_id = prompt_suffix_token_id
        missing = [name for name in ("vision_backbone", "projector") if getattr(self, name) is None]
        if missing:
            raise ConfigError(
                f"{type(self).__name__} needs {' and '.join(missing)}: e.g. vision_backbone "
                "{type: PrismaticVisionBackbone} and projector "
                "{type: PrismaticProjector, in_dim: 2176, out_dim: 4096}.",
                "model",
            )
        if self.vlm_backbone is not None:
            raise ConfigError(f"{type(self).__name__} composes a vision backbone and a language model; remove "
                              "vlm_backbone from the config.", "model.vlm_backbone")
        if arch_specifier is not None:
            self._check_arch_specifier(arch_specifier)
        self.arch_specifier = arch_specifier
        if self.llm_backbone is not None:
            # FluxVLA style: llm_backbone {type: LLaMa2LLMBackbone}; its causal LM becomes ours.
            llm = getattr(self.llm_backbone, "llm", None)
            if not isinstance(llm, torch.nn.Module) or not hasattr(llm, "lm_head"):
                raise ConfigError(f"{type(self).__name__} needs a causal language model with an LM head; use "
                                  "llm_backbone {type: LLaMa2LLMBackbone} or leave it out and set text_config.",
                                  "model.llm_backbone")
            self.text_config = dict(self.llm_backbone.text_config)
            self.llm_backbone = None
            self.language_model = llm
        else:
            self.text_config = text_config_with_defaults(text_config)
            self.language_model = build_language_model(self.text_config, attn_implementation)
        self.hidden_size: int = self.language_model.config.hidden_size
        if self.projector.in_dim != self.vision_backbone.embed_dim:
            width = self.vision_backbone.embed_dim
            raise ConfigError(f"is {self.projector.in_dim}, but the vision features are {width} wide; "
                              f"set it to {width}.", "model.projector.in_dim")
        if self.projector.out_dim != self.hidden_size:
            raise ConfigError(f"is {self.projector.out_dim}, but the language model is {self.hidden_size} wide; "
                              f"set it to {self.hidden_size}.", "model.projector.out_dim")

    def _check_arch_specifier(self, arch_specifier: str) -> None:
        projector_arch = arch_specifier.split("+")[-1]
        arch = getattr(self.projector, "arch", None)
        if arch is not None and projector_arch != arch:
            raise ConfigError(f"is '{arch_specifier}', but the projector is '{arch}'; Prismatic's arch_specifier ends "
                              f"with the projector type, e.g. 'no-align+{arch}'.", "model.arch_specifier")

    @property
    def vocab_size(self) -> int:
        """Rows of the (padded) embedding table."""
        return self.language_model.config.vocab_size

    def embed_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, L) long -> (B, L, hidden_size)."""
        return self.language_model.get_input_embeddings()(tokens)

    def encode_images(self, images: torch.Tensor, img_masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """images (B, N_cam, C, H, W), img_masks (B, N_cam) -> projected patches (B, N_cam*P, hidden)
        and their mask (B, N_cam*P); cameras are concatenated along the sequence as in OFT."""
        if images.ndim != 5:
            raise VLAError(f"images must be (B, N_cam, C, H, W), got shape {tuple(images.shape)}; "
                           "batch the processor's output or add the camera dim with images[:, None].")
        batch, n_cam = images.shape[:2]
        patches = self.projector(self.vision_backbone(images.flatten(0, 1)))  # (B*N_cam, P, hidden)
        n_patch = patches.shape[1]
        patch_mask = img_masks.bool().repeat_interleave(n_patch, dim=1)
        return patches.reshape(batch, n_cam * n_patch, -1), patch_mask

    @staticmethod
    def insert_after_bos(
        token_embeds: torch.Tensor, token_mask: torch.Tensor, inserted: torch.Tensor, inserted_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """[tok_0, inserted..., tok_1, ...]: Prismatic puts image patches after <BOS>.

        token_embeds (B, L, D), token_mask (B, L), inserted (B, K, D), inserted_mask (B, K)
        -> embeds (B, K + L, D), mask (B, K + L).
        """
        embeds = torch.cat([token_embeds[:, :1], inserted.to(token_embeds.dtype), token_embeds[:, 1:]], dim=1)
        mask = torch.cat([token_mask[:, :1], inserted_mask, token_mask[:, 1:]], dim=1)
        return embeds, mask

    @staticmethod
    def valid_positions(mask: torch.Tensor) -> torch.Tensor | None:
        """Rotary positions that skip masked entries (a masked camera's patches, padding):
        mask (B, S) bool -> (B, S) long, or None when nothing is masked (0..S-1 then)."""
        if bool(mask.all()):
            return None
        return (mask.long().cumsum(dim=1) - 1).clamp(min=0)

    def last_hidden_state(
        self,
        inputs_embeds: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        """The decoder's final (normed) hidden states (B, S, hidden), without the LM head. No KV
        cache unless `use_cache=True` and `past_key_values` are passed (decoding)."""
        kwargs.setdefault("use_cache", False)
        out = self.language_model.model(
            inputs_embeds=inputs_embeds, attention_mask=attention_mask, position_ids=position_ids, **kwargs
        )
        return out.last_hidden_state

    @staticmethod
    def check_lang_tokens(lang_tokens: torch.Tensor, lang_masks: torch.Tensor) -> None:
        if lang_tokens.ndim != 2 or lang_tokens.shape != lang_masks.shape:
            raise VLAError(f"lang_tokens {tuple(lang_tokens.shape)} and lang_masks {tuple(lang_masks.shape)} must "
                           "both be (B, L); check the processor's tokenizer output.")
        if not bool(lang_masks[:, 0].all()):
            raise VLAError("every prompt must start with a valid <BOS> token (lang_masks[:, 0] all True): OpenVLA "
                           "inserts the image after it. Right-pad the prompts and tokenize with the BOS token.")

    def with_prompt_suffix(self, tokens: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append `prompt_suffix_token_id` to the prompts that do not already end with it.

        tokens, valid (B, L) -> (B, L + 1): the new column is valid only where it was needed
        (callers move valid entries to the front afterwards). Unchanged without a suffix id or
        when every prompt already ends with it.
        """
        if self.prompt_suffix_token_id is None:
            return tokens, valid
        last = tokens.gather(1, valid.long().cumsum(dim=1).argmax(dim=1, keepdim=True))  # (B, 1)
        suffix = torch.full_like(last, self.prompt_suffix_token_id)
        needed = last != suffix
        if not bool(needed.any()):
            return tokens, valid
        return torch.cat([tokens, suffix], dim=1), torch.cat([valid, needed], dim=1)
