"""Fixtures for the data tests: the lerobot-written datasets and a small writer-made one."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "lerobot"


@pytest.fixture(scope="session")
def v30_video_root() -> Path:
    """LeRobot v3.0, AV1 video (3 episodes x 12/11/13 frames), written by lerobot 0.4.4."""
    return FIXTURES / "v30_video"


@pytest.fixture(scope="session")
def v21_image_root() -> Path:
    """LeRobot v2.1, PNG images in parquet (2 episodes x 10/12 frames), written by lerobot 0.3.3."""
    return FIXTURES / "v21_image"


@pytest.fixture(scope="session")
def expected() -> Callable[[str], dict[str, Any]]:
    """What lerobot itself returned for a fixture dataset."""
    return lambda name: json.loads((FIXTURES / f"{name}.expected.json").read_text())


def synthetic_image(episode: int, frame: int, height: int, width: int) -> np.ndarray:
    """uint8 (H, W, 3): gradients, a per-episode blue level and a square moving with the frame."""
    image = np.zeros((height, width, 3), dtype=np.uint8)
    image[..., 0] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
    image[..., 1] = np.linspace(0, 255, height, dtype=np.uint8)[:, None]
    image[..., 2] = (37 * episode + 11) % 256
    y, x = (3 * frame) % (height - 8), (5 * frame) % (width - 8)
    image[y : y + 8, x : x + 8] = 255
    return image


def synthetic_frame(episode: int, frame: int, state_dim: int = 5, action_dim: int = 3) -> dict[str, Any]:
    rng = np.random.default_rng(1000 * episode + frame)
    return {
        "observation.images.top": synthetic_image(episode, frame, 32, 40),
        "observation.images.wrist": synthetic_image(episode + 7, frame, 32, 32),
        "observation.state": rng.normal(size=state_dim).astype(np.float32) * 3 + episode,
        "action": rng.normal(size=action_dim).astype(np.float32) - frame,
        "task": ["stack the blocks", "open the drawer", "push the button"][episode % 3],
    }


FEATURES = {
    "observation.images.top": {"dtype": "image", "shape": [32, 40, 3]},
    "observation.images.wrist": {"dtype": "video", "shape": [32, 32, 3]},
    "observation.state": {"dtype": "float32", "shape": [5], "names": ["a", "b", "c", "d", "e"]},
    "action": {"dtype": "float32", "shape": [3], "names": ["x", "y", "gripper"]},
}
LENGTHS = (9, 6, 11, 7)


@pytest.fixture(scope="session")
def written_dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[tuple[int, int], dict[str, Any]]]:
    """A v3.0 dataset written by our LeRobotWriter (inline PNG top camera, AV1 wrist camera),
    and the frames that went in, keyed by (episode, frame)."""
    from vla_core.data.lerobot_writer import LeRobotWriter

    root = tmp_path_factory.mktemp("written") / "toy"
    source = {}
    writer = LeRobotWriter.create(root, fps=15, features=FEATURES, robot_type="toy_arm")
    for episode, length in enumerate(LENGTHS):
        for frame in range(length):
            source[(episode, frame)] = synthetic_frame(episode, frame)
            writer.add_frame(source[(episode, frame)])
        writer.save_episode()
    writer.finalize()
    return root, source


@pytest.fixture(scope="session")
def make_frame() -> Callable[..., dict[str, Any]]:
    """synthetic_frame(episode, frame) -> a frame dict for FEATURES (plus its task)."""
    return synthetic_frame


@pytest.fixture(scope="session")
def writer_features() -> dict[str, dict[str, Any]]:
    return {k: dict(v) for k, v in FEATURES.items()}
