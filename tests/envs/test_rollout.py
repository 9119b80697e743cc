"""The core rollout loop, success statistics and videos, on a small deterministic env."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vla_core.envs.policies import RandomPolicy
from vla_core.envs.results import summarize, wilson_interval
from vla_core.envs.rollout import run_episode
from vla_core.envs.video import write_video
from vla_core.errors import EnvError


class ChunkPolicy:
    """Plans T steps of 0.5 toward +1 from the observed x; records what it saw."""

    def __init__(self, horizon: int) -> None:
        self.horizon, self.queries = horizon, []

    def reset(self) -> None:
        self.queries = []

    def predict_chunk(self, observation: dict) -> np.ndarray:
        self.queries.append(float(observation["state"][0]))
        return np.full((self.horizon, 1), 0.5, np.float32)


def test_executes_k_of_the_t_predicted_actions_and_renders_only_what_is_seen(point_env: type) -> None:
    env, policy = point_env(), ChunkPolicy(horizon=4)
    episode = run_episode(env, policy, "reach", seed=0, execute_steps=2)
    assert episode.success and episode.steps == 4 and episode.success_step == 4
    assert policy.queries == [-1.0, 0.0]  # asked again after 2 of 4 actions
    assert env.renders == 3  # the reset and each observation the policy was queried with


def test_success_at_any_step_counts_even_if_it_is_lost(point_env: type) -> None:
    env, policy = point_env(max_steps=6), ChunkPolicy(horizon=8)
    episode = run_episode(env, policy, "reach", seed=0, stop_on_success=False, record=True)
    assert episode.success and episode.success_step == 4 and episode.steps == 6  # overshoots past +1
    assert len(episode.actions) == 6 and len(episode.observations) == 7
    assert all("cam" in obs for obs in episode.observations)


def test_failure_runs_to_the_step_cap(point_env: type) -> None:
    episode = run_episode(point_env(max_steps=5), RandomPolicy(point_env().spec, seed=0), "reach", seed=3)
    assert not episode.success and episode.steps == 5 and episode.success_step is None


def test_action_dim_mismatch_is_a_clear_error(point_env: type) -> None:
    class Wide(ChunkPolicy):
        def predict_chunk(self, observation: dict) -> np.ndarray:
            return np.zeros((4, 7), np.float32)

    with pytest.raises(EnvError, match="7-dim actions but this env takes 1-dim"):
        run_episode(point_env(), Wide(4), "reach", seed=0)


def test_random_policy_is_reproducible_per_episode(point_env: type) -> None:
    spec = point_env().spec
    a, b = RandomPolicy(spec, seed=5), RandomPolicy(spec, seed=5)
    a.reset(), b.reset()
    first = [a.predict_chunk({}) for _ in range(3)]
    assert all(np.array_equal(x, y) for x, y in zip(first, [b.predict_chunk({}) for _ in range(3)], strict=True))
    assert all(((x >= -1) & (x <= 1)).all() and x.shape == (1, 1) for x in first)


def test_wilson_interval_matches_the_textbook_values() -> None:
    # Wilson (1927) score interval, 95%: 8/10 -> [0.490, 0.943]; 0/20 -> [0, 0.161]; 20/20 -> [0.839, 1].
    assert wilson_interval(8, 10) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    assert wilson_interval(0, 20) == pytest.approx((0.0, 0.1611), abs=1e-4)
    assert wilson_interval(20, 20) == pytest.approx((0.8389, 1.0), abs=1e-4)


def test_summary_rows_per_task_and_mean(point_env: type) -> None:
    env = point_env()
    episodes = [run_episode(env, ChunkPolicy(4), "reach", seed=s) for s in (0, 1)]
    episodes += [run_episode(env, RandomPolicy(env.spec), "reach", seed=1, max_steps=3)]
    episodes[-1].task = "other"
    rows = summarize(episodes)
    assert [r.task for r in rows] == ["reach", "other", "mean"]
    assert rows[0].successes == 1 and rows[0].episodes == 2  # seed 1 starts at -0.75: +0.5 steps never land on 1
    assert rows[2].success_rate == pytest.approx((0.5 + 0.0) / 2)


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_videos_decode_back_to_the_frames(tmp_path: Path, suffix: str) -> None:
    import av

    frames = [np.full((16, 16, 3), 10 * i, np.uint8) for i in range(12)]
    path = write_video(frames, tmp_path / f"episode{suffix}", fps=10, scale=4)
    with av.open(str(path)) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == 12 and decoded[0].shape == (64, 64, 3)
    assert abs(int(decoded[5].mean()) - 50) <= 6  # lossy codecs: close, not equal
    assert [p.name for p in tmp_path.iterdir()] == [f"episode{suffix}"]
    with pytest.raises(EnvError, match=r"\.mp4 or \.gif"):
        write_video(frames, tmp_path / "episode.avi")
