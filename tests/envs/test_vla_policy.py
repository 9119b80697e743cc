"""Generated data -> a freshly built tiny VLA + fitted processor -> closed-loop rollouts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from vla_core.data.lerobot_dataset import LeRobotDataset
from vla_core.data.processor import VLAProcessor
from vla_core.engine.policy import Policy
from vla_core.envs.dataset_io import dataset_features
from vla_core.envs.evaluate import evaluate
from vla_core.envs.generate import generate_dataset
from vla_core.envs.vla_policy import VLAPolicy
from vla_core.errors import EnvError
from vla_core.models.build import build_vla
from vla_core.models.mlp_action_head import MLPActionHead
from vla_core.testing import tiny_vla_spec


@pytest.fixture
def point_dataset(tmp_path: Path, point_env: type, register_component: Any) -> Path:
    register_component("envs", "PointWorld", point_env)
    report = generate_dataset("pointworld", ["reach"], 3, tmp_path / "points", seed=0)
    assert report.episodes == {"reach": [0, 1, 2]} and report.frames == 8 + 7 + 6
    return tmp_path / "points"


def tiny_checkpoint(dataset_root: Path, directory: Path, seed: int = 0) -> Path:
    """A randomly initialised tiny VLA with a processor fitted to the dataset, saved as a checkpoint."""
    processor_spec = {"type": "VLAProcessor", "image_size": 32, "max_state_dim": 4, "max_action_dim": 3,
                      "chunk_size": 4, "max_lang_len": 8}
    processor = VLAProcessor(**{k: v for k, v in processor_spec.items() if k != "type"})
    processor.fit(LeRobotDataset(str(dataset_root), chunk_size=4))
    spec = tiny_vla_spec()
    spec["processor"] = processor_spec
    torch.manual_seed(seed)
    vla = build_vla(spec)
    vla.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


def test_generated_dataset_has_the_env_features(point_dataset: Path, point_env: type) -> None:
    dataset = LeRobotDataset(str(point_dataset), chunk_size=2)
    assert {k: dataset.meta.features[k] for k in dataset_features(point_env().spec)} == dataset_features(
        point_env().spec
    )
    sample = dataset[0]
    assert sample["task"] == "reach the right end" and sample["actions"].tolist() == [[0.25], [0.25]]


def test_a_fresh_tiny_policy_runs_closed_loop_and_reports_success_per_episode(
    point_dataset: Path, point_env: type, tmp_path: Path
) -> None:
    checkpoint = tiny_checkpoint(point_dataset, tmp_path / "ckpt")
    env = point_env(max_steps=12)
    policy = VLAPolicy.from_checkpoint(checkpoint, env.spec, seed=3)
    episodes = evaluate(env, lambda task: policy, ["reach"], episodes=3, seed=0, execute_steps=2)
    assert [e.seed for e in episodes] == [0, 1, 2]
    assert all(isinstance(e.success, bool) and 1 <= e.steps <= 12 for e in episodes)
    chunk = policy.predict_chunk(env.reset("reach", 0))
    assert chunk.shape == (4, 1) and chunk.dtype == np.float32  # un-normalised, padding dims dropped

    again = VLAPolicy.from_checkpoint(checkpoint, env.spec, seed=3)
    repeat = evaluate(env, lambda task: again, ["reach"], episodes=3, seed=0, execute_steps=2)
    assert [(e.success, e.steps) for e in repeat] == [(e.success, e.steps) for e in episodes]


def test_a_checkpoint_for_another_action_dim_is_refused(point_dataset: Path, point_env: type, tmp_path: Path) -> None:
    checkpoint = tiny_checkpoint(point_dataset, tmp_path / "ckpt")
    wide = point_env()
    wide.spec = type(wide.spec)(**{**wide.spec.__dict__, "action_names": ("dx", "dy"), "action_low": (-1.0, -1.0),
                                   "action_high": (1.0, 1.0)})
    with pytest.raises(EnvError, match="predicts 1-dim actions, but this env takes 2-dim actions"):
        VLAPolicy(Policy.from_pretrained(checkpoint), wide.spec, source=str(checkpoint))


class ResetCountingHead(MLPActionHead):
    """An MLP head that logs its `reset()` and `predict_action` calls, in order."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.calls: list[str] = []

    def predict_action(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        self.calls.append("predict")
        return super().predict_action(*args, **kwargs)

    def reset(self) -> None:
        self.calls.append("reset")


def test_eval_resets_the_head_before_every_episode(point_dataset: Path, point_env: type, register_component: Any):
    register_component("heads", "ResetCountingHead", ResetCountingHead)
    processor = VLAProcessor(image_size=32, max_state_dim=4, max_action_dim=3, chunk_size=4, max_lang_len=8)
    processor.fit(LeRobotDataset(str(point_dataset), chunk_size=4))
    spec = tiny_vla_spec()
    spec["vla_head"]["type"] = "ResetCountingHead"
    vla = build_vla(spec)
    env = point_env(max_steps=6)
    policy = VLAPolicy(Policy(vla, processor, precision="fp32"), env.spec)
    episodes = evaluate(env, lambda task: policy, ["reach"], episodes=3, seed=0, execute_steps=2)
    calls = vla.vla_head.calls
    assert calls.count("reset") == len(episodes) == 3
    # every episode starts with a reset, followed by that episode's queries (one per 2 steps)
    starts = [i for i, call in enumerate(calls) if call == "reset"]
    per_episode = [calls[a + 1 : b].count("predict") for a, b in zip(starts, [*starts[1:], len(calls)], strict=True)]
    assert per_episode == [-(-e.steps // 2) for e in episodes] and starts[0] == 0
