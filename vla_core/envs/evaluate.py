"""Closed-loop evaluation of one policy over tasks x layout seeds, with optional videos."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from vla_core.envs.rollout import Episode, run_episode
from vla_core.envs.video import write_video
from vla_core.serving.chunk_schedule import ChunkSchedule

VIDEO_FPS = 30
VIDEO_SIDE = 256  # videos are upscaled (nearest) to about this many pixels


def evaluate(
    env: Any,
    make_policy: Callable[[str], Any],
    tasks: list[str],
    episodes: int,
    seed: int,
    execute_steps: int | None = None,
    max_steps: int | None = None,
    video_dir: str | Path | None = None,
    videos_per_task: int = 2,
    video_format: str = "mp4",
    on_episode: Callable[[Episode], None] | None = None,
    execution: ChunkSchedule | None = None,
) -> list[Episode]:
    """Run `episodes` rollouts per task on layout seeds seed, seed+1, ...

    Args:
        env: a `vla.envs` env.
        make_policy: task -> the rollout policy for that task (one policy may serve all).
        tasks: task names the env accepts.
        episodes: rollouts per task.
        seed: first layout seed (use a range the training data did not).
        execute_steps: actions executed per predicted chunk (k of T); None = all T.
        max_steps: step cap; None = the env's.
        video_dir: write the first `videos_per_task` episodes of each task there as video.
        video_format: "mp4" or "gif".
        on_episode: called after each episode (progress bars).
        execution: chunk execution under a simulated inference delay (see run_episode).
    """
    results: list[Episode] = []
    camera = env.spec.camera_names[0] if env.spec.cameras else None
    for task in tasks:
        policy = make_policy(task)
        for i in range(episodes):
            record = video_dir is not None and camera is not None and i < videos_per_task
            episode = run_episode(
                env, policy, task, seed + i, execute_steps=execute_steps, max_steps=max_steps, record=record,
                execution=execution,
            )
            if record:
                frames = [obs[camera] for obs in episode.observations]
                outcome = "success" if episode.success else "failure"
                name = f"{task}_seed{seed + i}_{outcome}.{video_format}"
                scale = max(1, VIDEO_SIDE // max(frames[0].shape[:2]))
                write_video(frames, Path(video_dir) / name, fps=VIDEO_FPS, scale=scale)
                episode.observations, episode.actions = [], []  # free the frames
            results.append(episode)
            if on_episode is not None:
                on_episode(episode)
    return results
