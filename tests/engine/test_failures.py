"""What a user meets when things break during training, through the `vla` CLI: a full disk at
three points of a save, flipped bits in weights and in optimizer state, a launch that cannot
work. Each answer is one `Error:` paragraph with the right exit code, and nothing earlier is lost."""

from __future__ import annotations

import errno
import os

import pytest
import yaml
from engine_fixtures import lerobot_run_config

from vla_core.checksums import verify_checksums
from vla_core.models.weights import load_state_dict


def _config(tmp_path, root, **train):
    path = tmp_path / "run.yaml"
    settings = {"steps": 4, "save_every": 2, "keep_last": 5, **train}
    path.write_text(yaml.safe_dump(lerobot_run_config(tmp_path / "out", root, **settings)))
    return path


def _one_error(err: str) -> str:
    """The single `Error:` paragraph of stderr (and no traceback)."""
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and err.count("Error:") == 1, err
    return errors[0]


def _fail_on_call(original, number, exc):
    """`original`, except that call `number` raises `exc` (a writer whose disk fills up)."""
    calls = {"n": 0}

    def patched(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == number:
            raise exc
        return original(*args, **kwargs)

    return patched


def _patch_safetensors(monkeypatch):
    from safetensors import SafetensorError

    import vla_core.models.weights as weights

    full = SafetensorError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: '
                           '"No space left on device" })')
    monkeypatch.setattr(weights, "save_file", _fail_on_call(weights.save_file, 2, full))
    return "model.safetensors"


def _patch_torch_save(monkeypatch):
    import shutil

    import vla_core.atomic as atomic
    import vla_core.engine.checkpoint as checkpoint

    # torch's zip writer only says "unexpected pos"; the disk, asked afterwards, is full.
    full = RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 4160 vs 4048")
    monkeypatch.setattr(checkpoint.torch, "save", _fail_on_call(checkpoint.torch.save, 4, full))  # 2nd optimizer.pt
    real_usage = shutil.disk_usage
    monkeypatch.setattr(atomic.shutil, "disk_usage", lambda path: real_usage(path)._replace(free=0))
    return "trainer_state/optimizer.pt"


def _patch_last_write(monkeypatch):
    import vla_core.checksums as checksums

    original = checksums.Path.write_text

    def write_text(self, *args, **kwargs):
        if self.name == checksums.CHECKSUMS_FILE and "step-4" in str(self):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(checksums.Path, "write_text", write_text)
    return "checksums.json"


@pytest.mark.parametrize("patch", [_patch_safetensors, _patch_torch_save, _patch_last_write])
def test_disk_full_during_a_save(patch, lerobot_root, tmp_path, vla_main, monkeypatch):
    config = _config(tmp_path, lerobot_root)
    failing_file = patch(monkeypatch)
    code, _, err = vla_main("train", str(config))
    message = _one_error(err)
    assert code == 1
    step4 = tmp_path / "out/checkpoints/step-4"
    assert f"writing '{step4}' failed at '{step4 / failing_file}': No space left on device" in message
    assert "earlier files are intact" in message and "Free some space" in message
    checkpoints = tmp_path / "out/checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["step-2"]  # no step-4, no temporary left
    assert verify_checksums(checkpoints / "step-2") and load_state_dict(checkpoints / "step-2")

    monkeypatch.undo()  # space freed: the run continues from step 2
    code, _, err = vla_main("train", str(config), "--resume", "auto")
    assert code == 0, err
    assert "resumed from" in err and verify_checksums(step4)


def _flip_bits(path, count=4096):
    data = bytearray(path.read_bytes())
    start = len(data) - count - 16  # inside the tensor data, past the headers
    data[start:start + count] = bytes(b ^ 0xFF for b in data[start:start + count])
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damaged", ["model.safetensors", "trainer_state/optimizer.pt"])
def test_flipped_bits_are_named_and_resume_auto_falls_back(damaged, lerobot_root, tmp_path, vla_main):
    config = _config(tmp_path, lerobot_root)
    code, _, err = vla_main("train", str(config))
    assert code == 0, err
    step2, step4 = tmp_path / "out/checkpoints/step-2", tmp_path / "out/checkpoints/step-4"
    _flip_bits(step4 / damaged)

    code, _, err = vla_main("train", str(config), "--resume", str(step4))  # asked for by name: an error
    assert code == 2 and f"'{step4 / damaged}' is damaged" in _one_error(err)

    code, _, err = vla_main("train", str(config), "--resume", "auto", "--set", "train.steps=5")
    assert code == 0, err
    assert f"skipped {step4}: '{step4 / damaged}' is damaged" in " ".join(err.split())
    assert f"resumed from {step2} at step 2" in err
    assert verify_checksums(step4) and verify_checksums(tmp_path / "out/checkpoints/step-5")  # step 4 re-done


def test_predict_and_serve_name_a_damaged_weights_file(lerobot_root, tmp_path, vla_main):
    code, _, err = vla_main("train", str(_config(tmp_path, lerobot_root, steps=2)))
    assert code == 0, err
    checkpoint = tmp_path / "out/checkpoints/step-2"
    _flip_bits(checkpoint / "model.safetensors")
    for command in (["predict", str(checkpoint), "--dataset", str(lerobot_root)],
                    ["serve", str(checkpoint), "--port", "0"]):
        code, _, err = vla_main(*command)
        message = _one_error(err)
        assert code == 2 and f"'{checkpoint / 'model.safetensors'}' is damaged" in message, command


def test_nproc_that_does_not_divide_the_batch_fails_once_before_spawning(lerobot_root, tmp_path, vla_main):
    code, _, err = vla_main("train", str(_config(tmp_path, lerobot_root)), "--nproc", "3")
    message = _one_error(err)
    assert code == 2
    assert "train.batch_size: is 4, which does not split into 1 micro-batches x 3 processes" in message
    assert "launching" not in err and not (tmp_path / "out").exists()
