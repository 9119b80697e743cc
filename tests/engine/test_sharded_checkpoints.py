"""Sharded checkpoints (torch.distributed.checkpoint): a 2-process run saves its shards
without gathering them, resumes on 1 process and on 2 (and a 1-process checkpoint on 2)
along the uninterrupted trajectory, exports to safetensors that predict the same actions,
and a save killed half-way is never resumed from.

Tolerance: resuming on the same number of processes continues bit for bit; on a different
number, the losses and weights stay within 1e-5 of the uninterrupted run (what 1 vs 2
processes give anyway: only the summation order of the gradient reductions differs).
Attention key biases are left out of weight comparisons across process counts (their true
gradient is 0, see test_fsdp.py).
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

from vla_core.checksums import read_checksums
from vla_core.engine.export import export_checkpoint
from vla_core.engine.metrics import read_metrics
from vla_core.engine.policy import Policy
from vla_core.models.weights import load_state_dict

TOLERANCE = 1e-5


def _config(output_dir, root):
    """The settings of the shared uninterrupted 2-process run (conftest.py: two_process_run)."""
    return lerobot_run_config(output_dir, root, **TWO_PROCESS_SETTINGS)


def _run_two_processes(tmp_path, name, root, *options):
    config_path = write_config(tmp_path / f"{name}.json", _config(tmp_path / name, root))
    return run_script(script_command(config_path, *options, nproc=2))


def _copy_checkpoint(source, output_dir, step):
    shutil.copytree(source / "checkpoints" / f"step-{step}", output_dir / "checkpoints" / f"step-{step}")


def _assert_weights_close(expected_dir, got_dir, atol):
    expected, got = load_state_dict(expected_dir), load_state_dict(got_dir)
    assert expected.keys() == got.keys()
    for name in expected:
        if atol == 0:
            assert torch.equal(expected[name], got[name]), name
        elif not name.endswith("k_proj.bias"):
            torch.testing.assert_close(got[name], expected[name], atol=atol, rtol=0, msg=name)


def _losses(output_dir, first_step):
    return [r["loss"] for r in read_metrics(output_dir) if r["step"] >= first_step]


@pytest.fixture
def sharded_run(two_process_run):
    """The uninterrupted 2-process run of 6 steps, checkpoints at steps 3 and 6 (shared: conftest.py)."""
    return two_process_run


@pytest.mark.slow
def test_every_rank_writes_its_shards_and_checksums_cover_them(sharded_run):
    checkpoint = sharded_run / "checkpoints/step-6"
    files = set(read_checksums(checkpoint))
    for rank in (0, 1):
        assert f"model_shards/__{rank}_0.distcp" in files
        assert f"trainer_state/optimizer_shards/__{rank}_0.distcp" in files
    assert {"model_shards/.metadata", "config.json", "trainer_state/state.json"} <= files
    assert not (checkpoint / "model.safetensors").exists() and not (checkpoint / "trainer_state/optimizer.pt").exists()
    # Each rank's file holds about half of the weights (dim-0 shards; replicated buffers are written once).
    sizes = [(checkpoint / f"model_shards/__{rank}_0.distcp").stat().st_size for rank in (0, 1)]
    assert 0.6 < sizes[0] / sizes[1] < 1.6, sizes


@pytest.mark.slow
def test_resume_on_one_and_on_two_processes_follows_the_uninterrupted_run(sharded_run, lerobot_root, tmp_path):
    one, two = tmp_path / "on-one", tmp_path / "on-two"
    _copy_checkpoint(sharded_run, one, 3)
    _copy_checkpoint(sharded_run, two, 3)
    trainer, result = train(_config(one, lerobot_root), resume="auto")
    assert trainer.resumed_from == one / "checkpoints/step-3" and result.step == 6
    _run_two_processes(tmp_path, "on-two", lerobot_root, "--resume", "auto")

    reference = sharded_run / "checkpoints/step-6"
    _assert_weights_close(reference, two / "checkpoints/step-6", atol=0)  # same process count: exact
    _assert_weights_close(reference, one / "checkpoints/step-6", atol=TOLERANCE)
    expected = _losses(sharded_run, 4)
    assert _losses(two, 4) == expected
    assert max(abs(a - b) for a, b in zip(_losses(one, 4), expected, strict=True)) < TOLERANCE
    # Training moved the weights after the resume (the comparison is not of frozen copies).
    start, end = load_state_dict(sharded_run / "checkpoints/step-3"), load_state_dict(reference)
    assert any(not torch.equal(start[name], end[name]) for name in end)


@pytest.mark.slow
def test_a_one_process_checkpoint_resumes_on_two(one_process_run, lerobot_root, tmp_path):
    single, resumed = one_process_run, tmp_path / "resumed"  # single: the same run on 1 process (conftest.py)
    _copy_checkpoint(single, resumed, 3)
    _run_two_processes(tmp_path, "resumed", lerobot_root, "--resume", "auto")
    assert (resumed / "checkpoints/step-6/model_shards/.metadata").is_file()
    _assert_weights_close(single / "checkpoints/step-6", resumed / "checkpoints/step-6", atol=TOLERANCE)
    expected = _losses(single, 4)
    assert max(abs(a - b) for a, b in zip(_losses(resumed, 4), expected, strict=True)) < TOLERANCE


@pytest.mark.slow
def test_export_of_a_sharded_checkpoint_predicts_the_same_actions(sharded_run, lerobot_root, tmp_path):
    from vla_core.data.lerobot_dataset import LeRobotDataset

    checkpoint = sharded_run / "checkpoints/step-6"
    exported = export_checkpoint(checkpoint, tmp_path / "exported")
    assert (exported / "model.safetensors").is_file() and not (exported / "model_shards").exists()
    assert not (exported / "trainer_state").exists()
    from_export, from_shards = Policy.from_pretrained(exported), Policy.from_pretrained(checkpoint)
    dataset = LeRobotDataset(str(lerobot_root), chunk_size=4)
    for index in (0, 5, 17):
        observation = dataset[index]
        actions = from_export.act(observation)
        assert actions.shape == (4, 2)
        assert (actions == from_shards.act(observation)).all()
    # The exported weights are the trained ones, not a fresh initialisation.
    _assert_weights_close(checkpoint, exported, atol=0)


@pytest.mark.slow
def test_a_save_killed_half_way_is_never_resumed_from(sharded_run, lerobot_root, tmp_path):
    killed = tmp_path / "killed"
    config_path = write_config(tmp_path / "killed.json", _config(killed, lerobot_root))
    process = subprocess.Popen(script_command(config_path, "--hang-in-save", "6", nproc=2), env=script_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    markers = [killed / f"in-save-rank{rank}" for rank in (0, 1)]
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 240
        while not all(marker.exists() and marker.read_text() for marker in markers):
            assert process.poll() is None, process.stderr.read()[-4000:]
            assert time.monotonic() < deadline, "the run never reached the step-6 save"
            time.sleep(0.1)
        workers = [int(marker.read_text()) for marker in markers]
    finally:  # torchrun and both ranks (each in its own session), mid-save
        os.killpg(process.pid, signal.SIGKILL)
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.wait(timeout=30)
    checkpoints = killed / "checkpoints"
    half_done = [p for p in checkpoints.iterdir() if p.name.startswith(".step-6.tmp-")]
    assert len(half_done) == 1 and (half_done[0] / "model_shards/.metadata").is_file()  # the shards were written
    assert not (checkpoints / "step-6").exists() and (checkpoints / "step-3").is_dir()

    trainer, result = train(_config(killed, lerobot_root), resume="auto")
    assert trainer.resumed_from == checkpoints / "step-3" and result.step == 6
    assert not any(p.name.startswith(".step-") for p in checkpoints.iterdir())  # the half-done save was removed
    _assert_weights_close(sharded_run / "checkpoints/step-6", checkpoints / "step-6", atol=TOLERANCE)
