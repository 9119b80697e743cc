"""Exact resume: a run killed with SIGKILL between checkpoints and resumed ends with the
same weights, bit for bit, as a run that was never interrupted; the optimizer state after
a resume is the saved one, no more (checked both ways)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time

import torch
from engine_fixtures import lerobot_run_config, script_command, script_env, train, write_config
from torch import nn

from vla_core.engine.checkpoint import STATE_DIR, load_pt
from vla_core.engine.metrics import read_metrics
from vla_core.models.mlp_action_head import MLPActionHead
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


class LateBiasHead(MLPActionHead):
    """An MLPActionHead with a bias that joins the prediction only once `late_active` is set,
    so it first receives a gradient at a chosen step."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.late_bias = nn.Parameter(torch.zeros(self.action_dim))
        self.late_active = False

    def _predict(self, input_features, states, attention_mask):
        pred = super()._predict(input_features, states, attention_mask)
        return pred + self.late_bias if self.late_active else pred


class ActivateLateBias:
    """Callback: the late bias is used from step `first_step` on (in a straight and a resumed run alike)."""

    def __init__(self, first_step: int) -> None:
        self.first_step = first_step

    def on_train_start(self, trainer) -> None:
        trainer.vla.vla_head.late_active = trainer.step + 1 >= self.first_step

    def on_step_end(self, trainer, step, metrics) -> None:
        trainer.vla.vla_head.late_active = step + 1 >= self.first_step


def _optimizer_state(checkpoint):
    return load_pt(checkpoint / STATE_DIR / "optimizer.pt")["state"]


def test_resume_restores_exactly_the_saved_optimizer_state(synthetic, register_component, tmp_path):
    """Resumed at step 4, a parameter that first gets a gradient at step 6 follows the straight
    run, and parameters that never get one (the vision pooling head) have no AdamW state."""
    register_component("heads", "LateBiasHead", LateBiasHead)

    def config(output_dir):
        raw = synthetic.run_config(output_dir, steps=8, save_every=4, keep_last=5, weight_decay=0.01,
                                   schedule="constant")
        raw["model"]["vla_head"]["type"] = "LateBiasHead"
        return raw

    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train(config(straight), callbacks=[ActivateLateBias(6)])
    shutil.copytree(straight / "checkpoints/step-4", resumed / "checkpoints/step-4")
    trainer, result = train(config(resumed), resume="auto", callbacks=[ActivateLateBias(6)])
    assert trainer.resumed_from == resumed / "checkpoints/step-4" and result.step == 8

    at_resume = _optimizer_state(straight / "checkpoints/step-4")
    expected, got = _optimizer_state(straight / "checkpoints/step-8"), _optimizer_state(resumed / "checkpoints/step-8")
    assert "vla_head.late_bias" not in at_resume and "vla_head.late_bias" in expected
    never = [name for name in load_state_dict(straight / "checkpoints/step-8") if name not in expected]
    assert any(name.startswith("vision_backbone.") for name in never)  # parameters with no gradient, ever
    assert sorted(got) == sorted(expected), (set(got) ^ set(expected))  # both directions
    for name in expected:
        assert sorted(got[name]) == sorted(expected[name]), name
        for key, value in expected[name].items():
            assert torch.equal(value, got[name][key]), (name, key)
    weights_straight = load_state_dict(straight / "checkpoints/step-8")
    weights_resumed = load_state_dict(resumed / "checkpoints/step-8")
    assert [n for n in weights_straight if not torch.equal(weights_straight[n], weights_resumed[n])] == []
    assert not torch.equal(weights_straight["vla_head.late_bias"], torch.zeros(3))  # it did train after the resume
