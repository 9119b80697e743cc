"""Checkpoint checksums: recorded when written, verified on load, damaged files named,
older checkpoints (no checksums) still loading with one notice."""

from __future__ import annotations

import json
import logging

import pytest
import torch

import vla_core
from vla_core.checksums import CHECKSUMS_FILE, file_digest, verify_checksums, write_checksums
from vla_core.errors import CheckpointError
from vla_core.testing import tiny_vla_spec


@pytest.fixture(scope="module")
def tiny_vla():
    torch.manual_seed(0)
    return vla_core.build_vla(tiny_vla_spec())


def flip_bits(path, offset_from_end: int = 64, count: int = 16) -> None:
    """Invert `count` bytes near the end of a file (inside the tensor data, past any header)."""
    data = bytearray(path.read_bytes())
    for i in range(len(data) - offset_from_end, len(data) - offset_from_end + count):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def test_every_file_is_recorded_and_a_flipped_bit_is_named(tiny_vla, tmp_path):
    directory = tiny_vla.save_pretrained(tmp_path / "ckpt")
    recorded = json.loads((directory / CHECKSUMS_FILE).read_text())["files"]
    assert sorted(recorded) == sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*")
                                      if p.is_file() and p.name != CHECKSUMS_FILE)
    assert recorded["model.safetensors"] == file_digest(directory / "model.safetensors")
    assert verify_checksums(directory)

    flip_bits(directory / "model.safetensors")
    before = vla_core.models.weights.load_state_dict(directory)  # the file still parses: only a hash can tell
    assert set(before) == set(tiny_vla.state_dict())
    with pytest.raises(CheckpointError, match=r"ckpt/model\.safetensors' is damaged .*another checkpoint"):
        vla_core.load_pretrained(directory)


def test_missing_file_and_damaged_manifest_are_named(tiny_vla, tmp_path):
    directory = tiny_vla.save_pretrained(tmp_path / "ckpt")
    (directory / "sub").mkdir()
    (directory / "sub" / "extra.json").write_text("{}")
    write_checksums(directory)
    (directory / "sub" / "extra.json").unlink()
    with pytest.raises(CheckpointError, match=r"sub/extra\.json' is missing"):
        verify_checksums(directory)
    assert verify_checksums(directory, exclude=("sub",))  # what is not read is not hashed
    (directory / CHECKSUMS_FILE).write_text("{not json")
    with pytest.raises(CheckpointError, match=r"checksums\.json' is damaged"):
        vla_core.load_pretrained(directory)


def test_checkpoint_without_checksums_loads_and_says_so_once(tiny_vla, tmp_path, caplog):
    directory = tiny_vla.save_pretrained(tmp_path / "old")
    (directory / CHECKSUMS_FILE).unlink()
    with caplog.at_level(logging.WARNING, logger="vla_core.checksums"):
        first = vla_core.load_pretrained(directory)
        vla_core.load_pretrained(directory)
    notes = [r.getMessage() for r in caplog.records if CHECKSUMS_FILE in r.getMessage()]
    assert len(notes) == 1 and "cannot be verified" in notes[0] and str(directory) in notes[0]
    for key, tensor in tiny_vla.state_dict().items():
        assert torch.equal(tensor, first.state_dict()[key]), key
