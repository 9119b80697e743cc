"""`Policy`: a trained checkpoint as a robot controller, observation -> actions in robot units.

    policy = Policy.from_pretrained("runs/so100/checkpoints/step-2000")
    actions = policy.act({"images": {"observation.images.top": frame}, "state": q, "task": "pick the cube"})
    # actions: np.ndarray (T, action_dim) in the units of the dataset's action features

The same processor that prepared the training batches (saved in the checkpoint) prepares
the observation, and its `unnormalize_actions` turns the VLA's normalised output back
into robot units. `predict`, `serve` and `eval` go through this class. The model runs in
`precision` (`auto`: bf16 autocast only where the device computes bf16 natively, see
`vla_core.precision`); weights stay as loaded.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vla_core.devices import resolve_device
from vla_core.errors import CheckpointError
from vla_core.models.rtc_guidance import RTCGuidance
from vla_core.precision import PrecisionChoice, resolve_precision
from vla_core.rtc import RTCPrefix, require_rtc, supports_rtc

TRAINING_ONLY_KEYS = ("actions", "action_masks")


class Policy:
    """A VLA and its processor.

    Args:
        vla: the model (eval mode).
        processor: raw observation -> model inputs; un-normalises actions.
        device: where the model runs.
        precision: "auto" (bf16 autocast where the device computes bf16 natively, else
            fp32), "fp32" or "bf16"; `self.precision` holds the resolved choice.
    """

    def __init__(
        self, vla: nn.Module, processor: Any, device: str | torch.device = "cpu", precision: str = "auto"
    ) -> None:
        self.device = resolve_device(device)
        self.precision: PrecisionChoice = resolve_precision(precision, self.device)
        self.vla = vla.to(self.device).eval()
        self.processor = processor
        self.checkpoint: Path | None = None  # set by from_pretrained

    @classmethod
    def from_pretrained(
        cls,
        checkpoint: str | Path,
        device: str | torch.device = "cpu",
        use_inference_model: bool = True,
        precision: str = "auto",
    ) -> Policy:
        """Load a checkpoint written by `vla train` (or `vla export`) with its processor;
        `checkpoint` may also be a run's output_dir (its latest complete checkpoint)."""
        from vla_core.engine.checkpoint import resolve_checkpoint
        from vla_core.models.pretrained import load_pretrained

        resolve_device(device)  # a missing GPU is said before the model is read
        checkpoint = resolve_checkpoint(checkpoint)
        vla = load_pretrained(checkpoint, use_inference_model=use_inference_model)
        processor = getattr(vla, "processor", None)  # the one saved with the checkpoint
        if processor is None:
            raise CheckpointError(
                f"the checkpoint '{checkpoint}' holds no processor (no processor/ directory, or its model names no "
                "model.processor), so raw observations cannot be prepared for it. Use a checkpoint written by "
                "`vla train`, or pass model inputs to vla.predict_action directly."
            )
        policy = cls(vla, processor, device, precision)
        policy.checkpoint = checkpoint
        return policy

    def reset(self) -> None:
        """Start a new episode (or session): the VLA's `reset()` when it has one, so a stateful
        head forgets the previous episode's frames or recurrent state (`BaseVLA.reset` resets
        every part that defines one). Call it before the first observation of every episode.
        A policy holds no other per-episode state; callers that want reproducible sampling
        pass `noise`."""
        reset = getattr(self.vla, "reset", None)
        if callable(reset):
            reset()

    def model_inputs(self, observations: list[dict[str, Any]]) -> dict[str, Any]:
        """Raw observations -> a batch of model inputs on the device (no action targets)."""
        samples = []
        for observation in observations:
            raw = {k: v for k, v in observation.items() if k not in ("actions", "action_is_pad")}
            samples.append(self.processor(raw))
        batch = self.processor.collate(samples)
        return {
            k: v.to(self.device) if isinstance(v, torch.Tensor) else v
            for k, v in batch.items()
            if k not in TRAINING_ONLY_KEYS
        }

    @property
    def supports_rtc(self) -> bool:
        """Whether the model samples with real-time-chunking guidance (`act(..., rtc=)`)."""
        return supports_rtc(self.vla)

    @torch.no_grad()
    def act_batch(
        self, observations: list[dict[str, Any]], noise: torch.Tensor | None = None, rtc: RTCPrefix | None = None
    ) -> np.ndarray:
        """Observations -> (B, T, action_dim) actions in robot units. `noise` (B, T, A)
        makes generative heads reproducible; `rtc` (robot units, the same for every row)
        guides flow-matching models toward the previous chunk (real-time chunking)."""
        inputs = self.model_inputs(observations)
        if noise is not None:
            inputs["noise"] = noise.to(self.device)
        if rtc is not None:
            require_rtc(self.vla)
            guidance = RTCGuidance.from_prefix(
                rtc, self.processor.normalize_actions, self.processor.chunk_size, self.processor.action_dim,
                len(observations),
            )
            inputs["rtc"] = replace(guidance, prev_chunk_left_over=guidance.prev_chunk_left_over.to(self.device))
        with self.precision.autocast():
            normalised = self.vla.predict_action(**inputs)
        return np.asarray(self.processor.unnormalize_actions(normalised.float().cpu()))

    def act(
        self, observation: dict[str, Any], noise: torch.Tensor | None = None, rtc: RTCPrefix | None = None
    ) -> np.ndarray:
        """One observation ({"images": {camera: uint8 (H, W, 3)}, "state": (state_dim,),
        "task": str}) -> (T, action_dim) actions in robot units; `noise` is (T, A); `rtc` the
        previous chunk's actions to agree with (see vla_core.models.rtc_guidance.RTCPrefix)."""
        return self.act_batch([observation], None if noise is None else noise.unsqueeze(0), rtc)[0]
