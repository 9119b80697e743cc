"""Success rates per task with 95% Wilson score intervals, as a table or JSON."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from vla_core.envs.rollout import Episode


def wilson_interval(successes: int, trials: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval of a success rate (95% for the default z).

    Unlike the normal approximation it stays inside [0, 1] and is informative at 0/n and
    n/n, which small evaluations hit often.
    """
    if trials <= 0:
        return 0.0, 1.0
    p = successes / trials
    denom = 1.0 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return low, high


@dataclass
class TaskResult:
    """Success over the episodes of one task (or 'mean' over tasks)."""

    task: str
    episodes: int
    successes: int
    success_rate: float
    ci_low: float
    ci_high: float
    mean_steps: float
    switch_jump: float | None = None  # mean |a_t - a_(t-1)| at chunk switches, pooled; None without switches
    mean_wait_steps: float = 0.0  # steps the robot stood still waiting for chunks, per episode

    @classmethod
    def of(cls, task: str, episodes: list[Episode]) -> TaskResult:
        n = len(episodes)
        k = sum(e.success for e in episodes)
        low, high = wilson_interval(k, n)
        steps = sum(e.steps for e in episodes) / n if n else 0.0
        jumps = [j for e in episodes for j in e.switch_jumps]
        jump = sum(jumps) / len(jumps) if jumps else None
        waits = sum(e.wait_steps for e in episodes) / n if n else 0.0
        return cls(task, n, k, k / n if n else 0.0, low, high, steps, jump, waits)


def summarize(episodes: list[Episode]) -> list[TaskResult]:
    """One row per task, in first-seen order, then a 'mean' row: the mean of the per-task
    rates, with the Wilson interval of all episodes pooled."""
    tasks: dict[str, list[Episode]] = {}
    for episode in episodes:
        tasks.setdefault(episode.task, []).append(episode)
    rows = [TaskResult.of(task, eps) for task, eps in tasks.items()]
    if len(rows) > 1:
        pooled = TaskResult.of("mean", episodes)
        pooled.success_rate = sum(r.success_rate for r in rows) / len(rows)
        rows.append(pooled)
    return rows


def results_json(rows: list[TaskResult], episodes: list[Episode], **meta: Any) -> dict[str, Any]:
    """A JSON-ready report: `meta` (checkpoint, env, seeds...), per-task rows, per-episode outcomes."""
    return {
        **meta,
        "tasks": [asdict(r) for r in rows],
        "episodes": [
            {"task": e.task, "seed": e.seed, "success": e.success, "steps": e.steps, "success_step": e.success_step,
             "switches": len(e.switch_jumps), "switch_jump_sum": sum(e.switch_jumps), "wait_steps": e.wait_steps}
            for e in episodes
        ],
    }
