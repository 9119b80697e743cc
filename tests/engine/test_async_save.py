"""`train.async_save`: sharded checkpoints written in the background by DCP's async_save.

A 2-process run that saves asynchronously writes the same checkpoints as one that saves
in the foreground (bit for bit: the same shards, only written later), and resuming from
an async-saved checkpoint continues the synchronous run's trajectory exactly. A run
killed while a background save is in flight (its shards written, the checkpoint not yet
committed, training already past it) leaves nothing that `--resume auto` picks: it
resumes from the previous complete checkpoint.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time

import pytest
import torch
from engine_fixtures import (
    TWO_PROCESS_SETTINGS,
    lerobot_run_config,
    run_script,
    script_command,
    script_env,
    train,
    write_config,
)

from vla_core.checksums import verify_checksums
from vla_core.engine.metrics import read_metrics
from vla_core.models.weights import load_state_dict


def _config(output_dir, root, **train):
    """The settings of the shared synchronous 2-process run (conftest.py: two_process_run), and `train`."""
    return lerobot_run_config(output_dir, root, **{**TWO_PROCESS_SETTINGS, **train})


def _run_two(tmp_path, name, root, *options, **train):
    config_path = write_config(tmp_path / f"{name}.json", _config(tmp_path / name, root, **train))
    return run_script(script_command(config_path, *options, nproc=2))


def _assert_same_weights(expected_dir, got_dir):
    expected, got = load_state_dict(expected_dir), load_state_dict(got_dir)
    assert expected.keys() == got.keys()
    for name in expected:
        assert torch.equal(expected[name], got[name]), name


def _losses(output_dir):
    return {r["step"]: r["loss"] for r in read_metrics(output_dir)}


@pytest.mark.slow
def test_async_checkpoints_equal_sync_ones_and_resume_on_the_same_trajectory(two_process_run, lerobot_root, tmp_path):
    _run_two(tmp_path, "async", lerobot_root, async_save=True)
    sync, asynchronous = two_process_run / "checkpoints", tmp_path / "async/checkpoints"
    for step in (3, 6):
        assert verify_checksums(asynchronous / f"step-{step}")  # complete, every file recorded
        assert (asynchronous / f"step-{step}/model_shards/.metadata").is_file()
        _assert_same_weights(sync / f"step-{step}", asynchronous / f"step-{step}")
    assert not any(p.name.startswith(".step-") for p in asynchronous.iterdir())

    # Resume from the async-saved step 3 (on 2 processes, saving asynchronously again).
    resumed = tmp_path / "resumed"
    shutil.copytree(asynchronous / "step-3", resumed / "checkpoints/step-3")
    _run_two(tmp_path, "resumed", lerobot_root, "--resume", "auto", async_save=True)
    _assert_same_weights(sync / "step-6", resumed / "checkpoints/step-6")
    expected = _losses(two_process_run)
    assert {s: loss for s, loss in _losses(resumed).items() if s > 3} == {s: expected[s] for s in (4, 5, 6)}


@pytest.mark.slow
def test_a_run_killed_with_an_async_save_in_flight_resumes_from_the_previous_checkpoint(lerobot_root, tmp_path):
    killed = tmp_path / "killed"
    config = _config(killed, lerobot_root, save_every=2, async_save=True)  # saves at steps 2, 4, 6
    config_path = write_config(tmp_path / "killed.json", config)
    process = subprocess.Popen(script_command(config_path, "--hang-in-async-commit", "4", nproc=2), env=script_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    in_commit = killed / "in-commit"
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 240
        # Rank 0's background thread is stuck before committing step 4; training goes on to step 6.
        while not (in_commit.exists() and any(r["step"] == 6 for r in _safe_metrics(killed))):
            assert process.poll() is None, process.stderr.read()[-4000:]
            assert time.monotonic() < deadline, "the run never trained past the step-4 save"
            time.sleep(0.1)
        workers = [int((killed / f"pid-rank{rank}").read_text()) for rank in (0, 1)]
    finally:  # torchrun and both ranks (each in its own session)
        os.killpg(process.pid, signal.SIGKILL)
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.wait(timeout=30)
    checkpoints = killed / "checkpoints"
    in_flight = [p for p in checkpoints.iterdir() if p.name.startswith(".step-4.tmp-")]
    assert len(in_flight) == 1
    assert (in_flight[0] / "model_shards/.metadata").is_file()  # every shard written, not committed
    assert (in_flight[0] / "trainer_state/optimizer_shards/.metadata").is_file()
    assert not (checkpoints / "step-4").exists() and (checkpoints / "step-2").is_dir()
    assert not (checkpoints / "step-6").exists()

    trainer, result = train(_config(killed, lerobot_root, save_every=2, async_save=True), resume="auto")
    assert trainer.resumed_from == checkpoints / "step-2" and result.step == 6
    assert not any(p.name.startswith(".step-") for p in checkpoints.iterdir())
    # On one process the async save writes DCP shards too; they are complete and verified.
    assert verify_checksums(checkpoints / "step-6") and (checkpoints / "step-6/model_shards/.metadata").is_file()


def _safe_metrics(output_dir):
    try:
        return read_metrics(output_dir)
    except (OSError, ValueError):  # not written yet, or a line being written
        return []


def test_async_save_with_lora_is_said_to_have_no_effect():
    from vla_core.config.run import LoraConfig, RunConfig, TrainConfig, config_warnings

    with_lora = RunConfig(model={"type": "LlavaVLA"}, train=TrainConfig(async_save=True, lora=LoraConfig()))
    assert any("train.async_save has no effect with train.lora" in w for w in config_warnings(with_lora))
    plain = RunConfig(model={"type": "LlavaVLA"}, train=TrainConfig(async_save=True))
    assert not any("async_save" in w for w in config_warnings(plain))
