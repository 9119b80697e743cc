"""LlavaVLA: the generic composition, backbone features -> action head.

Two ways to get features:
  * a VLM backbone: `vlm_backbone(images, lang_tokens, img_masks, lang_masks)`, then an
    optional projector to the head's width (GR00T N1.5 = Eagle + flow head);
  * LLaVA style: `vision_backbone` on every camera, `projector` to the LLM width, image
    tokens followed by the instruction tokens through `llm_backbone`.
"""

from __future__ import annotations

from typing import Any

import torch

from vla_core.errors import ConfigError
from vla_core.models.base_vla import BaseVLA
from vla_core.protocols import BackboneOutput


class LlavaVLA(BaseVLA):
    """Backbone features (VLM, or vision encoder + projector + LLM) read by an action head.

    Give either `vlm_backbone`, or `vision_backbone` + `projector` + `llm_backbone`; and a
    `vla_head` whose input width is the backbone's hidden size (or the projector's out_dim).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if self.vla_head is None:
            raise ConfigError("LlavaVLA needs a vla_head.", "model.vla_head")
        if self.vlm_backbone is None:
            missing = [n for n in ("vision_backbone", "projector", "llm_backbone") if getattr(self, n) is None]
            if missing:
                raise ConfigError(
                    "LlavaVLA needs either vlm_backbone, or vision_backbone + projector + llm_backbone; "
                    f"missing {', '.join(missing)}.",
                    "model",
                )
            self._check_width("model.projector.in_dim", self.projector.in_dim, self.vision_backbone.embed_dim)
            self._check_width("model.projector.out_dim", self.projector.out_dim, self.llm_backbone.hidden_size)
        elif self.projector is not None:
            self._check_width("model.projector.in_dim", self.projector.in_dim, self.vlm_backbone.hidden_size)
        self.post_init()

    @staticmethod
    def _check_width(path: str, configured: int, actual: int) -> None:
        if configured != actual:
            message = f"is {configured}, but the features it receives are {actual} wide; set it to {actual}."
            raise ConfigError(message, path)

    def encode(
        self, images: torch.Tensor, lang_tokens: torch.Tensor, lang_masks: torch.Tensor, img_masks: torch.Tensor
    ) -> BackboneOutput:
        """images (B, N_cam, C, H, W), lang_tokens/lang_masks (B, L), img_masks (B, N_cam)
        -> features (B, S, D) and mask (B, S) for the head."""
        if self.vlm_backbone is not None:
            out = self.vlm_backbone(images, lang_tokens, img_masks.bool(), lang_masks.bool())
            if self.projector is not None:
                out = BackboneOutput(self.projector(out.features), out.mask, out.extra)
            return out
        batch, n_cam = images.shape[:2]
        patches = self.vision_backbone(images.flatten(0, 1))  # (B*N_cam, P, Dv)
        image_tokens = self.projector(patches)  # (B*N_cam, P, D)
        n_patch = image_tokens.shape[1]
        image_tokens = image_tokens.reshape(batch, n_cam * n_patch, -1)
        image_mask = img_masks.bool().repeat_interleave(n_patch, dim=1)  # (B, N_cam*P)
        text_tokens = self.llm_backbone.embed_tokens(lang_tokens)
        embeds = torch.cat([image_tokens.to(text_tokens.dtype), text_tokens], dim=1)
        mask = torch.cat([image_mask, lang_masks.bool()], dim=1)
        return self.llm_backbone(embeds, mask)

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
        """Batch tensors (see vla_core.protocols.VLA) -> {"loss", "pred_actions" (B, T, A), ...}."""
        out = self.encode(images, lang_tokens, lang_masks, img_masks)
        return self.vla_head(out.features, states, out.mask, actions, action_masks, **kwargs)

    @torch.no_grad()
    def predict_action(
        self,
        images: torch.Tensor,
        lang_tokens: torch.Tensor,
        lang_masks: torch.Tensor,
        img_masks: torch.Tensor,
        states: torch.Tensor,
        **kwargs: Any,
    ) -> torch.Tensor:
        """Observation tensors -> (B, T, A) normalised actions; `noise=` passes to generative heads."""
        out = self.encode(images, lang_tokens, lang_masks, img_masks)
        return self.vla_head.predict_action(out.features, states, out.mask, **kwargs)
