"""Demonstration datasets from an env's scripted experts, written in LeRobot v3.0 format.

For each task, layout seeds `seed, seed + 1, ...` are rolled out with the task's expert;
successful episodes are kept until there are `episodes` of them (a failed one is replaced
by the next seed). The result depends only on the arguments: episodes are written task by
task in seed order whatever the number of worker processes.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vla_core.envs.dataset_io import ACTION_KEY, STATE_KEY, camera_key, dataset_features
from vla_core.envs.make import make_env
from vla_core.envs.rollout import run_episode
from vla_core.errors import EnvError


@dataclass
class Demonstration:
    """One expert episode: per step the camera images, state and action; `success` at the end."""

    task: str
    seed: int
    success: bool
    images: dict[str, np.ndarray]  # camera -> uint8 (n, H, W, 3)
    states: np.ndarray  # (n, state_dim) float32
    actions: np.ndarray  # (n, action_dim) float32
    instruction: str


@dataclass
class GenerationReport:
    """What was written: the kept seeds per task and how many expert episodes failed."""

    root: Path
    episodes: dict[str, list[int]] = field(default_factory=dict)
    failed: dict[str, list[int]] = field(default_factory=dict)
    frames: int = 0


def resolve_tasks(env: Any, names: list[str]) -> list[str]:
    """Task names as the env knows them; envs may expand aliases and groups (`expand_tasks`)."""
    if hasattr(env, "expand_tasks"):
        return list(env.expand_tasks(names))
    known = env.tasks()
    unknown = [n for n in names if n not in known]
    if unknown:
        raise EnvError(f"unknown task(s) {', '.join(unknown)}. Tasks of this env: {', '.join(known)}.")
    return list(dict.fromkeys(names))


# ---- one expert episode (in this process or a worker) ------------------------------------------
_worker_env: Any = None


def _init_worker(env_name: str, env_kwargs: dict[str, Any]) -> None:
    global _worker_env
    _worker_env = make_env(env_name, **env_kwargs)


def _demonstrate(task: str, seed: int, env: Any = None) -> Demonstration:
    env = env if env is not None else _worker_env
    expert = env.expert(task)
    episode = run_episode(env, expert, task, seed, record=True)
    steps = episode.observations[:-1]
    return Demonstration(
        task=task,
        seed=seed,
        success=episode.success,
        images={c: np.stack([o[c] for o in steps]) for c in env.spec.camera_names},
        states=np.stack([o["state"] for o in steps]).astype(np.float32),
        actions=np.stack(episode.actions).astype(np.float32),
        instruction=env.instruction(task),
    )


def generate_dataset(
    env_name: str,
    tasks: list[str],
    episodes: int,
    out: str | Path,
    env_kwargs: dict[str, Any] | None = None,
    seed: int = 0,
    workers: int = 1,
    video: bool = False,
    overwrite: bool = False,
    max_attempts_factor: int = 3,
    on_episode: Callable[[str, Demonstration], None] | None = None,
) -> GenerationReport:
    """Roll out the experts of `tasks` and write the successful episodes to `out`.

    Args:
        env_name: a `vla.envs` env, e.g. "metaworld".
        tasks: task names (or groups the env expands, e.g. "mt10").
        episodes: successful episodes to keep per task.
        out: dataset directory to create (written atomically).
        env_kwargs: env constructor arguments (image_size, camera, max_steps, ...).
        seed: the first layout seed; task episodes use seed, seed + 1, ...
        workers: processes rolling out episodes in parallel (1 = in this process). Workers find
            the env by name again, so it must be an installed plugin, not a `register()`ed class.
        video: store cameras as MP4 video instead of inline PNG images.
        overwrite: replace an existing dataset at `out`.
        max_attempts_factor: give up on a task after episodes x this many layouts tried.
        on_episode: called after each rolled-out episode (kept or not), e.g. for a progress bar.
    """
    from vla_core.data.lerobot_writer import LeRobotWriter

    if episodes < 1:
        raise EnvError(f"--episodes must be >= 1, got {episodes}.")
    if workers < 1:
        raise EnvError(f"--workers must be >= 1, got {workers}.")
    if seed < 0:
        raise EnvError(f"--seed must be >= 0, got {seed}.")
    env_kwargs = dict(env_kwargs or {})
    env = make_env(env_name, **env_kwargs)
    if not callable(getattr(env, "expert", None)):
        raise EnvError(f"the env '{env_name}' has no scripted experts (no `expert(task)` method) to generate data.")
    tasks = resolve_tasks(env, tasks)
    spec = env.spec
    report = GenerationReport(root=Path(out))
    pool = None
    if workers > 1:
        pool = cf.ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker,
            initargs=(env_name, env_kwargs),
        )
    writer = LeRobotWriter.create(out, fps=spec.fps, features=dataset_features(spec, video), robot_type=spec.robot_type,
                                  overwrite=overwrite, video_codec="libx264")
    try:
        for task in tasks:
            kept = _collect(task, episodes, seed, env, pool, max_attempts_factor, report, on_episode)
            for demo in kept:
                for t in range(len(demo.actions)):
                    frame = {camera_key(c): demo.images[c][t] for c in spec.camera_names}
                    frame[STATE_KEY], frame[ACTION_KEY] = demo.states[t], demo.actions[t]
                    writer.add_frame(frame, task=demo.instruction)
                writer.save_episode()
                report.frames += len(demo.actions)
        writer.finalize()
    except BaseException:
        writer.abort()
        raise
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        env.close()
    return report


def _collect(
    task: str,
    episodes: int,
    seed: int,
    env: Any,
    pool: cf.ProcessPoolExecutor | None,
    max_attempts_factor: int,
    report: GenerationReport,
    on_episode: Callable[[str, Demonstration], None] | None,
) -> list[Demonstration]:
    """The first `episodes` successful demonstrations of `task` in seed order."""
    kept: list[Demonstration] = []
    failed: list[int] = []
    next_seed = seed
    limit = seed + episodes * max_attempts_factor
    while len(kept) < episodes:
        wanted = episodes - len(kept)
        if next_seed + wanted > limit:
            raise EnvError(
                f"the scripted expert of '{task}' failed on {len(failed)} of {next_seed - seed} layouts "
                f"(seeds {failed[:10]}...); it is too unreliable to collect {episodes} demonstrations."
            )
        seeds = list(range(next_seed, next_seed + wanted))
        next_seed += wanted
        if pool is None:
            results = (_demonstrate(task, s, env) for s in seeds)
        else:
            results = pool.map(_demonstrate, [task] * len(seeds), seeds)
        for demo in results:  # in seed order
            if demo.success:
                kept.append(demo)
            else:
                failed.append(demo.seed)
            if on_episode is not None:
                on_episode(task, demo)
    report.episodes[task] = [d.seed for d in kept]
    report.failed[task] = failed
    return kept
