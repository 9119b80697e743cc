"""LoRA checkpoints of a multi-process run: the frozen base as DCP shards, the adapter gathered.

A LoRA run on several processes writes

    model_shards/        DCP: each rank's shards of the frozen base weights, keyed by the
                         VLA's own parameter names (`lora.base_key_map`), as a full
                         fine-tune's sharded checkpoint is
    adapter/             peft's format (`lora.write_adapter`), written by rank 0

so the base is never gathered on one process, and `load_state_dict(checkpoint)` returns
the same base weights as a 1-process LoRA checkpoint's `model.safetensors`: everything that
reads a LoRA checkpoint (`load_pretrained`, `vla predict`, `vla export --merge-lora`, a
1-process resume) reads this form too. Only the adapter tensors (small) are gathered.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.checkpoint.state_dict import get_model_state_dict, set_model_state_dict

from vla_core.engine.lora import ADAPTER_DIR, read_adapter_state
from vla_core.engine.sharded_checkpoint import load_shards
from vla_core.errors import CheckpointError
from vla_core.models.sharded_weights import MODEL_SHARDS_DIR


def _base_shards(state: Mapping[str, Any], key_map: Mapping[str, str | None]) -> dict[str, Any]:
    """This process's shards of the base weights, under the VLA's own parameter names."""
    return {key_map[key]: value for key, value in state.items() if key_map.get(key)}


def _full(tensor: Any) -> torch.Tensor:
    """A whole tensor on the CPU from a DTensor shard (a collective) or a plain tensor."""
    full = tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor
    return full.detach().cpu()


def _adapter_selection(peft_model: Any, state: Mapping[str, Any]) -> dict[str, str]:
    """peft's saved adapter key -> the model's state-dict key, for the tensors peft saves.

    peft picks (and renames) what an adapter holds; it only selects from `state`, so each
    selected value is one of `state`'s objects, which names the model key it came from."""
    from peft import get_peft_model_state_dict

    owner = {id(value): key for key, value in state.items()}
    selected = get_peft_model_state_dict(peft_model, state_dict=dict(state))
    made = sorted(saved for saved, value in selected.items() if id(value) not in owner)
    if made:
        raise CheckpointError(
            f"peft computed adapter tensors ({', '.join(made[:5])}) instead of selecting them from the model, which "
            "a LoRA run on several processes cannot shard; train this adapter type on one process."
        )
    return {saved: owner[id(value)] for saved, value in selected.items()}


def save_sharded_lora_base(peft_model: nn.Module, key_map: Mapping[str, str | None], directory: Path) -> None:
    """Write this process's shards of the frozen base into `<directory>/model_shards` (a
    collective; nothing is gathered).

    Args:
        peft_model: the FSDP2-sharded peft model.
        key_map: `lora.base_key_map` of the peft model (computed before sharding).
        directory: the checkpoint being assembled (the same path on every process).
    """
    state = get_model_state_dict(peft_model)
    dcp.save(_base_shards(state, key_map), checkpoint_id=str(directory / MODEL_SHARDS_DIR))


def gather_adapter_state(peft_model: nn.Module) -> dict[str, torch.Tensor]:
    """The adapter's tensors, whole, on the CPU of every rank, keyed as peft saves them (a
    collective: the keys come in the same order on every rank)."""
    state = get_model_state_dict(peft_model)
    return {saved: _full(state[key]) for saved, key in _adapter_selection(peft_model, state).items()}


def load_sharded_lora(peft_model: nn.Module, key_map: Mapping[str, str | None], checkpoint: Path) -> None:
    """Fill a sharded peft model from a LoRA checkpoint with `model_shards/`: each process
    reads the slices of the base it owns (under the VLA's parameter names) and its shards
    of the adapter from `adapter/` (every process reads the small file). A collective."""
    from torch.distributed.tensor import DTensor, distribute_tensor

    state = get_model_state_dict(peft_model)
    load_shards(_base_shards(state, key_map), checkpoint / MODEL_SHARDS_DIR)
    adapter_dir = checkpoint / ADAPTER_DIR
    saved = read_adapter_state(adapter_dir)
    selection = _adapter_selection(peft_model, state)
    missing, unexpected = sorted(set(selection) - set(saved)), sorted(set(saved) - set(selection))
    if missing or unexpected:
        raise CheckpointError(
            f"the adapter in '{adapter_dir}' does not fit the model (missing: {', '.join(missing[:10]) or 'none'}; "
            f"unexpected: {', '.join(unexpected[:10]) or 'none'}). Resume with the LoRA settings (train.lora) the "
            "checkpoint was trained with."
        )
    for saved_key in sorted(selection):  # sorted: distribute_tensor is a collective
        key, tensor = selection[saved_key], saved[saved_key]
        target = state[key]
        if tuple(tensor.shape) != tuple(target.shape):
            raise CheckpointError(
                f"the adapter tensor '{saved_key}' in '{adapter_dir}' has shape {tuple(tensor.shape)} but the model "
                f"has {tuple(target.shape)}; resume with the LoRA settings the checkpoint was trained with."
            )
        if isinstance(target, DTensor):
            local = tensor.to(device=target.to_local().device, dtype=target.dtype)
            state[key] = distribute_tensor(local, target.device_mesh, target.placements)
        else:
            state[key] = tensor.to(device=target.device, dtype=target.dtype)
    set_model_state_dict(peft_model, state)
