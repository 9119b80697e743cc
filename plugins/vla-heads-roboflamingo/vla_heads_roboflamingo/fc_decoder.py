"""RoboFlamingo's `FCDecoder`: the "MLP" policy head, which reads one frame at a time."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from vla_heads_roboflamingo.mlp_heads import MLPNohHead
from vla_heads_roboflamingo.window import pool_frame
from vla_heads_roboflamingo.window_decoder import WindowDecoder


class FCDecoder(WindowDecoder):
    """An MLP on every token, max-pooled per frame, then the arm (tanh) and gripper (sigmoid) MLPs.

    Frames are not mixed: each prediction reads its own frame only, so it needs no history
    (`window_size` 1, the default here; RoboFlamingo feeds it windows of 8 and supervises
    every frame of them, which our last-frame supervision makes pointless).

    Args:
        in_features: width of the backbone features (D).
        window_size: frames per training sample (the data's observation offsets).
        history_len: frames kept online; None = window_size.
        out_features: arm action dims; the gripper is the action dim right after them.
        hidden_size: width of the token MLP's output (the reference's `mlp` ends at it).
        multi_step_action: actions predicted per step (the chunk T).
        use_state: concatenate an MLP encoding of the state (reference's `fc_state`, 128 wide).
        state_dim: state dims read when use_state (the first ones of `states`).
        pooling: "max" (the reference) or "mean" over each frame's valid tokens.
        gripper_loss_weight: weight of the gripper BCE against the arm Huber loss (0.01 as in simulation).
    """

    def __init__(
        self,
        in_features: int,
        window_size: int = 1,
        history_len: int | None = None,
        out_features: int = 6,
        hidden_size: int = 1024,
        multi_step_action: int = 1,
        use_state: bool = False,
        state_dim: int = 7,
        pooling: Literal["max", "mean"] = "max",
        gripper_loss_weight: float = 0.01,
    ) -> None:
        super().__init__(in_features, window_size, history_len, out_features, multi_step_action, pooling,
                         gripper_loss_weight)
        # 0 without use_state: vla's size checks then know the state is not read
        self.use_state, self.state_dim = use_state, (state_dim if use_state else 0)
        self.mlp = nn.Sequential(
            nn.Linear(in_features, in_features // 2),
            nn.ReLU(),
            nn.Linear(in_features // 2, hidden_size),
        )
        width = hidden_size
        if use_state:
            self.fc_state = MLPNohHead(state_dim, 128)
            width += 128
        self.output_heads(width)

    def frame_features(
        self, input_features: torch.Tensor, attention_mask: torch.Tensor, states: torch.Tensor | None
    ) -> torch.Tensor:
        """(N, S, D) -> (N, hidden_size [+ 128]): the token MLP first, then the pool (as the reference)."""
        x = pool_frame(self.mlp(input_features), attention_mask, self.pooling)
        if states is not None:
            x = torch.cat([x, self.fc_state(states[:, : self.state_dim].to(x.dtype))], dim=-1)
        return x

    def decode(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, W, D') -> the same: each frame is decoded on its own."""
        return frames

    def decode_online(self, frame: torch.Tensor) -> torch.Tensor:
        """(B, 1, D') -> (B, D'): only the current frame matters, so nothing is kept."""
        return frame[:, -1]
