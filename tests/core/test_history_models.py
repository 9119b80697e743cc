"""LlavaVLA over observation history: the backbone runs per frame (time folded into the batch)
and the head reads per-frame features with their masks; `reset()` reaches the head."""

from __future__ import annotations

from typing import Any

import torch

from vla_core.data.schema import check_batch
from vla_core.models.build import build_vla
from vla_core.models.mlp_action_head import MLPActionHead
from vla_core.testing import make_tiny_batch, tiny_vla_spec


class RecordingHead(MLPActionHead):
    """Keeps what forward / predict_action received, and counts resets."""

    supports_history = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.seen: dict[str, Any] = {}
        self.resets = 0

    def _record(self, input_features, states, attention_mask, kwargs) -> tuple:
        self.seen = {"features": input_features, "states": states, "mask": attention_mask, **kwargs}
        # the MLP reads the current (last) frame, so the whole VLA trains and predicts
        return input_features[:, -1], states[:, -1], attention_mask[:, -1]

    def forward(self, input_features, states, attention_mask, actions, action_masks, **kwargs):
        return super().forward(*self._record(input_features, states, attention_mask, kwargs), actions, action_masks)

    def predict_action(self, input_features, states, attention_mask, **kwargs):
        return super().predict_action(*self._record(input_features, states, attention_mask, kwargs))

    def reset(self) -> None:
        self.resets += 1


def history_batch(steps: int = 3) -> dict[str, torch.Tensor]:
    frames = [make_tiny_batch(seed=t) for t in range(steps)]
    stacked = {key: torch.stack([f[key] for f in frames], dim=1) for key in ("images", "img_masks", "states")}
    batch = frames[-1] | stacked
    batch["obs_masks"] = torch.tensor([[False, True, True], [True, True, True]])
    return batch


def test_backbone_runs_per_frame_and_the_head_reads_frames_with_masks(register_component):
    register_component("heads", "RecordingHead", RecordingHead)
    spec = tiny_vla_spec()
    spec["vla_head"]["type"] = "RecordingHead"
    torch.manual_seed(0)
    vla = build_vla(spec).eval()
    batch = history_batch()
    check_batch(batch)
    out = vla(**batch)
    seen = vla.vla_head.seen
    b, t = 2, 3
    assert seen["features"].shape[:2] == (b, t) and seen["features"].shape[-1] == 48
    assert seen["mask"].shape == seen["features"].shape[:3] and seen["states"].shape == (b, t, 4)
    assert torch.equal(seen["obs_masks"], batch["obs_masks"])
    for frame in range(t):  # each frame's features are exactly what the backbone gives that frame alone
        alone = vla.encode(batch["images"][:, frame], batch["lang_tokens"], batch["lang_masks"],
                           batch["img_masks"][:, frame])
        torch.testing.assert_close(seen["features"][:, frame], alone.features, rtol=1e-5, atol=1e-5)
        assert torch.equal(seen["mask"][:, frame], alone.mask)
    assert torch.isfinite(out["loss"]) and out["pred_actions"].shape == (2, 4, 3)
    assert vla.predict_action(**{k: v for k, v in batch.items() if k not in ("actions", "action_masks")}).shape == (
        2, 4, 3)
    vla.reset()
    assert vla.vla_head.resets == 1
