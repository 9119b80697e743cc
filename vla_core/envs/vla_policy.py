"""A trained checkpoint as a rollout policy: env observation -> processor -> VLA -> robot actions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from vla_core.envs.dataset_io import camera_key, policy_observation
from vla_core.envs.spec import EnvSpec
from vla_core.errors import EnvError
from vla_core.rtc import RTCPrefix, require_rtc


def check_policy_fits_env(processor: Any, spec: EnvSpec, source: str) -> None:
    """EnvError unless the checkpoint's action dim, state dim and cameras are the env's."""
    if processor.action_dim != spec.action_dim:
        raise EnvError(
            f"the checkpoint {source} predicts {processor.action_dim}-dim actions, but this env takes "
            f"{spec.action_dim}-dim actions ({', '.join(spec.action_names)}). Evaluate a checkpoint trained on data "
            "from this env (e.g. `vla data generate --env ...`), or pick the env it was trained for."
        )
    if processor.state_dim != spec.state_dim:
        raise EnvError(
            f"the checkpoint {source} reads a {processor.state_dim}-dim state, but this env gives "
            f"{spec.state_dim} values ({', '.join(spec.state_names)}); it was trained on another robot's data."
        )
    available = {camera_key(c) for c in spec.camera_names}
    missing = [c for c in processor.cameras if c not in available]
    if missing and not getattr(processor, "allow_missing_cameras", False):
        raise EnvError(
            f"the checkpoint {source} was trained with cameras {processor.cameras}, but this env renders "
            f"{sorted(available)}; choose the env's camera with --camera, or retrain."
        )


class VLAPolicy:
    """Queries a VLA checkpoint for action chunks (T, action_dim) in robot units.

    Generative heads get their noise from a generator re-seeded at every `reset()` with
    (seed, episode number), so an evaluation is reproducible. `reset()` (the rollout loop
    calls it before every episode) also resets the policy, so a stateful head starts each
    episode with an empty window.

    Args:
        policy: a `vla_core.engine.policy.Policy` (model + processor).
        spec: the env's spec (checked against the checkpoint).
        seed: seed of the sampling noise.
        source: how to name the checkpoint in errors.
    """

    def __init__(self, policy: Any, spec: EnvSpec, seed: int = 0, source: str = "") -> None:
        check_policy_fits_env(policy.processor, spec, source or "in use")
        self.policy, self.spec, self.seed = policy, spec, seed
        self.noise_shape = (policy.processor.chunk_size, policy.processor.max_action_dim)
        self.episodes = 0
        self.generator = torch.Generator().manual_seed(seed)

    @classmethod
    def from_checkpoint(
        cls, checkpoint: str | Path, spec: EnvSpec, seed: int = 0, device: str = "cpu", precision: str = "auto"
    ) -> VLAPolicy:
        """`checkpoint`: a checkpoint directory, or a run's output_dir (its latest checkpoint)."""
        from vla_core.engine.policy import Policy

        policy = Policy.from_pretrained(checkpoint, device=device, precision=precision)
        return cls(policy, spec, seed, source=f"'{policy.checkpoint}'")

    def reset(self) -> None:
        """A new episode: the model's state (`Policy.reset()`) and a fresh noise generator."""
        self.policy.reset()
        self.generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.episodes)
        self.episodes += 1

    def predict_chunk(self, observation: dict[str, Any], rtc: RTCPrefix | None = None) -> np.ndarray:
        """Raw env observation -> (T, action_dim) float32 actions in robot units; `rtc`: the
        previous chunk's actions to agree with (real-time chunking, flow-matching models)."""
        noise = torch.randn(self.noise_shape, generator=self.generator)
        return self.policy.act(policy_observation(observation, self.spec), noise=noise, rtc=rtc)

    def require_rtc(self) -> None:
        """RTCError naming the model and its head unless it samples with RTC guidance."""
        require_rtc(self.policy.vla)
