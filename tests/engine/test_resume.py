"""Exact resume: a run killed with SIGKILL between checkpoints and resumed ends with the
same weights, bit for bit, as a run that was never interrupted."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import torch
from engine_fixtures import lerobot_run_config, script_command, script_env, train, write_config

from vla_core.engine.checkpoint import STATE_DIR, load_pt
from vla_core.engine.metrics import read_metrics
from vla_core.models.weights import load_state_dict


def _config(output_dir, root):
    config = lerobot_run_config(output_dir, root, steps=12, save_every=4, keep_last=5, batch_size=4, grad_accum_steps=2,
                        warmup_steps=3, weight_decay=0.01)
    config["model"]["vla_head"]["dropout"] = 0.2  # the model's RNG matters too
    return config


def _wait_for(predicate, process, timeout=240.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if process.poll() is not None:
            raise AssertionError(f"the training process ended early:\n{process.stderr.read()[-4000:]}")
        time.sleep(0.05)
    raise AssertionError("timed out waiting for the training process")


def _logged_steps(output_dir):
    path = output_dir / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line)["step"] for line in path.read_text().splitlines() if line.endswith("}")]


def test_sigkill_between_checkpoints_then_resume_is_exact(lerobot_root, tmp_path):
    reference_dir, killed_dir = tmp_path / "reference", tmp_path / "killed"
    config_path = write_config(tmp_path / "killed.json", _config(killed_dir, lerobot_root))
    # After step 5 each step sleeps 0.5 s, so step 6 lands well before the step-8 checkpoint.
    process = subprocess.Popen(
        script_command(config_path, "--sleep-after", "5"),
        env=script_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        _wait_for(lambda: 6 in _logged_steps(killed_dir), process)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL
    checkpoints = killed_dir / "checkpoints"
    assert (checkpoints / "step-4").is_dir() and not (checkpoints / "step-8").exists()

    train(_config(reference_dir, lerobot_root))
    trainer, result = train(_config(killed_dir, lerobot_root), resume="auto")
    assert trainer.resumed_from == checkpoints / "step-4"
    assert result.step == 12

    reference = load_state_dict(reference_dir / "checkpoints/step-12")
    resumed = load_state_dict(killed_dir / "checkpoints/step-12")
    assert reference.keys() == resumed.keys()
    different = [name for name in reference if not torch.equal(reference[name], resumed[name])]
    assert not different, f"tensors differ after resume: {different}"
    initial = load_state_dict(reference_dir / "checkpoints/step-4")
    assert any(not torch.equal(initial[name], reference[name]) for name in reference)  # training changed them

    optimizer_ref = load_pt(reference_dir / "checkpoints/step-12" / STATE_DIR / "optimizer.pt")["state"]
    optimizer_res = load_pt(killed_dir / "checkpoints/step-12" / STATE_DIR / "optimizer.pt")["state"]
    for name, state in optimizer_ref.items():
        for key, value in state.items():
            assert torch.equal(value, optimizer_res[name][key]), (name, key)

    # metrics.jsonl reads as one run: steps the killed run logged after step 4 were replaced.
    records = read_metrics(killed_dir)
    assert [r["step"] for r in records] == list(range(1, 13))
    assert [r["loss"] for r in records] == [r["loss"] for r in read_metrics(reference_dir)]
