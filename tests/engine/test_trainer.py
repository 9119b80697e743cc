"""The single-process loop: metrics, checkpoints, accumulation, precision, checkpointing,
freezing, hooks, and the Policy that reads the checkpoints."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from engine_fixtures import lerobot_run_config, run_config, train

import vla_core
from vla_core.engine.metrics import read_metrics
from vla_core.engine.policy import Policy
from vla_core.models.weights import load_state_dict

DATA = {"type": "SyntheticRobotDataset", "pad_chunks": False}


def test_run_layout_metrics_checkpoints_and_policy(lerobot_root, tmp_path):
    trainer, result = train(lerobot_run_config(tmp_path, lerobot_root, steps=6, save_every=2, keep_last=2))
    records = read_metrics(tmp_path)
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 6]
    for record in records:
        assert {"step", "loss", "lr", "samples_per_s", "grad_norm"} <= record.keys()
        assert np.isfinite(record["loss"]) and record["samples_per_s"] > 0
    assert records[0]["lr"] == pytest.approx(1e-3) and records[-1]["lr"] < records[1]["lr"]  # cosine decay

    checkpoints = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert checkpoints == ["step-4", "step-6"]  # keep_last 2
    checkpoint = result.last_checkpoint
    assert checkpoint == tmp_path / "checkpoints/step-6"
    config = json.loads((checkpoint / "config.json").read_text())
    assert config["format"] == "vla" and config["training_step"] == 6
    assert config["train"]["steps"] == 6 and config["data"]["type"] == "LeRobotDataset"
    assert config["precision"]["requested"] == "fp32" and config["precision"]["resolved"] == "fp32"
    assert (checkpoint / "dataset_statistics.json").is_file() and (checkpoint / "processor").is_dir()

    vla = vla_core.load_pretrained(checkpoint)
    trained = trainer.model.state_dict()
    for name, tensor in vla.state_dict().items():
        assert torch.equal(tensor, trained[name]), name

    from vla_core.data.lerobot_dataset import LeRobotDataset

    observation = LeRobotDataset(str(lerobot_root), chunk_size=4)[3]
    policy = Policy.from_pretrained(checkpoint, precision="fp32")
    actions = policy.act(observation)
    assert actions.shape == (4, 2) and actions.dtype == np.float32  # (T, action_dim): padding dims dropped
    normalised = vla.predict_action(**policy.model_inputs([observation]))
    np.testing.assert_allclose(actions, policy.processor.unnormalize_actions(normalised)[0].numpy(), rtol=1e-6)
    assert not np.allclose(actions, normalised[0, :, :2].numpy(), atol=1e-2)  # robot units differ from normalised


@pytest.mark.parametrize("data", [DATA, {"type": "SyntheticRobotDataset", "pad_chunks": True}],
                         ids=["unpadded", "padded"])
def test_gradient_accumulation_matches_one_big_batch(synthetic, tmp_path, data):
    # Padded chunks give micro-batches different numbers of valid actions: `loss_weight`
    # keeps the accumulated step equal to the big batch's masked mean.
    settings = {"steps": 3, "batch_size": 4, "save_every": 3}
    train(run_config(tmp_path / "whole", data=data, **settings))
    train(run_config(tmp_path / "accum", data=data, grad_accum_steps=2, **settings))
    whole, accum = read_metrics(tmp_path / "whole"), read_metrics(tmp_path / "accum")
    for a, b in zip(whole, accum, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-6)
    weights_a = load_state_dict(tmp_path / "whole/checkpoints/step-3")
    weights_b = load_state_dict(tmp_path / "accum/checkpoints/step-3")
    for name in weights_a:
        if not name.endswith("k_proj.bias"):  # zero true gradient: AdamW amplifies rounding noise
            torch.testing.assert_close(weights_a[name], weights_b[name], atol=1e-5, rtol=0, msg=name)


def test_gradient_checkpointing_and_bf16(synthetic, tmp_path):
    settings = {"steps": 2, "save_every": 2}
    train(run_config(tmp_path / "plain", **settings))
    trainer, _ = train(run_config(tmp_path / "ckpt", gradient_checkpointing=True, **settings))
    plain, ckpt = read_metrics(tmp_path / "plain"), read_metrics(tmp_path / "ckpt")
    assert [r["loss"] for r in plain] == pytest.approx([r["loss"] for r in ckpt], abs=1e-6)
    assert trainer.vla.llm_backbone.model.layers[0].gradient_checkpointing  # transformers' own switch
    assert "llm_backbone.model.layers.0.mlp.up_proj.weight" in dict(trainer.model.named_parameters())

    seen_dtypes = set()

    class Spy:
        def on_train_start(self, trainer):
            trainer.vla.projector[0].register_forward_hook(lambda module, args, out: seen_dtypes.add(out.dtype))

    bf16_trainer, _ = train(run_config(tmp_path / "bf16", precision="bf16", **settings), callbacks=[Spy()])
    assert torch.bfloat16 in seen_dtypes  # the forward ran under autocast
    assert all(p.dtype == torch.float32 for p in bf16_trainer.model.parameters())  # fp32 master weights
    bf16 = read_metrics(tmp_path / "bf16")
    assert bf16[0]["loss"] == pytest.approx(plain[0]["loss"], abs=0.05) and bf16[0]["loss"] != plain[0]["loss"]


def test_auto_precision_is_resolved_printed_and_recorded(synthetic, tmp_path, monkeypatch):
    # A CPU whose torch cpuinfo reports AMX: auto trains under bf16 autocast and says why.
    from vla_core import precision

    monkeypatch.setattr(precision, "cpu_capability", lambda: {"cpu_name": "Test Xeon", "architecture": "x86_64",
                                                              "amx_bf16": True})
    trainer, result = train(run_config(tmp_path, steps=2, save_every=2, precision="auto", warmup_steps=5))
    assert trainer.precision.resolved == "bf16"
    header = "\n".join(trainer.header_lines())
    assert "precision bf16 (auto: Test Xeon has AMX_BF16)" in header
    assert "warmup_steps (5) is not shorter than train.steps (2)" in header
    recorded = json.loads((result.last_checkpoint / "config.json").read_text())["precision"]
    assert recorded == {"requested": "auto", "resolved": "bf16", "device": "cpu", "reason": "Test Xeon has AMX_BF16"}


def test_processor_randomness_is_seeded_and_independent_of_workers(synthetic, tmp_path):
    def config(name, workers, seed=0):
        raw = run_config(tmp_path / name, steps=2, save_every=2, num_workers=workers, seed=seed)
        raw["model"]["processor"]["augment"] = 0.5
        return raw

    train(config("inline", 0))
    train(config("workers", 2))
    train(config("other_seed", 0, seed=1))
    inline, workers = read_metrics(tmp_path / "inline"), read_metrics(tmp_path / "workers")
    assert [r["loss"] for r in inline] == [r["loss"] for r in workers]
    assert [r["loss"] for r in inline] != [r["loss"] for r in read_metrics(tmp_path / "other_seed")]


def test_frozen_parts_stay_fixed_and_are_not_optimized(synthetic, tmp_path):
    config = run_config(tmp_path, steps=2, save_every=2, lr=1e-2)
    config["model"]["freeze_vision_backbone"] = True
    trainer, result = train(config)
    torch.manual_seed(0)
    initial = vla_core.build_vla(config["model"]).state_dict()
    final = load_state_dict(result.last_checkpoint)
    vision = [n for n in initial if n.startswith("vision_backbone.")]
    assert vision and all(torch.equal(initial[n], final[n]) for n in vision)
    assert not torch.equal(initial["vla_head.mlp.0.weight"], final["vla_head.mlp.0.weight"])
    optimized = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert not optimized & {id(p) for p in trainer.vla.vision_backbone.parameters()}


def test_hooks_give_callbacks_and_metric_sinks(synthetic, tmp_path, vla_plugin_manager):
    events, logged = [], []

    class Callbacks:
        def on_train_start(self, trainer):
            events.append("start")

        def on_step_end(self, trainer, step, metrics):
            events.append(f"step {step}")

        def on_checkpoint(self, trainer, step, path):
            events.append(f"checkpoint {path.name}")

        def on_train_end(self, trainer):
            events.append("end")

    class Sink:
        def log(self, step, metrics):
            logged.append((step, metrics["loss"]))

        def close(self):
            events.append("sink closed")

    class Plugin:
        @vla_core.hookimpl
        def vla_train_callbacks(self, config):
            return [Callbacks()]

        @vla_core.hookimpl
        def vla_metric_sinks(self, config):
            return [Sink()]

    vla_plugin_manager.register(Plugin())
    train(run_config(tmp_path, steps=2, save_every=2), plugin_manager=vla_plugin_manager)
    assert events == ["start", "step 1", "step 2", "checkpoint step-2", "sink closed", "end"]
    assert logged == [(r["step"], r["loss"]) for r in read_metrics(tmp_path)]
