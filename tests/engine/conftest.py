"""Fixtures of the engine tests: the synthetic dataset/processor registered for one test,
and helpers to run a training in this process or in a subprocess."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import engine_fixtures  # noqa: E402


@pytest.fixture
def synthetic(register_component):
    """The synthetic dataset and processor, registered for this test."""
    engine_fixtures.register_synthetic(register_component)
    return engine_fixtures


@pytest.fixture(autouse=True)
def _few_threads():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)



@pytest.fixture(scope="session")
def lerobot_root(tmp_path_factory):
    """A small LeRobot v3.0 dataset written by LeRobotWriter (4 episodes x 8 frames)."""
    return engine_fixtures.write_lerobot_dataset(tmp_path_factory.mktemp("lerobot") / "toy")
