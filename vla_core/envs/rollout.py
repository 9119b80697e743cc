"""The one rollout loop: any env of `vla.envs` driven by any rollout policy, with action chunking.

At each query the policy returns a chunk of T actions; the loop executes the first k
(`execute_steps`, all T when None) open-loop, then asks again with a fresh observation.
Success is counted at any step (Meta-World's is not sticky) and, by default, ends the
episode.

With an `execution` schedule (vla_core.serving.chunk_schedule) the loop simulates inference
latency deterministically: a chunk requested at step t is computed from the observation of
step t at once but only used from step t + d, while the env keeps executing the previous
chunk (naive, ensemble, rtc); in `sync` the world waits (no env steps) for d steps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vla_core.envs.policies import RolloutPolicy
from vla_core.errors import EnvError
from vla_core.rtc import RTCError
from vla_core.serving.chunk_schedule import ChunkSchedule


@dataclass
class Episode:
    """One rollout.

    Attributes:
        task / seed: what was reset into.
        success: True if any step reported success.
        steps: environment steps executed.
        success_step: the first successful step (1-based), or None.
        observations: with record=True, the raw observation before each step (len == steps)
            followed by the last one (len == steps + 1); else empty.
        actions: with record=True, the (A,) action executed at each step; else empty.
        switch_jumps: mean |a_t - a_(t-1)| over action dims at each step where a new chunk took over.
        wait_steps: control steps the robot stood still waiting for a chunk (the first chunk's
            delay; every chunk's in sync mode).
    """

    task: str
    seed: int
    success: bool
    steps: int
    success_step: int | None = None
    observations: list[dict[str, Any]] = field(default_factory=list, repr=False)
    actions: list[np.ndarray] = field(default_factory=list, repr=False)
    switch_jumps: list[float] = field(default_factory=list, repr=False)
    wait_steps: int = 0


def check_chunk(chunk: Any, action_dim: int) -> np.ndarray:
    """A policy's output as a (T, A) float32 array; a wrong action dim is an EnvError."""
    chunk = np.asarray(chunk, dtype=np.float32)
    if chunk.ndim == 1:
        chunk = chunk[None]
    if chunk.ndim != 2 or chunk.shape[0] == 0:
        raise EnvError(f"a policy must return a (T, A) action chunk, got shape {tuple(chunk.shape)}.")
    if chunk.shape[1] != action_dim:
        raise EnvError(
            f"the policy returns {chunk.shape[1]}-dim actions but this env takes {action_dim}-dim actions; "
            "evaluate a checkpoint trained on this env's action space."
        )
    return chunk


def run_episode(
    env: Any,
    policy: RolloutPolicy,
    task: str,
    seed: int,
    execute_steps: int | None = None,
    max_steps: int | None = None,
    stop_on_success: bool = True,
    record: bool = False,
    on_step: Callable[[int], None] | None = None,
    execution: ChunkSchedule | None = None,
) -> Episode:
    """Roll `policy` out in `env` on `task` with layout `seed`.

    Args:
        env: a `vla.envs` env (tasks/reset/step, `spec`).
        policy: reset() + predict_chunk(observation) -> (T, A); for mode rtc also
            `predict_chunk(observation, rtc=RTCPrefix)` and `require_rtc()`.
        execute_steps: actions executed per chunk (k of T); None executes the whole chunk.
            Ignored when `execution` is given (its execution_horizon).
        max_steps: step cap; None uses the env's `spec.max_steps`.
        stop_on_success: end the episode at the first successful step.
        record: keep every observation and action (for datasets and videos).
        on_step: called with the step number after each step (progress bars).
        execution: how chunks are executed under a simulated inference delay (mode, execution
            horizon, delay); None = sync without delay, `execute_steps` per chunk.
    """
    if execute_steps is not None and execute_steps < 1:
        raise EnvError(f"execute_steps (actions executed per chunk) must be >= 1, got {execute_steps}.")
    schedule = execution or ChunkSchedule("sync", execution_horizon=execute_steps)
    if schedule.mode == "rtc":
        require_policy_rtc(policy)
    schedule.reset()
    delay = schedule.inference_delay
    action_dim = env.spec.action_dim
    cap = max_steps or env.spec.max_steps
    skip_render = getattr(env, "can_skip_render", False)
    needs_images = getattr(policy, "uses_images", True)
    observation = env.reset(task, seed)
    policy.reset()
    episode = Episode(task=task, seed=seed, success=False, steps=0)
    for step in range(1, cap + 1):
        now = step - 1  # control step of this action (0-based)
        if schedule.request_due(now):
            request = schedule.request(now)
            if request.rtc is None:
                chunk = policy.predict_chunk(observation)
            else:
                chunk = policy.predict_chunk(observation, rtc=request.rtc)  # type: ignore[call-arg]
            first = not schedule.chunks
            # The world waits for the first chunk (nothing to execute yet) and, in sync, for every one.
            waits = first or schedule.mode == "sync"
            episode.wait_steps += delay if waits else 0
            schedule.deliver(check_chunk(chunk, action_dim), request, now if waits else now + delay)
        action = schedule.action(now)
        if record:
            episode.observations.append(observation)
            episode.actions.append(action)
        # Render only the observations someone looks at: the policy's next query, or a recording.
        render = record or (needs_images and schedule.request_due(now + 1))
        observation, success, done = env.step(action, render=render) if skip_render else env.step(action)
        episode.steps = step
        if on_step is not None:
            on_step(step)
        if success and not episode.success:
            episode.success, episode.success_step = True, step
        if done or (success and stop_on_success):
            break
    if record:
        episode.observations.append(observation)
    episode.switch_jumps = list(schedule.switch_jumps)
    return episode


def require_policy_rtc(policy: Any) -> None:
    """RTCError unless the rollout policy can sample with real-time-chunking guidance."""
    check = getattr(policy, "require_rtc", None)
    if callable(check):
        check()
        return
    raise RTCError(
        f"the rollout policy {type(policy).__name__} cannot use execution mode 'rtc' (it takes no previous-chunk "
        "guidance; rtc needs a flow-matching checkpoint). Use 'sync', 'naive' or 'ensemble'."
    )
