"""OpenVLA-OFT's L1 regression action head: an MLP-ResNet over the action tokens' hidden states.

Keys as in moojink/openvla-oft `prismatic/models/action_heads.py` (the released
`action_head--*_checkpoint.pt` files hold them under a DDP `module.` prefix):
    model.layer_norm1, model.fc1, model.mlp_resnet_blocks.{i}.ffn.{0: LayerNorm, 1: Linear},
    model.layer_norm2, model.fc2
The A hidden states of one chunk step (one per action dim) are concatenated, so the
MLP reads A * D features per step and regresses that step's A-dim action.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vla_core.errors import VLAError
from vla_core.models.mlp_resnet import MLPResNet


class L1RegressionActionHead(nn.Module):
    """Regresses an action chunk (B, T, A) from the hidden states of its T * A action tokens.

    `input_features` must be exactly the action tokens' hidden states, (B, T * A, D), in
    chunk-major order (step 0's A tokens first); OpenVLAOFT passes them.

    Args:
        input_dim: width of the LLM hidden states (4096 for LLaMA-2 7B).
        hidden_dim: width of the MLP-ResNet (OFT uses the LLM width, 4096).
        action_dim: dimension of one action (7 for LIBERO, 14 for ALOHA).
        chunk_size: actions per chunk (T; 8 for LIBERO, 25 for ALOHA).
        num_blocks: residual blocks of the MLP-ResNet (2 in OFT).
    """

    def __init__(
        self, input_dim: int = 4096, hidden_dim: int = 4096, action_dim: int = 7, chunk_size: int = 8,
        num_blocks: int = 2,
    ) -> None:
        super().__init__()
        self.input_dim, self.action_dim, self.chunk_size = input_dim, action_dim, chunk_size
        self.model = MLPResNet(num_blocks, input_dim * action_dim, hidden_dim, action_dim)

    def _predict(self, input_features: torch.Tensor) -> torch.Tensor:
        batch, tokens, width = input_features.shape
        if tokens != self.chunk_size * self.action_dim or width != self.input_dim:
            raise VLAError(
                f"L1RegressionActionHead reads the hidden states of chunk_size * action_dim = "
                f"{self.chunk_size * self.action_dim} action tokens of width {self.input_dim}, got features of shape "
                f"{tuple(input_features.shape)}. Use it inside OpenVLAOFT, or match chunk_size/action_dim/input_dim."
            )
        return self.model(input_features.reshape(batch, self.chunk_size, self.action_dim * width))

    def forward(
        self,
        input_features: torch.Tensor,
        states: torch.Tensor,
        attention_mask: torch.Tensor,
        actions: torch.Tensor,
        action_masks: torch.Tensor,
        **kwargs: Any,
    ) -> dict[str, torch.Tensor]:
        """(B, T*A, D), (B, state_dim) unused, (B, T*A), (B, T, >=A), (B, T) -> {"loss": mean L1 over
        valid steps and the A dims (OFT's nn.L1Loss when nothing is padded), "pred_actions": (B, T, A)}."""
        pred = self._predict(input_features)
        if actions.ndim != 3 or actions.shape[1] < self.chunk_size or actions.shape[2] < self.action_dim:
            raise VLAError(
                f"L1RegressionActionHead predicts chunks of {self.chunk_size} x {self.action_dim} but the batch's "
                f"actions are {tuple(actions.shape)}; set the processor's chunk_size (and max_action_dim) to at "
                "least these."
            )
        target = actions[:, : self.chunk_size, : self.action_dim].to(pred.dtype)
        mask = action_masks[:, : self.chunk_size].to(pred.dtype).unsqueeze(-1)
        error = F.l1_loss(pred, target, reduction="none") * mask
        loss = error.sum() / (mask.sum() * self.action_dim).clamp(min=1.0)
        return {"loss": loss, "pred_actions": pred}

    @torch.no_grad()
    def predict_action(
        self, input_features: torch.Tensor, states: torch.Tensor, attention_mask: torch.Tensor, **kwargs: Any
    ) -> torch.Tensor:
        """(B, T*A, D) action-token hidden states -> (B, T, A) normalised actions."""
        return self._predict(input_features)
