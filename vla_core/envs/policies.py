"""What a rollout drives: a policy that maps a raw observation to a chunk of actions.

A rollout policy has `reset()` (called at the start of each episode) and
`predict_chunk(observation) -> (T, A)` float actions in robot units; the rollout executes
the first k of the T actions before asking again (action chunking). A scripted expert is
a policy with T = 1; a VLA checkpoint becomes one through `VLAPolicy`. A policy whose
class attribute `uses_images` is False lets the rollout skip rendering.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from vla_core.envs.spec import EnvSpec


@runtime_checkable
class RolloutPolicy(Protocol):
    def reset(self) -> None:
        """Forget the previous episode (e.g. a queue of actions)."""
        ...

    def predict_chunk(self, observation: dict[str, Any]) -> np.ndarray:
        """A raw observation (camera images, `state`, `task`) -> (T, A) actions in robot units."""
        ...


class RandomPolicy:
    """Uniform random actions within the env's bounds: the floor a learned policy must beat.

    Args:
        spec: the env's spec (action bounds).
        seed: seed of the action stream; reset() restarts it, so episodes are reproducible.
    """

    uses_images = False  # the rollout need not render for it

    def __init__(self, spec: EnvSpec, seed: int = 0) -> None:
        self.low = np.asarray(spec.action_low, dtype=np.float32)
        self.high = np.asarray(spec.action_high, dtype=np.float32)
        self.seed = seed
        self.episodes = 0
        self.rng = np.random.default_rng(seed)

    def reset(self) -> None:
        self.rng = np.random.default_rng([self.seed, self.episodes])
        self.episodes += 1

    def predict_chunk(self, observation: dict[str, Any]) -> np.ndarray:
        """-> (1, A) uniform in [action_low, action_high]."""
        return self.rng.uniform(self.low, self.high)[None].astype(np.float32)
