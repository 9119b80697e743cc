"""What RoboFlamingo's three policy heads share: per-frame features over a window, the arm
chunk + binary gripper outputs and their loss, and the online window between `reset()`s.

A subclass defines `frame_features` (one vector per frame) and `decode` (the window ->
one output per frame, causal: output t sees frames <= t). Shapes (B batch, W frames in the
window, S tokens, D feature width, T = multi_step_action, A = out_features + 1):

    training / batched: input_features (B, W, S, D) + obs_masks (B, W), or one frame (B, S, D)
    online:             predict_action with (B, S, D): the next frame of the episode
    output:             (B, T, A) normalised; the last dim is the gripper (+1 open / -1 close)

As in RoboFlamingo with `last_action` (its `--use_hist` training), the output at the last
frame of the window is supervised; the action targets are the chunk at the current frame.
"""

from __future__ import annotations

import abc
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from vla_core.errors import DataError
from vla_heads_roboflamingo.mlp_heads import MLPSigmoidHead, MLPTanhHead
from vla_heads_roboflamingo.window import at_index, real_frames_first


class WindowDecoder(nn.Module, abc.ABC):
    """Base of FCDecoder, DeterministicDecoder and GPTDecoder (not registered itself)."""

    #: Reads observation history: features (B, T_obs, S, D) with `obs_masks` (vla_core.protocols).
    supports_history: bool = True

    def __init__(
        self,
        in_features: int,
        window_size: int,
        history_len: int | None,
        out_features: int,
        multi_step_action: int,
        pooling: Literal["max", "mean"],
        gripper_loss_weight: float,
    ) -> None:
        super().__init__()
        if window_size < 1 or multi_step_action < 1 or out_features < 1:
            raise DataError(
                f"{type(self).__name__}: window_size ({window_size}), multi_step_action ({multi_step_action}) and "
                f"out_features ({out_features}) must be at least 1."
            )
        self.in_features, self.window_size, self.out_features = in_features, window_size, out_features
        self.history_len = window_size if history_len is None else history_len
        self.multi_step_action, self.pooling = multi_step_action, pooling
        self.gripper_loss_weight = gripper_loss_weight
        #: What vla's checks read: the action size (arm + gripper) and the chunk length.
        self.action_dim, self.chunk_size = out_features + 1, multi_step_action
        #: Online: the frames of this episode so far ((B, 1, D') each), at most history_len.
        self.history_memory: list[torch.Tensor] = []
        #: Whether frame_features reads the robot state (a subclass sets it).
        self.use_state = False

    def output_heads(self, hidden_size: int) -> None:
        """The reference's `actions` (tanh, out_features per step) and `gripper` (sigmoid, 1 per step)."""
        self.actions = MLPTanhHead(hidden_size, self.out_features * self.multi_step_action)
        self.gripper = MLPSigmoidHead(hidden_size, self.multi_step_action)

    # ---- what a subclass defines -------------------------------------------------------------
    @abc.abstractmethod
    def frame_features(
        self, input_features: torch.Tensor, attention_mask: torch.Tensor, states: torch.Tensor | None
    ) -> torch.Tensor:
        """(N, S, D) tokens of N frames, (N, S) mask, (N, state_dim) states or None -> (N, D')."""

    @abc.abstractmethod
    def decode(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, W, D') frames, oldest first -> (B, W, H): output t depends on frames <= t only."""

    def decode_online(self, frame: torch.Tensor) -> torch.Tensor:
        """(B, 1, D') the episode's next frame -> (B, H). Default: keep the last `history_len`
        frames and decode them (the reference's GPTDecoder); the LSTM overrides it."""
        self._remember(frame)
        return self.decode(torch.cat(self.history_memory, dim=1))[:, -1]

    def reset(self) -> None:
        """A new episode: forget the frames (and any recurrent state) of the last one."""
        self.history_memory = []

    # ---- shared ------------------------------------------------------------------------------
    def _remember(self, frame: torch.Tensor) -> None:
        if self.history_memory and self.history_memory[0].shape[0] != frame.shape[0]:
            raise DataError(
                f"{type(self).__name__} keeps a window for a batch of {self.history_memory[0].shape[0]} episodes but "
                f"got {frame.shape[0]}; call reset() (Policy.reset()) before starting new episodes."
            )
        self.history_memory.append(frame)
        del self.history_memory[: max(0, len(self.history_memory) - self.history_len)]

    def _frames(
        self, input_features: torch.Tensor, attention_mask: torch.Tensor, states: torch.Tensor
    ) -> torch.Tensor:
        """(B, W, S, D), (B, W, S), (B, W, state_dim) -> (B, W, D') per-frame vectors."""
        batch, width = input_features.shape[:2]
        state = states.flatten(0, 1) if self.use_state else None
        frames = self.frame_features(input_features.flatten(0, 1), attention_mask.flatten(0, 1), state)
        return frames.unflatten(0, (batch, width))

    def _window_output(
        self,
        input_features: torch.Tensor,
        states: torch.Tensor,
        attention_mask: torch.Tensor,
        obs_masks: torch.Tensor | None,
    ) -> torch.Tensor:
        """The decoder's output at the last real frame of each window, (B, H)."""
        if input_features.ndim == 3:  # one frame, no history axis: a window of one
            input_features, attention_mask = input_features[:, None], attention_mask[:, None]
            states = states[:, None]
        elif input_features.shape[1] != self.window_size:
            raise DataError(
                f"{type(self).__name__} has window_size={self.window_size} but the batch has "
                f"{input_features.shape[1]} frames of history; give the data as many observation offsets "
                "(data.delta_timestamps) as window_size."
            )
        frames = self._frames(input_features, attention_mask, states)
        if obs_masks is None:
            obs_masks = torch.ones(frames.shape[:2], dtype=torch.bool, device=frames.device)
        aligned, last = real_frames_first(frames, obs_masks)
        return at_index(self.decode(aligned), last)

    def _outputs(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, H) -> arm (B, T, out_features) in (-1, 1) and gripper logits (B, T)."""
        arm = self.actions(hidden).view(-1, self.multi_step_action, self.out_features)
        return arm, self.gripper.logits(hidden).view(-1, self.multi_step_action)

    def forward(
        self,
        input_features: torch.Tensor,
        states: torch.Tensor,
        attention_mask: torch.Tensor,
        actions: torch.Tensor,
        action_masks: torch.Tensor,
        obs_masks: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> dict[str, torch.Tensor]:
        """(B, W, S, D) or (B, S, D) features, states (B, W, state_dim) or (B, state_dim), mask
        (B, W, S) or (B, S), actions (B, T, A) normalised, action_masks (B, T), obs_masks (B, W)
        -> {"loss", "pred_actions" (B, T, A), "loss_weight", "arm_loss", "gripper_loss"}.

        Loss per valid step: the Huber loss of the arm (mean over its dims) plus
        `gripper_loss_weight` x the BCE of the gripper, whose target is 1 where the
        normalised gripper action is > 0 (open), as RoboFlamingo's (a + 1) // 2 of a +-1 gripper."""
        if actions.shape[-1] <= self.out_features:
            raise DataError(
                f"{type(self).__name__} reads out_features={self.out_features} arm dims and the gripper after them, "
                f"but the actions have {actions.shape[-1]} dims; set out_features to the arm dims (action_dim - 1)."
            )
        arm, logits = self._outputs(self._window_output(input_features, states, attention_mask, obs_masks))
        steps = self.multi_step_action
        arm_target = actions[:, :steps, : self.out_features].to(arm.dtype)
        grip_target = (actions[:, :steps, self.out_features] > 0).to(logits.dtype)
        arm_loss = F.huber_loss(arm, arm_target, reduction="none").mean(dim=-1)  # (B, T)
        grip_loss = F.binary_cross_entropy_with_logits(logits, grip_target, reduction="none")  # (B, T)
        mask = action_masks[:, :steps].to(arm.dtype)
        count = mask.sum()  # valid steps: the engine weighs micro-batches by it
        denominator = count.clamp(min=1.0)
        arm_mean, grip_mean = (arm_loss * mask).sum() / denominator, (grip_loss * mask).sum() / denominator
        pred = torch.cat([arm, (2 * torch.sigmoid(logits) - 1).unsqueeze(-1)], dim=-1)
        return {
            "loss": arm_mean + self.gripper_loss_weight * grip_mean,
            "pred_actions": pred,
            "loss_weight": count.detach(),
            "arm_loss": arm_mean.detach(),
            "gripper_loss": grip_mean.detach(),
        }

    @torch.no_grad()
    def predict_action(
        self,
        input_features: torch.Tensor,
        states: torch.Tensor,
        attention_mask: torch.Tensor,
        obs_masks: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        """A window (B, W, S, D) with obs_masks -> (B, T, A) from it alone; one frame (B, S, D)
        -> the next online step: the frame joins this episode's window, (B, T, A) from the
        window so far. The gripper is +1 (open) where its probability is > 0.5, else -1."""
        if input_features.ndim == 4:
            hidden = self._window_output(input_features, states, attention_mask, obs_masks)
        else:
            state = states if self.use_state else None
            frame = self.frame_features(input_features, attention_mask, state)
            hidden = self.decode_online(frame[:, None])
        arm, logits = self._outputs(hidden)
        gripper = torch.where(logits > 0, 1.0, -1.0).to(arm.dtype)
        return torch.cat([arm, gripper.unsqueeze(-1)], dim=-1)
