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


@pytest.fixture(scope="session")
def two_process_run(lerobot_root, tmp_path_factory):
    """An uninterrupted 2-process FSDP run on `lerobot_root` (engine_fixtures.TWO_PROCESS_SETTINGS:
    6 steps, checkpoints at 3 and 6) -> its output directory. Each rank's local bytes after
    step 1 are in `shards-rank<R>.json` next to it. Read-only for the tests that share it."""
    tmp = tmp_path_factory.mktemp("two-process")
    config = engine_fixtures.lerobot_run_config(tmp / "run", lerobot_root, **engine_fixtures.TWO_PROCESS_SETTINGS)
    config_path = engine_fixtures.write_config(tmp / "run.json", config)
    engine_fixtures.run_script(engine_fixtures.script_command(config_path, "--shards", str(tmp / "shards"), nproc=2))
    return tmp / "run"


@pytest.fixture(scope="session")
def one_process_run(lerobot_root, tmp_path_factory):
    """The same run as `two_process_run` (the same settings and data) on 1 process, in this
    process -> its output directory. Read-only for the tests that share it."""
    import torch

    output_dir = tmp_path_factory.mktemp("one-process") / "run"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the tests (_few_threads), which this session fixture runs before
    try:
        engine_fixtures.train(engine_fixtures.lerobot_run_config(output_dir, lerobot_root,
                                                                 **engine_fixtures.TWO_PROCESS_SETTINGS))
    finally:
        torch.set_num_threads(threads)
    return output_dir
