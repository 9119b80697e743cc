"""RoboFlamingo's `GPTDecoder`: a causal GPT-2 over the window of frames."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from vla_core.errors import DataError
from vla_heads_roboflamingo.mlp_heads import MLPNohHead
from vla_heads_roboflamingo.window import pool_frame
from vla_heads_roboflamingo.window_decoder import WindowDecoder


class GPTDecoder(WindowDecoder):
    """Max-pooled frames, projected by `fc`, through a GPT-2 decoder (learned position
    embeddings, causal attention); the arm (tanh) and gripper (sigmoid) MLPs read its output.

    Online it keeps the last `history_len` frames and runs the decoder over them at every
    step (as the reference). The reference builds its GPT with `get_gpt_model(hidden_size,
    history_len)`, i.e. 8 layers and 8 heads whatever `num_layers` says; here `num_layers`
    and `n_head` set them.

    Args:
        in_features: width of the backbone features (D).
        window_size: frames per training sample (the data's observation offsets); 8 as RoboFlamingo.
        history_len: frames kept online and the GPT's positions; None = window_size.
        out_features: arm action dims; the gripper is the action dim right after them.
        hidden_size: GPT width; None = in_features (+ 128 with use_state), as the reference.
        num_layers: GPT layers.
        n_head: attention heads (must divide hidden_size).
        multi_step_action: actions predicted per step (the chunk T).
        use_state: concatenate an MLP encoding of the state (reference's `fc_state`, 128 wide).
        state_dim: state dims read when use_state (the first ones of `states`).
        pooling: "max" (the reference) or "mean" over each frame's valid tokens.
        gripper_loss_weight: weight of the gripper BCE against the arm Huber loss (0.01 as in simulation).
    """

    def __init__(
        self,
        in_features: int,
        window_size: int = 8,
        history_len: int | None = None,
        out_features: int = 6,
        hidden_size: int | None = None,
        num_layers: int = 4,
        n_head: int = 8,
        multi_step_action: int = 1,
        use_state: bool = False,
        state_dim: int = 7,
        pooling: Literal["max", "mean"] = "max",
        gripper_loss_weight: float = 0.01,
    ) -> None:
        super().__init__(in_features, window_size, history_len, out_features, multi_step_action, pooling,
                         gripper_loss_weight)
        from transformers import GPT2Config, GPT2Model

        # 0 without use_state: vla's size checks then know the state is not read
        self.use_state, self.state_dim = use_state, (state_dim if use_state else 0)
        width = in_features
        if use_state:
            self.fc_state = MLPNohHead(state_dim, 128)
            width += 128
        hidden_size = width if hidden_size is None else hidden_size
        if hidden_size % n_head:
            raise DataError(f"GPTDecoder: hidden_size ({hidden_size}) must be a multiple of n_head ({n_head}).")
        if self.window_size > self.history_len:
            raise DataError(
                f"GPTDecoder: window_size ({window_size}) is longer than history_len ({self.history_len}), the GPT's "
                "positions; raise history_len or shorten the window."
            )
        # vocab_size 1: the decoder reads inputs_embeds only, its token table is never used
        config = GPT2Config(n_layer=num_layers, n_head=n_head, n_embd=hidden_size, n_positions=self.history_len,
                            vocab_size=1)
        self.gpt = GPT2Model(config)
        self.fc = nn.Linear(width, hidden_size) if hidden_size != width else nn.Identity()
        self.hidden_size = hidden_size
        self.output_heads(hidden_size)

    def frame_features(
        self, input_features: torch.Tensor, attention_mask: torch.Tensor, states: torch.Tensor | None
    ) -> torch.Tensor:
        """(N, S, D) -> (N, hidden_size): the pooled frame [+ the state encoding], through `fc`."""
        x = pool_frame(input_features, attention_mask, self.pooling)
        if states is not None:
            x = torch.cat([x, self.fc_state(states[:, : self.state_dim].to(x.dtype))], dim=-1)
        return self.fc(x)

    def decode(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, W, hidden_size) -> (B, W, hidden_size); positions 0..W-1, causal."""
        return self.gpt(inputs_embeds=frames).last_hidden_state
