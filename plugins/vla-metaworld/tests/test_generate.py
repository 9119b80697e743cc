"""Expert demonstrations -> a LeRobot v3.0 dataset that LeRobotDataset reads back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from vla_metaworld.tasks import DEMO_TASKS, MT10

from vla_core.data.lerobot_dataset import LeRobotDataset
from vla_core.envs.generate import generate_dataset
from vla_core.envs.make import make_env
from vla_core.envs.rollout import run_episode
from vla_core.errors import DataError, EnvError

CAMERA = "observation.images.corner4"


@pytest.fixture(scope="module")
def demo_dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    root = tmp_path_factory.mktemp("mw") / "demo"
    report = generate_dataset("metaworld", list(DEMO_TASKS), 1, root, env_kwargs={"image_size": 32}, seed=4)
    return root, report


def test_one_expert_episode_per_task_is_a_valid_lerobot_dataset(demo_dataset: tuple[Path, object]) -> None:
    root, report = demo_dataset
    dataset = LeRobotDataset(str(root), chunk_size=4)
    assert dataset.meta.version == "v3.0" and dataset.meta.fps == 80 and dataset.meta.robot_type == "sawyer"
    assert dataset.embodiment.cameras == ["observation.images.corner4"]
    assert dataset.meta.tasks == ["close the drawer", "press the button from the top", "open the window"]
    assert len(dataset.meta.episodes) == 3 and len(dataset) == report.frames
    assert report.episodes == {task: [4] for task in DEMO_TASKS}

    # The first episode, re-rolled with the same seed, is exactly what was stored.
    env = make_env("metaworld", image_size=32)
    try:
        episode = run_episode(env, env.expert("drawer-close"), "drawer-close", seed=4, record=True)
    finally:
        env.close()
    assert episode.success and dataset.meta.episodes[0].length == episode.steps
    for t in (0, episode.steps // 2, episode.steps - 1):
        sample = dataset[t]
        np.testing.assert_array_equal(sample["images"][CAMERA], episode.observations[t]["corner4"])
        np.testing.assert_array_equal(sample["state"], episode.observations[t]["state"])
        np.testing.assert_array_equal(sample["actions"][0], episode.actions[t])
        assert sample["task"] == "close the drawer"
    last = dataset[episode.steps - 1]
    assert last["action_is_pad"].tolist() == [False, True, True, True]  # chunks stop at the episode end


def test_workers_do_not_change_the_dataset(tmp_path: Path, demo_dataset: tuple[Path, object]) -> None:
    root, _ = demo_dataset
    parallel = tmp_path / "parallel"
    generate_dataset("metaworld", list(DEMO_TASKS), 1, parallel, env_kwargs={"image_size": 32}, seed=4, workers=2)
    a, b = LeRobotDataset(str(root)), LeRobotDataset(str(parallel))
    assert len(a) == len(b)
    for i in (0, len(a) // 2, len(a) - 1):
        np.testing.assert_array_equal(a[i]["images"][CAMERA], b[i]["images"][CAMERA])
        np.testing.assert_array_equal(a[i]["actions"], b[i]["actions"])


def test_bad_arguments_leave_nothing_on_disk(tmp_path: Path) -> None:
    with pytest.raises(EnvError, match="Unknown Meta-World task 'drawer-shut'"):
        generate_dataset("metaworld", ["drawer-shut"], 1, tmp_path / "x")
    with pytest.raises(EnvError, match="--episodes must be >= 1"):
        generate_dataset("metaworld", ["reach"], 0, tmp_path / "x")
    assert not (tmp_path / "x").exists()
    (tmp_path / "taken").mkdir()
    with pytest.raises(DataError, match="already exists"):
        generate_dataset("metaworld", ["reach"], 1, tmp_path / "taken", env_kwargs={"image_size": 16})


def test_every_mt10_expert_solves_a_layout() -> None:
    env = make_env("metaworld", image_size=16)
    try:
        outcomes = {task: run_episode(env, env.expert(task), task, seed=0).success for task in MT10}
    finally:
        env.close()
    assert all(outcomes.values()), outcomes
