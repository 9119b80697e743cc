"""LoRA through peft: only adapters train, the adapter is a real peft adapter, and the
merged export acts exactly like the adapter model."""

from __future__ import annotations

import json

import pytest
import torch
from engine_fixtures import lerobot_run_config, train

from vla_core.engine.export import export_checkpoint
from vla_core.engine.lora import ADAPTER_DIR
from vla_core.engine.policy import Policy
from vla_core.errors import CheckpointError
from vla_core.models.build import build_vla
from vla_core.models.pretrained import load_pretrained, without_pretrained_paths
from vla_core.models.weights import load_state_dict


@pytest.fixture(scope="module")
def lora_run(lerobot_root, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("lora") / "run"
    config = lerobot_run_config(output_dir, lerobot_root, steps=3, save_every=3, lr=1e-2)
    config["train"]["lora"] = {"r": 4, "alpha": 8, "target_modules": "all-linear"}
    trainer, result = train(config)
    return config, trainer, result


def _observation(root):
    from vla_core.data.lerobot_dataset import LeRobotDataset

    return LeRobotDataset(str(root), chunk_size=4)[5]


def test_only_adapter_parameters_change(lora_run):
    config, trainer, result = lora_run
    torch.manual_seed(config["train"]["seed"])
    initial = build_vla(config["model"]).state_dict()  # the trainer builds with the same seed
    base = load_state_dict(result.last_checkpoint)
    assert base.keys() == initial.keys()  # base weights under their original names
    for name, tensor in initial.items():
        assert torch.equal(base[name], tensor), f"base weight {name} changed"

    trainable = {n for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)
    optimized = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert optimized == {id(p) for p in trainer.model.parameters() if p.requires_grad}
    # lora_B starts at zero; training moved it.
    lora_b = [p for n, p in trainer.model.named_parameters() if ".lora_B." in n]
    assert any(p.detach().abs().sum() > 0 for p in lora_b)


def test_saved_adapter_loads_with_peft_and_merged_export_acts_the_same(lora_run, lerobot_root, tmp_path):
    from peft import PeftModel

    config, _, result = lora_run
    checkpoint = result.last_checkpoint
    adapter_config = json.loads((checkpoint / ADAPTER_DIR / "adapter_config.json").read_text())
    assert adapter_config["peft_type"] == "LORA" and adapter_config["r"] == 4

    base = build_vla(without_pretrained_paths(config["model"]))
    base.load_state_dict(load_state_dict(checkpoint))
    adapter_model = PeftModel.from_pretrained(base, str(checkpoint / ADAPTER_DIR)).eval()
    assert any("lora_A" in n for n, _ in adapter_model.named_parameters())

    exported = export_checkpoint(checkpoint, tmp_path / "merged", merge_lora=True)
    assert not (exported / ADAPTER_DIR).exists() and not (exported / "trainer_state").exists()
    merged = Policy.from_pretrained(exported)
    assert not any("lora" in n for n, _ in merged.vla.named_parameters())

    observation = _observation(lerobot_root)
    inputs = merged.model_inputs([observation])
    with torch.no_grad():
        adapter_actions = adapter_model.predict_action(**inputs)
        merged_actions = merged.vla.predict_action(**inputs)
        no_adapter = adapter_model.get_base_model()
        with adapter_model.disable_adapter():
            base_actions = no_adapter.predict_action(**inputs)
    torch.testing.assert_close(merged_actions, adapter_actions, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(base_actions, adapter_actions, atol=1e-4)  # the adapter matters

    # load_pretrained on the LoRA checkpoint itself merges the adapter too.
    direct = load_pretrained(checkpoint)
    with torch.no_grad():
        torch.testing.assert_close(direct.predict_action(**inputs), adapter_actions, atol=1e-5, rtol=1e-5)


def test_export_refuses_what_it_cannot_do(lora_run, tmp_path):
    _, _, result = lora_run
    with pytest.raises(CheckpointError, match="--merge-lora"):
        export_checkpoint(result.last_checkpoint, tmp_path / "plain", merge_lora=False)
    with pytest.raises(CheckpointError, match="new directory"):
        export_checkpoint(result.last_checkpoint, result.last_checkpoint, merge_lora=True)


def test_resuming_with_other_lora_settings_is_refused(lora_run):
    import copy

    config, _, _ = lora_run
    other = copy.deepcopy(config)
    other["train"].update(steps=4, lora={"r": 8, "alpha": 8, "target_modules": "all-linear"})
    with pytest.raises(CheckpointError, match="resume with the same LoRA settings"):
        train(other, resume="auto")
    other["train"]["lora"] = None  # full fine-tuning from a LoRA checkpoint's state
    with pytest.raises(CheckpointError, match="resume with the same LoRA settings"):
        train(other, resume="auto")
