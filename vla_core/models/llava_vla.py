"""LlavaVLA: the generic composition, backbone features -> action head.

Two ways to get features:
  * a VLM backbone: `vlm_backbone(images, lang_tokens, img_masks, lang_masks)`, then an
    optional projector to the head's width (GR00T N1.5 = Eagle + flow head);
  * LLaVA style: `vision_backbone` on every camera, `projector` to the LLM width, image
    tokens followed by the instruction tokens through `llm_backbone`.

With observation history (a batch with `obs_masks`, images (B, T_obs, N_cam, C, H, W)) the
backbone runs on every frame with time folded into the batch, so any backbone works
unchanged, and the head reads per-frame features (B, T_obs, S, D) with their masks.
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
    With observation history the backbone encodes every frame and a history head reads them.
    """

    #: Batches with observation history are encoded frame by frame (see `encode_history`).
    supports_history: bool = True

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

    @property
    def supports_rtc(self) -> bool:  # type: ignore[override]
        """Real-time chunking (`predict_action(..., rtc=)`) is the head's: FlowMatchingHead has it."""
        return bool(getattr(self.vla_head, "supports_rtc", False))

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

    def encode_history(
        self, images: torch.Tensor, lang_tokens: torch.Tensor, lang_masks: torch.Tensor, img_masks: torch.Tensor
    ) -> BackboneOutput:
        """images (B, T_obs, N_cam, C, H, W), lang_tokens/lang_masks (B, L), img_masks (B, T_obs,
        N_cam) -> features (B, T_obs, S, D) and mask (B, T_obs, S): every frame through `encode`
        with time folded into the batch (the instruction repeated per frame)."""
        batch, steps = images.shape[:2]
        out = self.encode(
            images.flatten(0, 1),
            lang_tokens.repeat_interleave(steps, dim=0),
            lang_masks.repeat_interleave(steps, dim=0),
            img_masks.flatten(0, 1),
        )
        features, mask = out.features.unflatten(0, (batch, steps)), out.mask.unflatten(0, (batch, steps))
        return BackboneOutput(features, mask, out.extra)

    def _features(
        self, images: torch.Tensor, lang_tokens: torch.Tensor, lang_masks: torch.Tensor, img_masks: torch.Tensor,
        kwargs: dict[str, Any],
    ) -> BackboneOutput:
        """`encode_history` for a batch with observation history (`obs_masks` in kwargs), else `encode`."""
        if kwargs.get("obs_masks") is not None:
            return self.encode_history(images, lang_tokens, lang_masks, img_masks)
        return self.encode(images, lang_tokens, lang_masks, img_masks)

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
        out = self._features(images, lang_tokens, lang_masks, img_masks, kwargs)
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
        """Observation tensors -> (B, T, A) normalised actions; `noise=` passes to generative heads.
        A single frame (no `obs_masks`) given to a stateful head is the next frame of its
        episode: the head adds it to its window (`reset()` starts a new episode)."""
        out = self._features(images, lang_tokens, lang_masks, img_masks, kwargs)
        return self.vla_head.predict_action(out.features, states, out.mask, **kwargs)
