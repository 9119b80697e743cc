"""Bad input stops with a VLAError that says what and how to fix it, and never leaves a
partial checkpoint behind."""

from __future__ import annotations

import errno

import pytest
import torch
from engine_fixtures import lerobot_run_config, run_config, train

from vla_core.engine.errors import TrainingDivergedError
from vla_core.engine.sampler import GlobalBatchSampler
from vla_core.errors import CheckpointError, ConfigError, DataError
from vla_core.models.pretrained import load_pretrained


class FailWritesAfter:
    """Callback: after the first checkpoint, make `target.attribute` raise OSError(code)."""

    def __init__(self, monkeypatch, target, attribute, code):
        self.monkeypatch, self.target, self.attribute, self.code = monkeypatch, target, attribute, code

    def on_checkpoint(self, trainer, step, path):
        def fail(*args, **kwargs):
            raise OSError(self.code, errno.errorcode[self.code].lower().replace("_", " "))

        self.monkeypatch.setattr(self.target, self.attribute, fail)


@pytest.mark.parametrize(
    ("target", "attribute", "code"),
    [
        (torch, "save", errno.ENOSPC),  # disk full while writing the optimizer state
        ("vla_core.models.weights", "save_file", errno.EACCES),  # permission denied on the weights
    ],
)
def test_failed_save_leaves_the_previous_checkpoint_valid(lerobot_root, tmp_path, monkeypatch, target, attribute, code):
    if isinstance(target, str):
        import importlib

        target = importlib.import_module(target)
    config = lerobot_run_config(tmp_path, lerobot_root, steps=4, save_every=2)
    with pytest.raises(CheckpointError) as failure:
        train(config, callbacks=[FailWritesAfter(monkeypatch, target, attribute, code)])
    assert "step-4" in str(failure.value) and "nothing was changed" in str(failure.value)
    checkpoints = tmp_path / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["step-2"]  # no step-4, no temporaries
    monkeypatch.undo()
    vla = load_pretrained(checkpoints / "step-2")
    assert vla.checkpoint_config["training_step"] == 2
    trainer, result = train(config, resume="auto")  # and the run continues from it
    assert trainer.resumed_from == checkpoints / "step-2" and result.step == 4


def test_non_finite_loss_names_the_step_and_episode_and_keeps_the_last_checkpoint(synthetic, tmp_path):
    sampler = GlobalBatchSampler(32, 4, seed=0, end_step=8)
    bad_index = sampler.keys(4, 0)[1][1]  # a sample of the 5th step's batch
    episode = bad_index // 8  # 8 frames per episode
    config = run_config(tmp_path, steps=8, save_every=1, batch_size=4,
                        data={"type": "SyntheticRobotDataset", "nan_indices": [bad_index]})
    with pytest.raises(TrainingDivergedError) as failure:
        train(config)
    message = str(failure.value)
    assert failure.value.step == 5 and "at step 5" in message
    assert f"index {bad_index} (episode {episode}) has NaN/inf in 'actions'" in message
    assert bad_index in [index for index, _ in failure.value.samples]
    saved = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert saved == ["step-2", "step-3", "step-4"]  # keep_last 3; nothing after the bad step
    assert "step-4" in message
    load_pretrained(tmp_path / "checkpoints/step-4")  # the last good one loads


def test_resume_with_another_model_is_refused(synthetic, tmp_path):
    config = run_config(tmp_path, steps=2, save_every=2)
    train(config)
    with pytest.raises(ConfigError, match=r"^output_dir: .* already holds checkpoints"):
        train(config)  # neither --resume nor a new output_dir
    config["model"]["vla_head"]["hidden_dim"] = 16
    config["train"]["steps"] = 4
    with pytest.raises(CheckpointError, match="model in the config differs"):
        train(config, resume="auto")
    with pytest.raises(CheckpointError, match="not a directory"):
        train(config, resume=str(tmp_path / "nowhere"))


def test_config_problems_are_named(synthetic, tmp_path):
    no_data = run_config(tmp_path)
    no_data["data"] = None
    with pytest.raises(ConfigError, match=r"^data: training needs a dataset"):
        train(no_data)
    no_processor = run_config(tmp_path)
    del no_processor["model"]["processor"]
    with pytest.raises(ConfigError, match=r"^model\.processor:"):
        train(no_processor)
    with pytest.raises(ConfigError, match=r"^train\.batch_size: is 6, which does not split into 4"):
        train(run_config(tmp_path, batch_size=6, grad_accum_steps=4))
    with pytest.raises(DataError, match="fewer than one global batch"):
        train(run_config(tmp_path, batch_size=64))
    frozen = run_config(tmp_path)
    frozen["train"]["lora"] = {"target_modules": ["no_such_module"]}
    with pytest.raises(ConfigError, match=r"^train\.lora\.target_modules:"):
        train(frozen)


def test_cli_reports_bad_input_with_exit_code_2(synthetic, tmp_path, vla_main):
    code, _, err = vla_main("train", str(tmp_path / "missing.yaml"))
    assert code == 2 and "does not exist" in err and "Traceback" not in err
    code, _, err = vla_main("predict", str(tmp_path))
    assert code == 2 and "config.json" in err
    code, _, err = vla_main("export", str(tmp_path))
    assert code == 2 and "exactly one of --merge-lora" in err


def test_resuming_a_finished_run_trains_nothing_and_names_its_last_checkpoint(synthetic, tmp_path):
    config = run_config(tmp_path, steps=2, save_every=2)
    train(config)
    _, result = train(config, resume="auto")  # nothing left to do
    assert result.step == 2 and result.last_checkpoint == tmp_path / "checkpoints/step-2"


@pytest.mark.parametrize(
    ("change", "path", "fragment"),
    [
        (lambda m: m["llm_backbone"]["config"].update(vocab_size=4), "model:", "vocabulary has 4"),
        (lambda m: m["vla_head"].update(action_dim=1), "model.vla_head.action_dim:", "actions have 2 dims"),
        (lambda m: m["vla_head"].update(state_dim=2), "model.vla_head.state_dim:", "states have 3 dims"),
        (lambda m: m["vla_head"].update(chunk_size=8), "model.vla_head.chunk_size:", "predicts 8 actions"),
    ],
    ids=["vocabulary", "action-dim", "state-dim", "chunk"],
)
def test_model_that_does_not_fit_the_processor_stops_before_training(lerobot_root, tmp_path, change, path, fragment):
    config = lerobot_run_config(tmp_path, lerobot_root, steps=2, save_every=2)
    change(config["model"])
    with pytest.raises(ConfigError) as info:
        train(config)
    assert str(info.value).startswith(path) and fragment in str(info.value), str(info.value)
    assert not (tmp_path / "checkpoints").exists()


def test_resuming_on_a_dataset_the_checkpoint_does_not_describe(lerobot_root, tmp_path):
    from engine_fixtures import write_lerobot_dataset

    train(lerobot_run_config(tmp_path / "run", lerobot_root, steps=2, save_every=2, keep_last=1))
    other = write_lerobot_dataset(tmp_path / "other_robot", state_dim=4)
    config = lerobot_run_config(tmp_path / "run", other, steps=4, save_every=2)
    with pytest.raises(DataError, match=r"observation\.state"):
        train(config, resume="auto")
