"""vla_core.testing.check_env: the PointEnv passes; an env that breaks the contract fails."""

from __future__ import annotations

import pytest

from vla_core.testing import check_env


def test_point_env_passes(point_env):
    check_env(point_env(max_steps=6))


def test_an_env_without_the_step_cap_fails(point_env):
    class Endless(point_env):
        def step(self, action, render=True):
            observation, success, _ = super().step(action, render)
            return observation, success, False

    with pytest.raises(AssertionError, match="done marks the step cap"):
        check_env(Endless(max_steps=4))


def test_images_other_than_the_spec_says_fail(point_env):
    class Gray(point_env):
        def _obs(self, render):
            observation = super()._obs(render)
            if render:
                observation["cam"] = observation["cam"][..., 0]
            return observation

    with pytest.raises(AssertionError, match=r"camera 'cam' must be uint8 \(8, 8, 3\)"):
        check_env(Gray(max_steps=4))


def test_layouts_that_ignore_the_seed_fail(point_env):
    class Drifting(point_env):
        resets = 0

        def reset(self, task, seed):  # a new layout on every reset, whatever the seed
            self.resets += 1
            return super().reset(task, seed + self.resets)

    with pytest.raises(AssertionError, match="the seed must choose the layout"):
        check_env(Drifting(max_steps=2))
