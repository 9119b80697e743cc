"""`vla_core.testing.check_stateful_head` passes a correct window head and catches the usual
mistakes: a reset() that forgets nothing, padded frames that leak into the prediction."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from vla_core.testing import check_action_head


class MeanWindowHead(nn.Module):
    """Averages the mean-pooled frames of a window (online: of the last `window_size` frames)."""

    supports_history = True

    def __init__(self, input_dim: int, action_dim: int, chunk_size: int, window_size: int = 3) -> None:
        super().__init__()
        self.window_size, self.chunk_size, self.action_dim = window_size, chunk_size, action_dim
        self.proj = nn.Linear(input_dim, chunk_size * action_dim)
        self.memory: list[torch.Tensor] = []

    def _pooled(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        weights = mask.to(features.dtype).unsqueeze(-1)
        return (features * weights).sum(-2) / weights.sum(-2).clamp(min=1)

    def _window(self, features: torch.Tensor, mask: torch.Tensor, obs_masks: torch.Tensor | None) -> torch.Tensor:
        if features.ndim == 3:
            features, mask = features[:, None], mask[:, None]
        frames = self._pooled(features, mask)  # (B, W, D)
        real = torch.ones(frames.shape[:2]) if obs_masks is None else obs_masks.to(frames.dtype)
        return (frames * real.unsqueeze(-1)).sum(1) / real.sum(1, keepdim=True)

    def forward(self, input_features, states, attention_mask, actions, action_masks, obs_masks=None, **kwargs: Any):
        pred = self.proj(self._window(input_features, attention_mask, obs_masks)).view(-1, self.chunk_size,
                                                                                       self.action_dim)
        mask = action_masks.to(pred.dtype).unsqueeze(-1)
        loss = ((pred - actions) ** 2 * mask).sum() / (mask.sum() * self.action_dim)
        return {"loss": loss, "pred_actions": pred}

    @torch.no_grad()
    def predict_action(self, input_features, states, attention_mask, obs_masks=None, **kwargs: Any):
        if input_features.ndim == 4:
            pooled = self._window(input_features, attention_mask, obs_masks)
        else:
            self.memory = [*self.memory, self._pooled(input_features, attention_mask)][-self.window_size :]
            pooled = torch.stack(self.memory, 1).mean(1)
        return self.proj(pooled).view(-1, self.chunk_size, self.action_dim)

    def reset(self) -> None:
        self.memory = []


class ForgetfulHead(MeanWindowHead):
    def reset(self) -> None:
        pass  # the previous episode's frames stay in the window


class PaddingBlindHead(MeanWindowHead):
    def _window(self, features, mask, obs_masks):
        return super()._window(features, mask, None)  # averages the padded frames too


def test_a_correct_stateful_head_passes():
    torch.manual_seed(0)
    check_action_head(MeanWindowHead(8, 3, 4), input_dim=8, state_dim=5, action_dim=3, chunk_size=4)


@pytest.mark.parametrize(("head", "problem"), [(ForgetfulHead, "one frame at a time differs"),
                                               (PaddingBlindHead, "padded frames change the loss")])
def test_the_usual_mistakes_are_caught(head, problem):
    torch.manual_seed(0)
    with pytest.raises(AssertionError, match=problem):
        check_action_head(head(8, 3, 4), input_dim=8, state_dim=5, action_dim=3, chunk_size=4)
