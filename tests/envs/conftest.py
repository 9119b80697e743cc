"""A tiny deterministic env for the core env tests (no simulator needed)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from vla_core.envs.spec import CameraSpec, EnvSpec


class PointEnv:
    """A point on a line that must reach +1; success only while it is there (not sticky)."""

    can_skip_render = True

    def __init__(self, max_steps: int = 20) -> None:
        self.spec = EnvSpec(
            cameras=(CameraSpec("cam", 8, 8),), state_names=("x",), action_names=("dx",),
            action_low=(-1.0,), action_high=(1.0,), fps=10, max_steps=max_steps,
        )
        self.renders = 0

    def tasks(self) -> list[str]:
        return ["reach"]

    def reset(self, task: str, seed: int) -> dict:
        self.x, self.t = -1.0 + 0.25 * (seed % 4), 0
        return self._obs(True)

    def step(self, action, render: bool = True):
        self.x += float(np.asarray(action)[0])
        self.t += 1
        return self._obs(render), abs(self.x - 1.0) < 1e-6, self.t >= self.spec.max_steps

    def instruction(self, task: str) -> str:
        return "reach the right end"

    def expert(self, task: str) -> Any:
        return PointExpert()

    def close(self) -> None:
        pass

    def _obs(self, render: bool) -> dict:
        obs = {"state": np.array([self.x], np.float32), "task": "reach the right end"}
        if render:
            self.renders += 1
            obs["cam"] = np.full((8, 8, 3), int(np.clip(128 + 50 * self.x, 0, 255)), np.uint8)
        return obs


class PointExpert:
    """Moves by 0.25 toward +1, which it reaches exactly from every start."""

    uses_images = False

    def reset(self) -> None:
        pass

    def predict_chunk(self, observation: dict) -> np.ndarray:
        return np.array([[0.25]], np.float32)


@pytest.fixture
def point_env() -> type:
    """The PointEnv class (call it to get an env)."""
    return PointEnv
