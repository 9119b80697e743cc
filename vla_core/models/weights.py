"""Weights I/O: safetensors files (single or sharded), name mapping, and a load report.

`name_mapping` is `{our_prefix: checkpoint_prefix}`: checkpoint key
`checkpoint_prefix.rest` is loaded into our `our_prefix.rest`. With a mapping, only the
mapped parts are compared (the checkpoint may hold more, e.g. a whole GR00T model of
which we load `action_head.*`); without one, the whole state dict must match.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from vla_core.atomic import fsync_file, writing
from vla_core.errors import CheckpointError

WEIGHTS_NAME = "model.safetensors"
WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
DEFAULT_MAX_SHARD_BYTES = 5 * 1024**3


@dataclass
class LoadReport:
    """What happened when a state dict was loaded into a model."""

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    ignored: int = 0  # checkpoint keys outside the mapped prefixes

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def describe(self, limit: int = 20) -> str:
        lines = [f"loaded {len(self.loaded)} tensors"]
        for title, keys in (("missing (in the model, not in the checkpoint)", self.missing),
                            ("unexpected (in the checkpoint, not in the model)", self.unexpected)):
            if keys:
                shown = ", ".join(keys[:limit]) + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")
                lines.append(f"{len(keys)} {title}: {shown}")
        if self.mismatched:
            shown = "; ".join(f"{k}: model {list(a)} vs checkpoint {list(b)}" for k, a, b in self.mismatched[:limit])
            lines.append(f"{len(self.mismatched)} mis-shaped: {shown}")
        return "\n".join(lines)


def save_state_dict(
    state_dict: Mapping[str, torch.Tensor], directory: str | Path, max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES
) -> list[Path]:
    """Write `state_dict` as `model.safetensors`, or as shards plus an index when larger
    than `max_shard_bytes`. Tensors sharing storage (tied weights) are written once; the
    others are recorded as aliases in the metadata; other tensors sharing storage (views of
    a fused weight) are copied, since safetensors refuses shared memory. Files are fsynced."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple[int, int, tuple[int, ...]], str] = {}
    storages: set[int] = set()
    for name, tensor in state_dict.items():
        tensor = tensor.detach()
        storage = tensor.untyped_storage().data_ptr()
        key = (storage, tensor.storage_offset(), tuple(tensor.shape))
        if tensor.numel() > 0 and key in seen:
            aliases[name] = seen[key]
            continue
        seen[key] = name
        shared = tensor.numel() > 0 and storage in storages
        storages.add(storage)
        tensors[name] = tensor.cpu().clone() if shared else tensor.cpu().contiguous()
    metadata = {"format": "pt", "aliases": json.dumps(aliases)}

    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for name, tensor in tensors.items():
        nbytes = tensor.numel() * tensor.element_size()
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = tensor
        size += nbytes
    written = []
    if len(shards) == 1:
        path = directory / WEIGHTS_NAME
        with writing(path):
            save_file(shards[0], str(path), metadata=metadata)
        written.append(path)
    else:
        weight_map = {}
        for i, shard in enumerate(shards):
            path = directory / f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
            with writing(path):
                save_file(shard, str(path), metadata=metadata)
            written.append(path)
            weight_map.update({name: path.name for name in shard})
        index = directory / WEIGHTS_INDEX_NAME
        index.write_text(json.dumps({"metadata": {"aliases": aliases}, "weight_map": weight_map}, indent=1))
        written.append(index)
    for path in written:
        fsync_file(path)
    return written


def weight_files(directory: str | Path) -> list[Path]:
    """The safetensors files of a checkpoint directory (single file or index + shards)."""
    directory = Path(directory)
    if directory.is_file():
        return [directory]
    index = directory / WEIGHTS_INDEX_NAME
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError) as exc:
            message = f"{index} is not a valid safetensors index ({exc}); re-save the checkpoint."
            raise CheckpointError(message) from None
        return [directory / name for name in sorted(set(weight_map.values()))]
    single = directory / WEIGHTS_NAME
    if single.is_file():
        return [single]
    found = sorted(directory.glob("*.safetensors"))
    if found:
        return found
    raise CheckpointError(
        f"no weights in '{directory}': expected {WEIGHTS_NAME} or {WEIGHTS_INDEX_NAME}. "
        "Point to a directory written by save_pretrained or by `vla train`."
    )


def load_state_dict(directory: str | Path) -> dict[str, torch.Tensor]:
    """Read every tensor of a checkpoint (safetensors, or the DCP shards a multi-process run
    saved, assembled); a truncated or corrupt file is a CheckpointError naming it."""
    from vla_core.models.sharded_weights import MODEL_SHARDS_DIR, is_sharded, read_sharded_state_dict

    if Path(directory).is_dir() and is_sharded(directory):
        return read_sharded_state_dict(Path(directory) / MODEL_SHARDS_DIR)
    state: dict[str, torch.Tensor] = {}
    for path in weight_files(directory):
        if not path.is_file():
            raise CheckpointError(f"weights file '{path}' named by the index is missing; restore or re-save it.")
        try:
            state.update(load_file(str(path)))
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise CheckpointError(
                f"could not read weights file '{path}': it is truncated or corrupt ({exc}). "
                "Re-save the checkpoint or restore the file from a backup."
            ) from None
    return state


def _under(key: str, prefix: str) -> bool:
    return prefix == "" or key == prefix or key.startswith(prefix + ".")


def _swap_prefix(key: str, old: str, new: str) -> str:
    rest = key if old == "" else key[len(old):].lstrip(".")
    return ".".join(part for part in (new, rest) if part)


def map_checkpoint_keys(
    checkpoint: Mapping[str, torch.Tensor], name_mapping: Mapping[str, str] | None
) -> tuple[dict[str, torch.Tensor], int]:
    """Rename checkpoint keys into our names -> (renamed state, number of ignored keys).

    The longest matching checkpoint prefix wins; keys under no mapped prefix are ignored.
    """
    if not name_mapping:
        return dict(checkpoint), 0
    by_length = sorted(name_mapping.items(), key=lambda item: len(item[1]), reverse=True)
    renamed, ignored = {}, 0
    for key, tensor in checkpoint.items():
        for ours, theirs in by_length:
            if _under(key, theirs):
                renamed[_swap_prefix(key, theirs, ours)] = tensor
                break
        else:
            ignored += 1
    return renamed, ignored


def _tied_groups(state: Mapping[str, torch.Tensor]) -> dict[str, set[str]]:
    groups: dict[tuple[int, int, tuple[int, ...]], set[str]] = {}
    for name, tensor in state.items():
        if tensor.numel() == 0:
            continue
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape))
        groups.setdefault(key, set()).add(name)
    return {name: members for members in groups.values() for name in members}


def load_into(
    module: nn.Module,
    checkpoint: Mapping[str, torch.Tensor],
    name_mapping: Mapping[str, str] | None = None,
    strict: bool = True,
    source: str = "checkpoint",
) -> LoadReport:
    """Copy matching tensors of `checkpoint` into `module` and report the rest.

    In strict mode any missing, unexpected or mis-shaped key raises a CheckpointError
    listing them (with both shapes); otherwise what matches is loaded and the report
    returned.
    """
    ours = module.state_dict()
    theirs, ignored = map_checkpoint_keys(checkpoint, name_mapping)
    # With a mapping, only our parts under a mapped prefix are expected from this checkpoint.
    ours_scope = [k for k in ours if not name_mapping or any(_under(k, p) for p in name_mapping)]
    report = LoadReport(ignored=ignored)
    to_load = {}
    for key, tensor in theirs.items():
        if key not in ours:
            report.unexpected.append(key)
        elif tuple(ours[key].shape) != tuple(tensor.shape):
            report.mismatched.append((key, tuple(ours[key].shape), tuple(tensor.shape)))
        else:
            to_load[key] = tensor
    tied = _tied_groups(ours)
    for key in ours_scope:
        if key in theirs:
            continue
        if any(twin in to_load for twin in tied.get(key, ())):
            continue  # a tied weight, loaded through its twin
        report.missing.append(key)
    report.loaded = sorted(to_load)
    if strict and not report.ok:
        raise CheckpointError(
            f"the weights in {source} do not match the model:\n{report.describe()}\n"
            "Check that the config matches the checkpoint (sizes, layer counts), fix name_mapping, "
            "or load with strict_loading: false to load what matches."
        )
    with torch.no_grad():
        module.load_state_dict(to_load, strict=False)
    return report
