"""Weights I/O: bit-exact round trips, corrupt files, name mapping reports, atomic writes."""

from __future__ import annotations

import errno
import json

import pytest
import torch
from torch import nn

import vla_core
from vla_core.atomic import atomic_directory
from vla_core.errors import CheckpointError
from vla_core.models import weights
from vla_core.models.weights import load_into, load_state_dict, map_checkpoint_keys, save_state_dict
from vla_core.testing import tiny_vla_spec


@pytest.fixture(scope="module")
def tiny_vla():
    torch.manual_seed(0)
    return vla_core.build_vla(tiny_vla_spec())


def test_save_pretrained_round_trip_is_bit_exact(tiny_vla, tmp_path):
    tiny_vla.save_pretrained(tmp_path / "ckpt")
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert config["format"] == "vla" and config["model"]["type"] == "LlavaVLA"
    loaded = vla_core.load_pretrained(tmp_path / "ckpt")
    theirs = loaded.state_dict()
    for key, tensor in tiny_vla.state_dict().items():
        assert torch.equal(tensor, theirs[key]), key
    assert not loaded.training
    assert type(loaded).from_pretrained(tmp_path / "ckpt").load_report.ok


def test_truncated_or_corrupt_weights_name_the_file(tiny_vla, tmp_path):
    tiny_vla.save_pretrained(tmp_path / "ckpt")
    path = tmp_path / "ckpt" / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"model\.safetensors' is damaged"):
        vla_core.load_pretrained(tmp_path / "ckpt")
    (tmp_path / "ckpt" / "checksums.json").unlink()  # as written before checksums: the reader still notices
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*truncated or corrupt"):
        vla_core.load_pretrained(tmp_path / "ckpt")
    path.write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match=str(path).replace(".", r"\.")):
        vla_core.load_pretrained(tmp_path / "ckpt")


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        vla_core.load_pretrained(tmp_path / "nowhere")
    with pytest.raises(CheckpointError, match=r"no config\.json"):
        vla_core.load_pretrained(tmp_path)


class Tiny(nn.Module):
    def __init__(self, width: int = 4) -> None:
        super().__init__()
        self.encoder = nn.Linear(3, width)
        self.head = nn.Linear(width, 2)


def test_name_mapping_report_and_strict_failure():
    checkpoint = {
        "action_head.weight": torch.zeros(2, 4),
        "action_head.bias": torch.zeros(2),
        "backbone.extra": torch.zeros(1),  # outside the mapped prefix: ignored
    }
    report = load_into(Tiny(), checkpoint, {"head": "action_head"})
    assert report.ok and report.loaded == ["head.bias", "head.weight"] and report.ignored == 1

    bad = {"action_head.weight": torch.zeros(2, 5), "action_head.surprise": torch.zeros(1)}
    with pytest.raises(CheckpointError) as info:
        load_into(Tiny(), bad, {"head": "action_head"})
    message = str(info.value)
    assert "head.weight: model [2, 4] vs checkpoint [2, 5]" in message
    assert "missing" in message and "head.bias" in message
    assert "unexpected" in message and "head.surprise" in message

    report = load_into(Tiny(), bad, {"head": "action_head"}, strict=False)
    assert report.missing == ["head.bias"] and report.unexpected == ["head.surprise"]
    assert report.mismatched == [("head.weight", (2, 4), (2, 5))]


def test_longest_prefix_wins_and_root_mapping():
    state = {"model.vision.w": torch.zeros(1), "model.w": torch.ones(1)}
    renamed, _ = map_checkpoint_keys(state, {"vision_backbone": "model.vision", "llm": "model"})
    assert set(renamed) == {"vision_backbone.w", "llm.w"}
    renamed, _ = map_checkpoint_keys({"a.b": torch.zeros(1)}, {"inner": ""})
    assert set(renamed) == {"inner.a.b"}


def test_mismatched_width_in_pretrained_config_fails_naming_key_and_shapes(tiny_vla, tmp_path):
    tiny_vla.save_pretrained(tmp_path / "ckpt")
    spec = tiny_vla_spec()
    spec["vla_head"]["hidden_dim"] = 16
    spec["pretrained_name_or_path"] = str(tmp_path / "ckpt")
    with pytest.raises(CheckpointError, match=r"vla_head\.mlp\.0\.weight: model \[16, 52\] vs checkpoint \[32, 52\]"):
        vla_core.build_vla(spec)


def test_sharded_and_tied_weights(tmp_path):
    module = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 10, bias=True))
    module[1].weight = module[0].weight  # tied, as LM heads are
    files = save_state_dict(module.state_dict(), tmp_path, max_shard_bytes=100)
    assert (tmp_path / "model.safetensors.index.json") in files and len(files) == 3
    state = load_state_dict(tmp_path)
    assert set(state) == {"0.weight", "1.bias"}  # the alias is stored once
    fresh = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 10, bias=True))
    fresh[1].weight = fresh[0].weight
    assert load_into(fresh, state).ok
    assert torch.equal(fresh[1].weight, module[0].weight)


def test_failed_write_leaves_previous_checkpoint_intact(tiny_vla, tmp_path, monkeypatch):
    target = tmp_path / "ckpt"
    tiny_vla.save_pretrained(target)
    before = (target / "model.safetensors").read_bytes()

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(weights, "save_file", disk_full)
    with pytest.raises(CheckpointError, match="No space left on device"):
        tiny_vla.save_pretrained(target)
    assert (target / "model.safetensors").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]  # no temporary left behind


def test_atomic_directory_removes_partial_output_on_error(tmp_path):
    with pytest.raises(ValueError), atomic_directory(tmp_path / "out") as tmp:
        (tmp / "half.bin").write_bytes(b"x")
        raise ValueError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_atomic_directory_flushes_every_file_before_the_rename(tmp_path, monkeypatch):
    # config.json, trainer_state/state.json, the processor files...: not only the weights.
    from vla_core import atomic

    flushed = []
    monkeypatch.setattr(atomic, "fsync_file", lambda path: flushed.append((path.name, (tmp_path / "out").exists())))
    with atomic_directory(tmp_path / "out") as tmp:
        (tmp / "config.json").write_text("{}")
        (tmp / "trainer_state").mkdir()
        (tmp / "trainer_state" / "state.json").write_text("{}")
    assert sorted(flushed) == [("config.json", False), ("state.json", False)]


def test_tensors_that_share_storage_without_being_aliases_are_saved_each(tmp_path):
    # e.g. a fused q|k|v weight next to views of its parts: safetensors refuses shared memory.
    fused = torch.arange(12.0).reshape(4, 3)
    state = {"qkv": fused, "q": fused[:2], "kv": fused[2:], "qkv_alias": fused}
    save_state_dict(state, tmp_path)
    loaded = load_state_dict(tmp_path)
    assert set(loaded) == {"qkv", "q", "kv"}  # the exact alias is stored once
    for name in loaded:
        assert torch.equal(loaded[name], state[name]), name


def test_failed_writes_from_any_library_name_the_file_and_bugs_pass_through(tmp_path):
    from safetensors import SafetensorError

    from vla_core.atomic import io_failure
    from vla_core.errors import CheckpointWriteError

    denied = io_failure(SafetensorError("Error while serializing: IoError(Os { code: 13 ... Permission denied"), "a")
    assert (denied.errno, denied.filename) == (errno.EACCES, "a")
    assert io_failure(RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed"), "b").errno \
        in (errno.EIO, errno.ENOSPC)
    assert io_failure(KeyError("not a write failure"), "c") is None

    denied_write = r"writing '.*out' failed at '.*out/x\.pt': Permission denied"
    with pytest.raises(CheckpointWriteError, match=denied_write), atomic_directory(tmp_path / "out") as tmp:
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp / "x.pt"))
    with pytest.raises(KeyError), atomic_directory(tmp_path / "out"):
        raise KeyError("a bug is not a disk problem")
    assert list(tmp_path.iterdir()) == []
