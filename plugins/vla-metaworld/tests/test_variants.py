"""The task variants where history should matter: a goal shown only at the start, no state."""

from __future__ import annotations

import numpy as np
import pytest
from vla_metaworld.env import MetaWorldEnv
from vla_metaworld.tasks import TASKS, base_task, canonical_task, expand_tasks, instruction
from vla_metaworld.variants import GOAL_VISIBLE_STEPS, VARIANTS

from vla_core.envs.rollout import run_episode
from vla_core.errors import EnvError

GOAL_TASK = "reach-goal-at-start-v3"
NO_STATE_TASK = "button-press-topdown-no-state-v3"


@pytest.fixture(scope="module")
def env() -> MetaWorldEnv:
    env = MetaWorldEnv(image_size=48)
    yield env
    env.close()


def test_variants_are_named_grouped_and_told_apart_like_tasks() -> None:
    assert canonical_task("reach-goal-at-start") == GOAL_TASK
    assert expand_tasks(["history"]) == [GOAL_TASK, NO_STATE_TASK]
    assert base_task("reach-goal-at-start") == "reach-v3" and base_task(NO_STATE_TASK) == "button-press-topdown-v3"
    assert base_task("window-open") == "window-open-v3"
    sentences = [sentence for sentence, _ in TASKS.values()]
    for name, variant in VARIANTS.items():
        assert variant.base in TASKS and name not in TASKS
        assert instruction(name) == variant.instruction and variant.instruction not in sentences
    assert len(expand_tasks(["mt50"])) == 50  # the benchmark groups stay Meta-World's
    with pytest.raises(EnvError, match="Did you mean 'reach-goal-at-start'"):
        canonical_task("reach-goal-at-strat")


def test_env_lists_the_variants_after_the_50_tasks(env: MetaWorldEnv) -> None:
    tasks = env.tasks()
    assert tasks[:50] == list(TASKS) and tasks[50:] == list(VARIANTS)


def _without_markers(env: MetaWorldEnv, task: str) -> np.ndarray:
    """The current frame of `task` with its target markers forced invisible."""
    sim = env._sims[task]
    saved = sim.model.site_rgba.copy()
    for site, _ in env._markers[task]:
        sim.model.site_rgba[site, 3] = 0.0
    try:
        return env._cameras[task].render(sim.data)
    finally:
        sim.model.site_rgba[:] = saved


def test_the_goal_is_drawn_enlarged_for_the_first_steps_only_and_again_after_reset(env: MetaWorldEnv) -> None:
    for episode in range(2):  # the second episode starts after the goal was hidden in the first
        obs = env.reset(GOAL_TASK, seed=3 + episode)
        (site, alpha), = env._markers[GOAL_TASK]
        assert alpha > 0 and env._sims[GOAL_TASK].model.site_size[site, 0] == pytest.approx(0.04)
        # the layout's goal, where the expert goes: the marker is put there by Meta-World
        goal = env._sims[GOAL_TASK].data.site_xpos[site]
        np.testing.assert_allclose(goal, env.privileged_state()[-3:], atol=1e-6)
        seen = []
        for _ in range(GOAL_VISIBLE_STEPS + 3):
            drawn = not np.array_equal(obs["corner4"], _without_markers(env, GOAL_TASK))
            seen.append(drawn)
            obs, _, _ = env.step(np.zeros(4))
        assert seen == [True] * GOAL_VISIBLE_STEPS + [False] * 3, f"episode {episode}"


def test_a_variant_runs_its_base_task_the_expert_solves_it_the_same_way(env: MetaWorldEnv) -> None:
    base = run_episode(env, env.expert("reach"), "reach", seed=5, record=True)
    variant = run_episode(env, env.expert(GOAL_TASK), GOAL_TASK, seed=5, record=True)
    assert base.success and variant.success and base.success_step == variant.success_step
    np.testing.assert_array_equal(np.stack(base.actions), np.stack(variant.actions))
    np.testing.assert_array_equal(base.observations[-1]["state"], variant.observations[-1]["state"])
    assert variant.observations[0]["task"] == "reach the goal shown at the start"


def test_no_state_variant_gives_zeros_for_the_state_and_the_base_tasks_images(env: MetaWorldEnv) -> None:
    base = run_episode(env, env.expert("button-press-topdown"), "button-press-topdown", seed=2, record=True)
    blind = run_episode(env, env.expert(NO_STATE_TASK), NO_STATE_TASK, seed=2, record=True)
    assert base.success and blind.success and base.steps == blind.steps
    assert all(not obs["state"].any() for obs in blind.observations)
    assert all(obs["state"].shape == (4,) and obs["state"].dtype == np.float32 for obs in blind.observations)
    assert any(obs["state"].any() for obs in base.observations)
    for a, b in zip(base.observations, blind.observations, strict=True):
        np.testing.assert_array_equal(a["corner4"], b["corner4"])
