"""LoRA on several processes: every rank writes its shards of the frozen base (DCP, under
the VLA's parameter names), rank 0 the gathered adapter; nothing else is gathered.

The checkpoint reads like a 1-process LoRA checkpoint: `load_state_dict` returns the base,
`Policy.from_pretrained` predicts what the 1-process run's checkpoint at the same step
predicts, `export --merge-lora` acts the same, and `--resume auto` continues on 1 process
and on 2. Tolerance as in test_fsdp.py / test_sharded_checkpoints.py: 1e-5 across process
counts (only the summation order of the gradient reductions differs); bit for bit on the
same number of processes.
"""

from __future__ import annotations

import shutil

import pytest
import torch
from engine_fixtures import (
    TWO_PROCESS_SETTINGS,
    lerobot_run_config,
    run_script,
    script_command,
    train,
    write_config,
)

from vla_core.checksums import read_checksums
from vla_core.engine.export import export_checkpoint
from vla_core.engine.lora import ADAPTER_DIR, read_adapter_state
from vla_core.engine.metrics import read_metrics
from vla_core.engine.policy import Policy
from vla_core.models.build import build_vla
from vla_core.models.weights import load_state_dict

TOLERANCE = 1e-5
# modules_to_save: a fully trained copy of the head goes into the adapter (peft's wrapper),
# its original stays in the base; activation checkpointing wraps the layers (names change).
LORA = {"r": 4, "alpha": 8, "target_modules": "all-linear", "modules_to_save": ["vla_head"]}


def _config(output_dir, root):
    config = lerobot_run_config(output_dir, root, **TWO_PROCESS_SETTINGS)
    config["train"].update(lora=dict(LORA), gradient_checkpointing=True)
    return config


def _run_two_processes(tmp_path, name, root, *options):
    config_path = write_config(tmp_path / f"{name}.json", _config(tmp_path / name, root))
    return run_script(script_command(config_path, *options, nproc=2))


@pytest.fixture(scope="module")
def lora_runs(lerobot_root, tmp_path_factory):
    """The same LoRA run (6 steps, checkpoints at 3 and 6) on 2 processes (one torchrun
    launch) and on 1 (in this process) -> (2-process output_dir, 1-process output_dir)."""
    tmp = tmp_path_factory.mktemp("lora-sharded")
    _run_two_processes(tmp, "two", lerobot_root)
    train(_config(tmp / "one", lerobot_root))
    return tmp / "two", tmp / "one"


def _adapters_close(expected_checkpoint, got_checkpoint, atol):
    expected = read_adapter_state(expected_checkpoint / ADAPTER_DIR)
    got = read_adapter_state(got_checkpoint / ADAPTER_DIR)
    assert expected.keys() == got.keys() and expected
    for name in expected:
        if atol == 0:
            assert torch.equal(got[name], expected[name]), name
        else:
            torch.testing.assert_close(got[name], expected[name], atol=atol, rtol=0, msg=name)


def _losses(output_dir, first_step):
    return [r["loss"] for r in read_metrics(output_dir) if r["step"] >= first_step]


@pytest.mark.slow
def test_two_processes_shard_the_base_and_gather_only_the_adapter(lora_runs):
    two, one = lora_runs
    checkpoint = two / "checkpoints/step-6"
    files = set(read_checksums(checkpoint))
    for rank in (0, 1):
        assert f"model_shards/__{rank}_0.distcp" in files
    assert {"model_shards/.metadata", f"{ADAPTER_DIR}/adapter_config.json", f"{ADAPTER_DIR}/adapter_model.safetensors",
            "trainer_state/optimizer.pt", "config.json"} <= files
    assert not (checkpoint / "model.safetensors").exists()
    assert not (checkpoint / "trainer_state/optimizer_shards").exists()
    # Each rank wrote about half of the base (dim-0 shards).
    sizes = [(checkpoint / f"model_shards/__{rank}_0.distcp").stat().st_size for rank in (0, 1)]
    assert 0.6 < sizes[0] / sizes[1] < 1.6, sizes

    # The shards hold the frozen base under the VLA's own names: the pre-training weights,
    # exactly what the 1-process checkpoint's model.safetensors holds.
    config = _config(two, "unused")
    torch.manual_seed(config["train"]["seed"])
    initial = build_vla(config["model"]).state_dict()
    base, single = load_state_dict(checkpoint), load_state_dict(one / "checkpoints/step-6")
    assert base.keys() == initial.keys() == single.keys()
    for name, tensor in initial.items():
        assert torch.equal(base[name], tensor) and torch.equal(single[name], tensor), name
    # The adapter trained, and as on 1 process.
    _adapters_close(one / "checkpoints/step-6", checkpoint, TOLERANCE)
    adapter = read_adapter_state(checkpoint / ADAPTER_DIR)
    assert any(".lora_B." in name and tensor.abs().sum() > 0 for name, tensor in adapter.items())
    head = [name for name in adapter if name.startswith("base_model.model.vla_head.")]
    assert head and not any(".lora_" in name for name in head)  # the trained copy of the head
    assert any(not torch.equal(adapter[name], base[name.removeprefix("base_model.model.")]) for name in head)


@pytest.mark.slow
def test_policy_and_merged_export_predict_as_the_one_process_checkpoint(lora_runs, lerobot_root, tmp_path):
    from vla_core.data.lerobot_dataset import LeRobotDataset

    two, one = lora_runs
    checkpoint = two / "checkpoints/step-6"
    sharded, single = Policy.from_pretrained(checkpoint), Policy.from_pretrained(one / "checkpoints/step-6")
    exported = export_checkpoint(checkpoint, tmp_path / "merged", merge_lora=True)
    assert (exported / "model.safetensors").is_file() and not (exported / "model_shards").exists()
    assert not (exported / ADAPTER_DIR).exists()
    from_export = Policy.from_pretrained(exported)
    assert not any("lora" in name for name, _ in from_export.vla.named_parameters())
    dataset = LeRobotDataset(str(lerobot_root), chunk_size=4)
    for index in (0, 5, 17):
        observation = dataset[index]
        actions = sharded.act(observation)
        assert actions.shape == (4, 2)
        torch.testing.assert_close(torch.as_tensor(actions), torch.as_tensor(single.act(observation)),
                                   atol=TOLERANCE, rtol=0)
        torch.testing.assert_close(torch.as_tensor(from_export.act(observation)), torch.as_tensor(actions),
                                   atol=TOLERANCE, rtol=0)


@pytest.mark.slow
def test_resume_on_one_and_on_two_processes_follows_the_uninterrupted_run(lora_runs, lerobot_root, tmp_path):
    two_run, _ = lora_runs
    on_one, on_two = tmp_path / "on-one", tmp_path / "on-two"
    for output_dir in (on_one, on_two):
        shutil.copytree(two_run / "checkpoints/step-3", output_dir / "checkpoints/step-3")
    trainer, result = train(_config(on_one, lerobot_root), resume="auto")
    assert trainer.resumed_from == on_one / "checkpoints/step-3" and result.step == 6
    _run_two_processes(tmp_path, "on-two", lerobot_root, "--resume", "auto")

    reference = two_run / "checkpoints/step-6"
    assert (on_two / "checkpoints/step-6/model_shards/.metadata").is_file()
    assert (on_one / "checkpoints/step-6/model.safetensors").is_file()  # one process writes safetensors
    _adapters_close(reference, on_two / "checkpoints/step-6", atol=0)  # same process count: exact
    _adapters_close(reference, on_one / "checkpoints/step-6", atol=TOLERANCE)
    expected = _losses(two_run, 4)
    assert _losses(on_two, 4) == expected
    assert max(abs(a - b) for a, b in zip(_losses(on_one, 4), expected, strict=True)) < TOLERANCE
    # The base stayed the base; the adapter moved after the resume.
    for resumed in (on_one, on_two):
        base, start = load_state_dict(resumed / "checkpoints/step-6"), load_state_dict(reference)
        assert all(torch.equal(base[name], start[name]) for name in start)
    start = read_adapter_state(two_run / "checkpoints/step-3" / ADAPTER_DIR)
    end = read_adapter_state(reference / ADAPTER_DIR)
    assert any(not torch.equal(start[name], end[name]) for name in end)
