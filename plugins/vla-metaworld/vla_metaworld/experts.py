"""Meta-World's scripted experts (`metaworld.policies`) as rollout policies."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from vla_metaworld.tasks import TASKS, base_task, canonical_task

if TYPE_CHECKING:
    from vla_metaworld.env import MetaWorldEnv


class MetaWorldExpert:
    """The hand-written controller of one task (a variant: of its base task). It reads the
    simulator's full state (object and goal positions), which a learned policy never sees,
    and returns one action a call.

    Args:
        env: the env it acts in (the expert reads `env.privileged_state()`).
        task: the task it solves.
    """

    uses_images = False  # it reads the simulator state, so the rollout need not render

    def __init__(self, env: MetaWorldEnv, task: str) -> None:
        import metaworld.policies

        self.env = env
        self.task = canonical_task(task)
        # a variant changes what the policy sees, not the task: its base task's expert solves it
        self.policy = getattr(metaworld.policies, TASKS[base_task(self.task)][1])()

    def reset(self) -> None:
        """The experts are stateless: nothing to reset."""

    def predict_chunk(self, observation: dict[str, Any]) -> np.ndarray:
        """-> (1, 4) float32 action in [-1, 1]: xyz end-effector velocity and gripper effort."""
        with warnings.catch_warnings():
            # metaworld's `move` warns whenever its gain saturates the action; the env clips it.
            warnings.simplefilter("ignore", UserWarning)
            action = self.policy.get_action(self.env.privileged_state())
        return np.clip(np.asarray(action, dtype=np.float32), -1.0, 1.0)[None]
