"""RoboFlamingo's `DeterministicDecoder`: an LSTM over the window of frames (its best head)."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from vla_core.errors import DataError
from vla_heads_roboflamingo.window import pool_frame
from vla_heads_roboflamingo.window_decoder import WindowDecoder


class DeterministicDecoder(WindowDecoder):
    """Max-pooled frames through an LSTM; the arm (tanh) and gripper (sigmoid) MLPs read its output.

    Online it keeps RoboFlamingo's memory: while the episode is shorter than `history_len`
    the LSTM steps once per frame from its hidden state; after that it re-runs over the
    last `history_len` frames from a zero state, which is what a training window sees.

    Args:
        in_features: width of the backbone features (D).
        window_size: frames per training sample (the data's observation offsets); 8 as RoboFlamingo.
        history_len: frames kept online; None = window_size.
        out_features: arm action dims; the gripper is the action dim right after them.
        hidden_size: LSTM width.
        num_layers: LSTM layers.
        policy_rnn_dropout_p: dropout between LSTM layers (only with num_layers > 1).
        multi_step_action: actions predicted per step (the chunk T).
        use_state: add an embedding of the state to every frame (reference's `embed_arm_state` of all
            dims but the last, `embed_gripper_state` of the last one's sign, mixed by `embed_state`).
        state_dim: state dims read when use_state (the first ones of `states`; the last is the gripper).
        pooling: "max" (the reference) or "mean" over each frame's valid tokens.
        gripper_loss_weight: weight of the gripper BCE against the arm Huber loss (0.01 as in simulation).
    """

    def __init__(
        self,
        in_features: int,
        window_size: int = 8,
        history_len: int | None = None,
        out_features: int = 6,
        hidden_size: int = 1024,
        num_layers: int = 4,
        policy_rnn_dropout_p: float = 0.1,
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
        if use_state:
            if state_dim < 2:
                raise DataError("DeterministicDecoder: use_state needs state_dim >= 2 (arm dims + the gripper).")
            self.embed_arm_state = nn.Sequential(nn.Linear(state_dim - 1, in_features), nn.ReLU())
            self.embed_gripper_state = nn.Sequential(nn.Embedding(2, in_features), nn.ReLU())
            self.embed_state = nn.Linear(2 * in_features, in_features)
        # torch warns about dropout on a single layer (there is nothing between layers to drop)
        dropout = policy_rnn_dropout_p if num_layers > 1 else 0.0
        self.rnn = nn.LSTM(in_features, hidden_size, num_layers, batch_first=True, dropout=dropout)
        self.hidden_size = hidden_size
        self.hidden_state: tuple[torch.Tensor, torch.Tensor] | None = None
        self.output_heads(hidden_size)

    def frame_features(
        self, input_features: torch.Tensor, attention_mask: torch.Tensor, states: torch.Tensor | None
    ) -> torch.Tensor:
        """(N, S, D) -> (N, D): the pooled frame, plus the state embedding when use_state."""
        x = pool_frame(input_features, attention_mask, self.pooling)
        if states is not None:
            state = states[:, : self.state_dim].to(x.dtype)
            arm = self.embed_arm_state(state[:, :-1])
            # the normalised gripper state's sign: closed (0) or open (1), as the reference's (s + 1) / 2
            gripper = self.embed_gripper_state((state[:, -1] > 0).long())
            x = x + self.embed_state(torch.cat([arm, gripper], dim=-1))
        return x

    def decode(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, W, D) -> (B, W, hidden_size), from a zero state."""
        return self.rnn(frames)[0]

    def decode_online(self, frame: torch.Tensor) -> torch.Tensor:
        """(B, 1, D) -> (B, hidden_size): one LSTM step while the window fills, then a re-run over it."""
        full = len(self.history_memory) >= self.history_len  # this frame pushes the oldest one out
        self._remember(frame)
        if not full:
            out, self.hidden_state = self.rnn(frame, self.hidden_state)
        else:
            self.hidden_state = None  # the reference refreshes the state from the window
            out = self.rnn(torch.cat(self.history_memory, dim=1))[0]
        return out[:, -1]

    def reset(self) -> None:
        """A new episode: no frames, no hidden state."""
        super().reset()
        self.hidden_state = None
