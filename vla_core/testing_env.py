"""The env contract check (re-exported by vla_core.testing); the contract is `vla_core.protocols.Env`
and `vla_core.envs.spec.EnvSpec` (docs/evaluation.md)."""

from __future__ import annotations

from typing import Any


def _check_observation(env: Any, observation: Any, where: str, rendered: bool = True) -> None:
    """A raw observation: one uint8 (H, W, 3) image per spec camera, `state` (state_dim,), `task`."""
    import numpy as np

    spec = env.spec
    assert isinstance(observation, dict), f"{where} must return a dict observation, got {type(observation).__name__}"
    if rendered:
        for camera in spec.cameras:
            assert camera.name in observation, f"{where}: the observation has no image for camera '{camera.name}'"
            image = np.asarray(observation[camera.name])
            assert image.dtype == np.uint8 and image.shape == (camera.height, camera.width, 3), (
                f"{where}: camera '{camera.name}' must be uint8 {(camera.height, camera.width, 3)} as the spec says, "
                f"got {image.dtype} {image.shape}")
    state = np.asarray(observation.get("state"))
    assert state.shape == (spec.state_dim,) and np.issubdtype(state.dtype, np.floating), (
        f"{where}: 'state' must be float ({spec.state_dim},) (one value per spec.state_names), "
        f"got {state.dtype} {state.shape}")
    assert np.isfinite(state).all(), f"{where}: 'state' is not finite"
    assert isinstance(observation.get("task"), str), f"{where}: the observation has no 'task' string"


def check_env(env: Any, seed: int = 0, check_step_cap: bool = True) -> None:
    """The env contract on the env's first task:

    * `spec` is an EnvSpec whose action bounds have one value per action dim (low <= high);
    * `tasks()` is a non-empty list of names, `instruction(task)` a non-empty string;
    * `reset(task, seed)` gives a raw observation as the spec describes, the same for the same seed;
    * `step(action)` takes an (A,) action within the bounds -> (observation, success, done), bools;
    * with `check_step_cap`, `done` is False before `spec.max_steps` steps and True at it;
    * an `expert(task)`, if the env has one, is a rollout policy giving valid (T, A) chunks;
    * `close()` runs.
    """
    import numpy as np

    from vla_core.envs.rollout import check_chunk
    from vla_core.envs.spec import EnvSpec

    spec = env.spec
    assert isinstance(spec, EnvSpec), f"env.spec must be a vla_core.envs.spec.EnvSpec, got {type(spec).__name__}"
    low, high = np.asarray(spec.action_low, np.float32), np.asarray(spec.action_high, np.float32)
    assert low.shape == high.shape == (spec.action_dim,) and (low <= high).all(), (
        "spec.action_low / action_high need one bound per action dim, low <= high")
    tasks = env.tasks()
    assert isinstance(tasks, list) and tasks and all(isinstance(t, str) for t in tasks), "tasks() must list names"
    task = tasks[0]
    assert isinstance(env.instruction(task), str) and env.instruction(task), "instruction(task) must be a string"

    first = env.reset(task, seed)
    _check_observation(env, first, f"reset({task!r}, {seed})")
    again = env.reset(task, seed)
    for key, value in first.items():
        assert np.array_equal(np.asarray(value), np.asarray(again[key])), (
            f"reset({task!r}, {seed}) twice gives different '{key}': the seed must choose the layout")

    middle = ((low + high) / 2).astype(np.float32)
    for step in range(1, (spec.max_steps if check_step_cap else 1) + 1):
        result = env.step(middle)
        assert isinstance(result, tuple) and len(result) == 3, "step(action) must return (observation, success, done)"
        observation, success, done = result
        assert isinstance(success, (bool, np.bool_)) and isinstance(done, (bool, np.bool_)), (
            f"step(action) must return bools for success and done, got {type(success).__name__}, "
            f"{type(done).__name__}")
        _check_observation(env, observation, f"step {step}")
        if check_step_cap:
            assert bool(done) == (step >= spec.max_steps), (
                f"step {step} of {spec.max_steps} (spec.max_steps) returned done={bool(done)}; done marks the step cap")

    expert_of = getattr(env, "expert", None)
    if callable(expert_of):
        expert = expert_of(task)
        expert.reset()
        check_chunk(expert.predict_chunk(env.reset(task, seed)), spec.action_dim)
    env.close()
